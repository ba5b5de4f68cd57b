package shard_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// killer is a Publisher that simulates a SIGKILL: at the first publish of
// an output id starting with at, it copies the store's files as they are on
// disk (what a killed process leaves: batches that Pebble committed but
// has not written out are lost), and from then on it publishes nothing.
type killer struct {
	shard.Publisher
	t        *testing.T
	src, dst string
	at       string

	mu     sync.Mutex
	killed chan struct{}
}

var errKilled = errors.New("killed")

func (k *killer) Publish(ctx context.Context, subject, msgID string, data []byte, headers map[string]string) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	select {
	case <-k.killed:
		return 0, errKilled
	default:
	}
	if strings.HasPrefix(msgID, k.at) {
		copyDir(k.t, k.src, k.dst)
		close(k.killed)
		return 0, errKilled
	}
	return k.Publisher.Publish(ctx, subject, msgID, data, headers)
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	}))
}

// TestKillKeepsParkingDecisions: a SIGKILL loses the commits the store had
// not synced, often many messages' worth, not only the one in flight. The
// shard redoes them after the restart, now far behind, so with fair
// scheduling it would park the heavy tenant where the first attempt
// applied it directly, and publish other outputs under the ids the first
// attempt used; JetStream's dedup keeps the first attempt's, so the light
// tenant's output is lost and the heavy tenant's doubled. Every event's
// output must be stored once.
func TestKillKeepsParkingDecisions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	next := map[string]int{}
	var seqs []uint64
	for i := range 6 {
		seq, err := e.log.Append(ctx, 0, "m-"+strconv.Itoa(i), mixed(next, 9, 1))
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}

	// First attempt: never behind, so nothing is parked; killed as it
	// publishes the outputs of the fourth message.
	crashed := t.TempDir()
	k := &killer{Publisher: e.log, t: t, src: e.dir, dst: crashed, killed: make(chan struct{}),
		at: strings.TrimSuffix(shard.OutputID("vis", 0, seqs[3], 0), "0")}
	early := func() time.Time { return time.Time{} }
	cfg := shard.Config{Workers: 1, Fair: true, FairLag: time.Second}
	r := startPublishing(t, e, cfg, k, early)
	select {
	case <-k.killed:
	case <-time.After(20 * time.Second):
		t.Fatal("the shard did not reach the fourth message")
	}
	r.stop(t)

	// After the restart every message is a minute old: the heavy tenant
	// is over its share and parked.
	e.dir = crashed
	late := func() time.Time { return time.Now().Add(time.Minute) }
	r = startPublishing(t, e, cfg, e.log, late)
	defer r.stop(t)
	require.Eventually(t, func() bool {
		return count(t, r.st, "tn_a") == next["tn_a"] && count(t, r.st, "tn_b") == next["tn_b"] && parkedLeft(t, e, "tn_a") == 0
	}, 30*time.Second, 10*time.Millisecond)

	stored := map[string]int{}
	for _, m := range streamMsgs(t, e, "OUT") {
		stored[strings.TrimPrefix(m.Subject, "out.")+"/"+string(m.Data)]++
	}
	for tenant, n := range next {
		for i := range n {
			id := tenant + "/m" + strconv.Itoa(i)
			require.Equal(t, 1, stored[id], "output of %s stored once", id)
		}
	}
}

// startPublishing runs the counter over the partitions, with its store in
// e.dir and pub for its outputs.
func startPublishing(t *testing.T, e *env, cfg shard.Config, pub shard.Publisher, now func() time.Time) *runner {
	t.Helper()
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	rt, err := shard.New(cfg, shard.Deps{Store: st, Source: e.log, Publisher: pub, Tenants: &policy{}, Now: now})
	require.NoError(t, err)
	for p := range parts {
		rt.Add(eventlog.StreamEvents, "vis", p, counter{})
	}
	return runRuntime(rt, st)
}
