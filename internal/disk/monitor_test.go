package disk

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const mib = 1 << 20

// fakeDisk is a file system whose free space the test sets.
type fakeDisk struct {
	free atomic.Uint64
	mu   sync.Mutex
	err  error
}

func (d *fakeDisk) stat(string) (Space, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return Space{}, d.err
	}
	return Space{Free: d.free.Load(), Total: 10 << 30}, nil
}

func (d *fakeDisk) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newMonitor starts a monitor of a fake disk with free bytes and a floor of
// 100 MiB checked every second; it returns the monitor, the disk, its log
// and its registry.
func newMonitor(t testing.TB, free uint64) (*Monitor, *fakeDisk, *syncBuffer, *prometheus.Registry) {
	t.Helper()
	d := &fakeDisk{}
	d.free.Store(free)
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Dir, cfg.MinFreeBytes = "/data", 100*mib
	m, err := New(cfg, Deps{
		Stat: d.stat, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	return m, d, logs, reg
}

func TestMonitorLowAndRecovery(t *testing.T) {
	t.Parallel()
	m, d, logs, _ := newMonitor(t, 500*mib)
	low, why := m.Low()
	require.False(t, low)
	require.Empty(t, why)
	require.Equal(t, 500.0*mib, testutil.ToFloat64(m.free))
	require.Equal(t, 0.0, testutil.ToFloat64(m.low))

	f := func(free uint64, wantLow bool, msg string) {
		t.Helper()
		d.free.Store(free)
		m.check()
		low, why := m.Low()
		require.Equal(t, wantLow, low, msg)
		require.Equal(t, float64(free), testutil.ToFloat64(m.free), msg)
		if wantLow {
			require.Equal(t, 1.0, testutil.ToFloat64(m.low), msg)
			require.Contains(t, why, "/data", msg)
			require.Contains(t, why, "100.0 MiB", msg)
		} else {
			require.Equal(t, 0.0, testutil.ToFloat64(m.low), msg)
			require.Empty(t, why, msg)
		}
	}
	f(100*mib, false, "exactly the floor is not low")
	f(100*mib-1, true, "one byte under the floor is low")
	f(60*mib, true, "still low")
	f(105*mib, true, "above the floor but within the tenth above it: still low")
	f(110*mib, false, "a tenth above the floor: recovered")
	f(105*mib, false, "within the tenth above the floor, coming from above: not low")
	f(0, true, "a full disk is low")
	_, why = m.Low()
	require.Contains(t, why, "free disk space on /data is 0 B, below the floor of 100.0 MiB")
	f(1<<30, false, "freed")

	out := logs.String()
	require.Equal(t, 2, strings.Count(out, "disk space low"), "one warning per change of state, not per check:\n%s", out)
	require.Equal(t, 2, strings.Count(out, "disk space recovered"), out)
}

// A monitor that starts on a low disk is low before its first tick.
func TestMonitorStartsLow(t *testing.T) {
	t.Parallel()
	m, _, logs, reg := newMonitor(t, 10*mib)
	low, why := m.Low()
	require.True(t, low)
	require.Contains(t, why, "10.0 MiB")
	require.Contains(t, logs.String(), "disk space low")
	n, err := testutil.GatherAndCount(reg, "contrail_disk_free_bytes", "contrail_disk_low")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP contrail_disk_low 1 while free disk space is below the floor (min_free_bytes) and the collector refuses events, else 0.
# TYPE contrail_disk_low gauge
contrail_disk_low 1
`), "contrail_disk_low"))
}

// A failing statfs keeps the last state and is logged once, not per check.
func TestMonitorStatErrorKeepsState(t *testing.T) {
	t.Parallel()
	m, d, logs, _ := newMonitor(t, 10*mib)
	d.fail(errors.New("input/output error"))
	for range 3 {
		m.check()
	}
	low, _ := m.Low()
	require.True(t, low, "the last state holds while statfs fails")
	require.Equal(t, 1, strings.Count(logs.String(), "checking free disk space failed"), logs.String())
	d.fail(nil)
	d.free.Store(1 << 30)
	m.check()
	low, _ = m.Low()
	require.False(t, low)
	require.Contains(t, logs.String(), "checking free disk space works again")
}

func TestNewChecksOnce(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.MinFreeBytes = "/data", 1
	_, err := New(cfg, Deps{Stat: func(string) (Space, error) { return Space{}, errors.New("no such file or directory") }})
	require.ErrorContains(t, err, "no such file or directory")
	require.ErrorContains(t, err, "set the floor to 0")

	for _, bad := range []Config{{MinFreeBytes: 1, Interval: time.Second}, {Dir: "/d", Interval: time.Second}, {Dir: "/d", MinFreeBytes: 1}} {
		_, err := New(bad, Deps{Stat: func(string) (Space, error) { return Space{}, nil }})
		require.Error(t, err, "%+v", bad)
	}
}

// Run checks every Interval: a disk that fills up is seen as low one tick
// later, and as recovered one tick after it is freed.
func TestMonitorRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, d, _, _ := newMonitor(t, 500*mib)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		d.free.Store(50 * mib)
		synctest.Wait()
		low, _ := m.Low()
		require.False(t, low, "nothing is checked before the tick")
		time.Sleep(time.Second) // the fake clock of the bubble
		synctest.Wait()
		low, _ = m.Low()
		require.True(t, low, "seen at the next tick")

		d.free.Store(500 * mib)
		time.Sleep(time.Second)
		synctest.Wait()
		low, _ = m.Low()
		require.False(t, low)

		cancel()
		require.NoError(t, <-done)
	})
}

// Statfs reads a real file system.
func TestStatfs(t *testing.T) {
	t.Parallel()
	sp, err := Statfs(t.TempDir())
	require.NoError(t, err)
	require.Positive(t, sp.Total)
	require.LessOrEqual(t, sp.Free, sp.Total)
	_, err = Statfs("/nonexistent/contrail")
	require.Error(t, err)
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	f := func(b uint64, want string) {
		t.Helper()
		require.Equal(t, want, formatBytes(b))
	}
	f(0, "0 B")
	f(1023, "1023 B")
	f(1024, "1.0 KiB")
	f(256*mib, "256.0 MiB")
	f(256*mib-1, "256.0 MiB")
	f(3<<30+512*mib, "3.5 GiB")
	f(1<<62, "4.0 EiB")
}
