package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// slow answers after 300ms (or when the client gives up).
func slow(w http.ResponseWriter, r *http.Request, _ int) {
	select {
	case <-r.Context().Done():
		return
	case <-time.After(300 * time.Millisecond):
	}
	w.WriteHeader(http.StatusOK)
}

// requireOnce checks the receiver got exactly one request per key.
func requireOnce(t *testing.T, rc *receiver, keys ...string) {
	t.Helper()
	count := map[string]int{}
	for _, r := range rc.all() {
		count[r.header.Get("Idempotency-Key")]++
	}
	want := map[string]int{}
	for _, k := range keys {
		want[k] = 1
	}
	require.Equal(t, want, count)
}

func waitOutboxEmpty(t *testing.T, s *Sender, st *store.Store) {
	t.Helper()
	require.Eventually(t, func() bool { return len(outboxKeys(t, st)) == 0 }, 10*time.Second, 2*time.Millisecond,
		"outbox not emptied")
	require.Eventually(t, func() bool { return s.pendingOutbox() == 0 }, 10*time.Second, 2*time.Millisecond)
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.outboxPending))
}

// Effects of one Order arrive in the order handed over, through random
// first-attempt failures, several Deliver calls and spills to the outbox;
// another Order goes its own way.
func TestOrderKept(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 && rand.IntN(2) == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	cfg := testConfig()
	cfg.HandoverWait = time.Millisecond // most go through the outbox
	cfg.MaxAttempts = 3
	st := openStore(t)
	s := startSender(t, st, cfg, Deps{})

	var want1, want2, all []string
	for batch := range 5 {
		var effects []shard.External
		for i := range 10 {
			k1 := fmt.Sprintf("lead1-%02d", batch*10+i)
			k2 := fmt.Sprintf("lead2-%02d", batch*10+i)
			want1, want2 = append(want1, k1), append(want2, k2)
			effects = append(effects, hook(t, k1, "lead-1", rc.srv.URL), hook(t, k2, "lead-2", rc.srv.URL))
		}
		all = append(all, want1[len(want1)-10:]...)
		all = append(all, want2[len(want2)-10:]...)
		spill := s.Deliver(t.Context(), effects)
		writeOutbox(t, st, spill)
		s.Spilled("LEADS", 0, spill)
	}
	for _, k := range all {
		require.Equal(t, StatusDelivered, waitResult(t, s, k).Status, k)
	}
	mu.Lock()
	var got1, got2 []string
	for _, k := range got {
		if k[:5] == "lead1" {
			got1 = append(got1, k)
		} else {
			got2 = append(got2, k)
		}
	}
	mu.Unlock()
	require.Equal(t, want1, got1)
	require.Equal(t, want2, got2)
	waitOutboxEmpty(t, s, st)
}

func TestSpillSlowReceiver(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, slow)
	cfg := testConfig()
	cfg.HandoverWait = 20 * time.Millisecond
	st := openStore(t)
	s := startSender(t, st, cfg, Deps{})
	effects := []shard.External{hook(t, "s1", "", rc.srv.URL), hook(t, "s2", "", rc.srv.URL), hook(t, "s3", "", rc.srv.URL)}
	spill := s.Deliver(t.Context(), effects)
	require.Equal(t, effects, spill)
	require.Equal(t, 3.0, testutil.ToFloat64(s.metrics.spilled))
	writeOutbox(t, st, spill)
	s.Spilled("LEADS", 0, spill)

	for _, x := range effects {
		require.Equal(t, StatusDelivered, waitResult(t, s, x.Key).Status)
	}
	waitOutboxEmpty(t, s, st)
	requireOnce(t, rc, "s1", "s2", "s3")
}

// An effect that finishes between Deliver's return and Spilled still has
// its outbox entry deleted, and is not sent again.
func TestSpillFinishedBeforeSpilled(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, slow)
	cfg := testConfig()
	cfg.HandoverWait = 20 * time.Millisecond
	cfg.RescanInterval = time.Hour // Spilled alone must clean up
	st := openStore(t)
	s := startSender(t, st, cfg, Deps{})
	spill := s.Deliver(t.Context(), []shard.External{hook(t, "early", "o", rc.srv.URL)})
	require.Len(t, spill, 1)

	require.Equal(t, StatusDelivered, waitResult(t, s, "early").Status)
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.metrics.inflight) == 0 }, 5*time.Second, time.Millisecond)
	writeOutbox(t, st, spill) // the shard's commit comes late
	s.Spilled("LEADS", 0, spill)

	waitOutboxEmpty(t, s, st)
	requireOnce(t, rc, "early")
}

func TestDeliverFastReceiverSpillsNothing(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	s := startSender(t, openStore(t), testConfig(), Deps{})
	effects := []shard.External{hook(t, "f1", "a", rc.srv.URL), hook(t, "f2", "a", rc.srv.URL), hook(t, "f3", "", rc.srv.URL)}
	require.Empty(t, s.Deliver(t.Context(), effects))
	require.Equal(t, 0.0, testutil.ToFloat64(s.metrics.spilled))
	// Handed over again (a replayed message): done already, not sent again.
	require.Empty(t, s.Deliver(t.Context(), effects))
	requireOnce(t, rc, "f1", "f2", "f3")
	var m dto.Metric
	require.NoError(t, s.metrics.duration.WithLabelValues(KindWebhook).(prometheus.Metric).Write(&m))
	require.Equal(t, uint64(3), m.GetHistogram().GetSampleCount())
}

// Before Run, and when it lags, Deliver returns everything at once; what
// it accepted is then delivered once, though the outbox holds it too.
func TestDeliverLaggingBeforeRun(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	cfg := testConfig()
	cfg.LagThreshold = 1
	st := openStore(t)
	s := newSender(t, st, cfg, Deps{})
	effects := []shard.External{hook(t, "l1", "x", rc.srv.URL), hook(t, "l2", "x", rc.srv.URL), hook(t, "l3", "", rc.srv.URL)}
	require.Equal(t, effects, s.Deliver(t.Context(), effects)) // at once: HandoverWait is 5s
	writeOutbox(t, st, effects)
	s.Spilled("LEADS", 0, effects)
	run(t, s)

	for _, x := range effects {
		require.Equal(t, StatusDelivered, waitResult(t, s, x.Key).Status)
	}
	waitOutboxEmpty(t, s, st)
	requireOnce(t, rc, "l1", "l2", "l3")
}

func TestDeliverCancelledOrStopped(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	s := newSender(t, openStore(t), testConfig(), Deps{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	x := []shard.External{hook(t, "c1", "", rc.srv.URL)}
	require.Equal(t, x, s.Deliver(ctx, x))

	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	require.Equal(t, StatusDelivered, waitResult(t, s, "c1").Status)
	stop()
	require.NoError(t, <-done)
	y := []shard.External{hook(t, "c2", "", rc.srv.URL)}
	require.Equal(t, y, s.Deliver(t.Context(), y))
	require.Error(t, s.Run(t.Context()), "Run twice")
}

// A new process takes over what the outbox holds: in order of Job.At
// within an Order, before what is handed over meanwhile, and without
// sending again what is done already.
func TestRestartDrainsOutbox(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	st := openStore(t)
	t0 := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	ordered := func(key string, at time.Time, step int) shard.External {
		j := Job{Kind: KindWebhook, Tenant: "t1", Key: key, Order: "lead-9", URL: rc.srv.URL, At: at, Step: step}
		return shard.External{Key: key, Order: "lead-9", Payload: payload(t, j)}
	}
	previous := []shard.External{
		ordered("r-c", t0, 1),
		ordered("r-b", t0, 2),
		ordered("r-a", t0.Add(time.Minute), 1),
		hook(t, "r-done", "", rc.srv.URL),
		{Key: "r-garbled", Payload: []byte("{not json")},
	}
	writeOutbox(t, st, previous)
	done, err := json.Marshal(Result{Key: "r-done", Kind: KindWebhook, Status: StatusDelivered, Attempts: 1})
	require.NoError(t, err)
	b := st.NewBatch()
	require.NoError(t, b.Set(resultKey("r-done"), done, nil))
	require.NoError(t, st.Commit(b))
	require.NoError(t, b.Close())

	cfg := testConfig()
	cfg.HandoverWait = time.Millisecond
	s := newSender(t, st, cfg, Deps{})
	later := ordered("r-later", t0.Add(-time.Hour), 1) // handed over before Run, so after the outbox
	require.Len(t, s.Deliver(t.Context(), []shard.External{later}), 1)
	run(t, s)

	for _, k := range []string{"r-c", "r-b", "r-a", "r-later"} {
		require.Equal(t, StatusDelivered, waitResult(t, s, k).Status, k)
	}
	res := waitResult(t, s, "r-garbled")
	require.Equal(t, StatusFailed, res.Status)
	require.Contains(t, res.Error, ErrInvalidJob.Error())
	waitOutboxEmpty(t, s, st)
	mu.Lock()
	require.Equal(t, []string{"r-c", "r-b", "r-a", "r-later"}, got)
	mu.Unlock()
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.failed.WithLabelValues("unknown", "unknown")))
}

// The periodic scan picks up entries written while running.
func TestRescanPicksUpNewEntries(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	st := openStore(t)
	s := startSender(t, st, testConfig(), Deps{})
	writeOutbox(t, st, []shard.External{hook(t, "late-entry", "", rc.srv.URL)})
	require.Equal(t, StatusDelivered, waitResult(t, s, "late-entry").Status)
	waitOutboxEmpty(t, s, st)
	requireOnce(t, rc, "late-entry")
}

func TestEffectKey(t *testing.T) {
	t.Parallel()
	f := func(okey, want string, wantOK bool) {
		t.Helper()
		got, ok := effectKey(okey)
		require.Equal(t, wantOK, ok, okey)
		require.Equal(t, want, got, okey)
	}
	f(string(store.OutboxKey("LEADS", 3, "abc")), "abc", true)
	f(string(store.OutboxKey("LEADS", 3, "a/b")), "a/b", true)
	f(string(store.OutboxKey("LEADS", 3, "")), "", false)
	f("\x00out/LEADS", "", false)
	f("other", "", false)
}
