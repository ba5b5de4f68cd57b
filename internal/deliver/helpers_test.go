package deliver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// testConfig is fast: short backoffs and timeouts, private networks
// allowed (httptest listens on 127.0.0.1).
func testConfig() Config {
	return Config{
		AllowPrivateNetworks: true,
		BaseBackoff:          time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Timeout: 5 * time.Second, HandoverWait: 5 * time.Second, RescanInterval: 50 * time.Millisecond,
	}
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

func openStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), testLogger(tb))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, st.Close()) })
	return st
}

// newSender makes a Sender on st without running it. deps.Store and
// deps.Logger are filled in.
func newSender(tb testing.TB, st *store.Store, cfg Config, deps Deps) *Sender {
	tb.Helper()
	deps.Store = st
	if deps.Logger == nil {
		deps.Logger = testLogger(tb)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	s, err := New(cfg, deps)
	require.NoError(tb, err)
	return s
}

// run runs s until the test ends, and waits until it dispatches.
func run(tb testing.TB, s *Sender) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-done)
	})
	require.Eventually(tb, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.live
	}, 10*time.Second, time.Millisecond, "sender did not start")
}

// startSender is newSender then run.
func startSender(tb testing.TB, st *store.Store, cfg Config, deps Deps) *Sender {
	tb.Helper()
	s := newSender(tb, st, cfg, deps)
	run(tb, s)
	return s
}

func payload(tb testing.TB, j Job) []byte {
	tb.Helper()
	b, err := json.Marshal(j)
	require.NoError(tb, err)
	return b
}

// hook is a webhook effect to url.
func hook(tb testing.TB, key, order, url string) shard.External {
	tb.Helper()
	j := Job{Kind: KindWebhook, Tenant: "t1", Key: key, Order: order, URL: url, Body: `{"key":"` + key + `"}`,
		At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return shard.External{Key: key, Order: order, Payload: payload(tb, j)}
}

// waitResult waits until the effect with key is done.
func waitResult(tb testing.TB, s *Sender, key string) Result {
	tb.Helper()
	var res Result
	require.Eventually(tb, func() bool {
		r, ok, err := s.Result(key)
		require.NoError(tb, err)
		res = r
		return ok
	}, 15*time.Second, 2*time.Millisecond, "no result for %s", key)
	return res
}

// writeOutbox does what a shard does with a spill: it writes the effects
// to the outbox of stream "LEADS" partition 0.
func writeOutbox(tb testing.TB, st *store.Store, effects []shard.External) {
	tb.Helper()
	b := st.NewBatch()
	defer func() { _ = b.Close() }()
	for _, x := range effects {
		require.NoError(tb, b.Set(store.OutboxKey("LEADS", 0, x.Key), x.Payload, nil))
	}
	require.NoError(tb, st.Commit(b))
}

// outboxKeys lists the outbox.
func outboxKeys(tb testing.TB, st *store.Store) []string {
	tb.Helper()
	iter, err := st.NewIter([]byte(store.OutboxPrefix), []byte("\x00out0"))
	require.NoError(tb, err)
	defer func() { require.NoError(tb, iter.Close()) }()
	var keys []string
	for valid := iter.First(); valid; valid = iter.Next() {
		keys = append(keys, string(iter.Key()))
	}
	return keys
}

// receiver is a webhook endpoint that records what it is sent.
type receiver struct {
	mu       sync.Mutex
	requests []*recorded
	srv      *httptest.Server
}

type recorded struct {
	header http.Header
	body   []byte
	at     time.Time
}

// newReceiver serves with respond, after recording each request;
// respond's n is the number of requests before this one with the same
// Idempotency-Key.
func newReceiver(tb testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	tb.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 0, 64)
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err != nil {
				break
			}
		}
		key := r.Header.Get("Idempotency-Key")
		rc.mu.Lock()
		n := 0
		for _, q := range rc.requests {
			if q.header.Get("Idempotency-Key") == key {
				n++
			}
		}
		rc.requests = append(rc.requests, &recorded{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		respond(w, r, n)
	}))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) all() []*recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*recorded(nil), rc.requests...)
}

// ok answers 204.
func ok(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) }
