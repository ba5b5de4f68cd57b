package collect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/tenant"
)

// fakeLog records appends. When gate is not nil, each append waits for a
// value from it, so a test can hold a publish in flight.
type fakeLog struct {
	mu    sync.Mutex
	msgs  []fakeMsg
	gate  chan struct{}
	err   error
	calls chan struct{}
}

type fakeMsg struct {
	partition int
	id        string
	events    []event.Event
}

func (f *fakeLog) Append(ctx context.Context, p int, id string, data []byte) (uint64, error) {
	if f.calls != nil {
		f.calls <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if f.err != nil {
		return 0, f.err
	}
	evs, err := event.DecodeBatch(data)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fakeMsg{p, id, evs})
	return uint64(len(f.msgs)), nil
}

func (f *fakeLog) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.msgs...)
}

type fakeTenants map[string]*tenant.Tenant

func (f fakeTenants) ByWriteKey(k string) (*tenant.Tenant, bool) { t, ok := f[k]; return t, ok }

func startCollector(t *testing.T, log *fakeLog, partitions int, mutate func(*Config)) (*httptest.Server, *Collector) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AckTimeout = 2 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	tn := &tenant.Tenant{ID: "tn_test", Limits: tenant.DefaultLimits()}
	c, err := New(cfg, Deps{Log: log, Partitions: partitions, Tenants: fakeTenants{"wk": tn}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return srv, c
}

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.SetBasicAuth("wk", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var sb strings.Builder
	_, _ = fmt.Fprint(&sb, readAll(resp))
	return resp, sb.String()
}

func readAll(resp *http.Response) string {
	b := new(strings.Builder)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// While one publish of a partition is in flight, later requests for that
// partition are coalesced into the next message.
func TestGroupCommitCoalesces(t *testing.T) {
	log := &fakeLog{gate: make(chan struct{}), calls: make(chan struct{}, 100)}
	srv, c := startCollector(t, log, 1, nil)
	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	send := func(i int) {
		resp, _ := post(t, srv.URL+"/v1/track", fmt.Sprintf(`{"anonymousId":"a%d","event":"E","messageId":"m%d"}`, i, i))
		codes[i] = resp.StatusCode
	}
	wg.Go(func() { send(0) })
	<-log.calls // the first publish is in flight and held
	for i := 1; i < n; i++ {
		wg.Go(func() { send(i) })
	}
	// Wait until the other requests are queued behind the held publish.
	require.Eventually(t, func() bool { return len(c.commit.queues[0]) == n-1 }, 5*time.Second, time.Millisecond)
	log.gate <- struct{}{}
	<-log.calls
	log.gate <- struct{}{}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, 200, c, "request %d", i)
	}
	msgs := log.messages()
	total := 0
	for _, m := range msgs {
		total += len(m.events)
	}
	require.Equal(t, n, total)
	require.Len(t, msgs, 2, "first request alone, the %d queued behind it in one message", n-1)
}

// A log that does not acknowledge gets 503 with Retry-After, and nothing is
// reported as accepted.
func TestAppendFailureIs503(t *testing.T) {
	log := &fakeLog{err: errors.New("no responders")}
	srv, _ := startCollector(t, log, 2, func(c *Config) { c.AckTimeout = 200 * time.Millisecond })
	resp, body := post(t, srv.URL+"/v1/batch", `{"batch":[{"type":"page","anonymousId":"a"},{"type":"page","anonymousId":"b"}]}`)
	require.Equal(t, 503, resp.StatusCode, body)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Contains(t, body, `"code":"log_unavailable"`)
}

// Events of one request are split by partition, each message id is unique,
// and a message never exceeds FlushBytes (unless one request alone does).
func TestPartitionsAndMessageIDs(t *testing.T) {
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 8, func(c *Config) { c.FlushBytes = 4096 })
	var b strings.Builder
	b.WriteString(`{"batch":[`)
	for i := 0; i < 200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","event":"E","anonymousId":"v%d","messageId":"m%d"}`, i%37, i)
	}
	b.WriteString(`]}`)
	resp, body := post(t, srv.URL+"/v1/batch", b.String())
	require.Equal(t, 200, resp.StatusCode, body)
	ids := map[string]bool{}
	seen := map[string]int{}
	for _, m := range log.messages() {
		require.False(t, ids[m.id], "message id %s reused", m.id)
		ids[m.id] = true
		for _, e := range m.events {
			require.Equal(t, event.Partition("tn_test", e.AnonymousID, 8), m.partition)
			seen[e.MessageID]++
		}
	}
	require.Len(t, seen, 200)
}
