package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
)

// bpEffect is one webhook the backpressure campaign asks for: the step
// (1 or 2) of the run started by event seq of a lead.
type bpEffect struct {
	Lead string `json:"lead"`
	Seq  string `json:"seq"`
	Step int    `json:"step"`
}

// bpReceiver is a webhook receiver that deduplicates by Idempotency-Key,
// as the issue asks receivers to do. It answers after delay, and while
// blocked only once released.
type bpReceiver struct {
	*httptest.Server
	delay atomic.Int64 // time.Duration before each answer

	mu       sync.Mutex
	gate     chan struct{}       // while not nil, answers wait for it to close
	calls    int                 // requests, repeats included
	first    []bpEffect          // the first arrival of each key, in arrival order
	keys     map[string]bpEffect // every key seen
	answered map[string]bool     // keys answered 200
	bad      []string            // requests that do not decode
}

func newBPReceiver(t testing.TB) *bpReceiver {
	t.Helper()
	b := &bpReceiver{keys: map[string]bpEffect{}, answered: map[string]bool{}}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *bpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	body, err := io.ReadAll(r.Body)
	var e bpEffect
	if err == nil {
		err = json.Unmarshal(body, &e)
	}
	b.mu.Lock()
	b.calls++
	switch _, seen := b.keys[key]; {
	case err != nil || key == "":
		b.bad = append(b.bad, fmt.Sprintf("key %q body %s: %v", key, body, err))
	case !seen:
		b.keys[key] = e
		b.first = append(b.first, e)
	}
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-r.Context().Done():
			return
		case <-gate:
		}
	}
	// A slow receiver, not a wait for a condition: the sender must lag.
	select {
	case <-r.Context().Done():
		return
	case <-time.After(time.Duration(b.delay.Load())):
	}
	w.WriteHeader(http.StatusOK)
	b.mu.Lock()
	b.answered[key] = true
	b.mu.Unlock()
}

// block makes the receiver hold every request until release.
func (b *bpReceiver) block() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gate = make(chan struct{})
}

// release answers the requests held since block, and the next at once.
func (b *bpReceiver) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.gate)
	b.gate = nil
}

// answeredCount is the number of distinct keys answered 200.
func (b *bpReceiver) answeredCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.answered)
}

// TestCampaignBackpressure: while the receiver keeps up, webhooks are
// handed over in memory and the outbox stays (nearly) unwritten; while it
// is slow, they spill to the outbox. Across the switch in both
// directions every webhook arrives, and each lead's arrive in the order
// the runs asked for them.
func TestCampaignBackpressure(t *testing.T) {
	t.Parallel()
	const (
		leads = 50
		// handover is far above the scheduling stalls of a loaded -race
		// run, so that a receiver that keeps up makes no spills; slow is
		// well above handover, so that a slow receiver always does.
		handover = 500 * time.Millisecond
		slow     = 750 * time.Millisecond
	)
	n := campaignNode(t, func(c *config.Config) {
		c.Deliver.HandoverWait = handover
		// A lead shard holds its worker while it waits on the sender: enough
		// workers let the shards wait at once.
		c.Process.Workers = 16
		// Every webhook of the slow phase can be in progress at once.
		c.Deliver.PerEndpointConcurrency = 64
		// Rescans of the outbox run while effects spill and drain.
		c.Deliver.RescanInterval = 50 * time.Millisecond
	})
	_, wk, ak := createTenant(t, n, "acme")
	rcv := newBPReceiver(t)

	users := make([]string, leads)
	identifies := make([]any, leads)
	for i := range users {
		users[i] = fmt.Sprintf("bp-%02d", i)
		identifies[i] = map[string]any{"type": "identify", "userId": users[i], "traits": map[string]any{"email": users[i] + "@acme.test"}}
	}
	sendEvents(t, n, wk, identifies...)
	leadIDs := make([]string, leads)
	for i, u := range users {
		leadIDs[i] = waitLead(t, n, ak, "user_id="+u, nil).ID
	}

	createCampaign(t, n, ak, map[string]any{
		"name":          "backpressure",
		"triggers":      []any{map[string]any{"type": "event_tracked", "event": "BP"}},
		"qualification": "every_time",
		"flow": []any{
			map[string]any{"type": "call_webhook", "url": rcv.URL + "/bp", "body": `{"lead":"{{lead.id}}","seq":"{{event.properties.seq}}","step":1}`},
			map[string]any{"type": "call_webhook", "url": rcv.URL + "/bp", "body": `{"lead":"{{lead.id}}","seq":"{{event.properties.seq}}","step":2}`},
		},
	}, true)

	outboxWrites := func() float64 {
		t.Helper()
		return metrics(t, n, "contrail_outbox_writes_total")[labels("stream", "LEADS")]
	}
	// want is, per lead id, the webhooks in the order they were asked for.
	want := map[string][]bpEffect{}
	nextSeq := 1
	// sendRound sends one event to every lead: one request per event
	// (many small log messages, as a busy site makes) or one request for
	// all (few messages, so few hand-overs that wait the full
	// HandoverWait). Rounds go one after the other, so a lead's runs, and
	// so its webhooks, have a defined order.
	sendRound := func(oneRequest bool) {
		t.Helper()
		seq := nextSeq
		nextSeq++
		s := strconv.Itoa(seq)
		events := make([]any, len(users))
		for i, u := range users {
			ev := trackOf(u, "BP")
			ev["properties"] = map[string]any{"seq": seq}
			events[i] = ev
			want[leadIDs[i]] = append(want[leadIDs[i]], bpEffect{Lead: leadIDs[i], Seq: s, Step: 1}, bpEffect{Lead: leadIDs[i], Seq: s, Step: 2})
		}
		if oneRequest {
			sendEvents(t, n, wk, events...)
			return
		}
		for _, ev := range events {
			sendEvents(t, n, wk, ev)
		}
	}
	// waitAnswered waits until the receiver answered every webhook asked
	// for so far.
	waitAnswered := func(phase string) {
		t.Helper()
		total := 2 * leads * (nextSeq - 1)
		waitFor(t, 20*time.Second, fmt.Sprintf("%s: %d webhooks answered", phase, total), func() bool {
			return rcv.answeredCount() >= total
		})
	}

	before := outboxWrites()
	require.Zero(t, before)

	// Phase 1: the receiver keeps up; effects are handed over in memory.
	sendRound(false)
	sendRound(false)
	waitAnswered("fast")
	afterFast := outboxWrites()
	t.Logf("outbox writes: %v while the receiver keeps up (%d webhooks)", afterFast-before, 4*leads)
	require.LessOrEqual(t, afterFast-before, 2.0, "a receiver that keeps up leaves the outbox (nearly) unwritten")

	// Phase 2: the receiver is slow; effects spill to the outbox.
	rcv.delay.Store(int64(slow))
	sendRound(true)
	sendRound(true)
	waitAnswered("slow")
	afterSlow := outboxWrites()
	t.Logf("outbox writes: %v while the receiver is slow (%d webhooks)", afterSlow-afterFast, 4*leads)
	require.Greater(t, afterSlow, afterFast, "a slow receiver makes effects spill to the outbox")

	// Phase 3: the receiver keeps up again, and the outbox is left alone
	// again.
	rcv.delay.Store(0)
	sendRound(false)
	waitAnswered("fast again")
	afterAgain := outboxWrites()
	t.Logf("outbox writes: %v once the receiver keeps up again (%d webhooks)", afterAgain-afterSlow, 2*leads)
	require.LessOrEqual(t, afterAgain-afterSlow, 2.0, "once the receiver keeps up again, the outbox is left alone")

	// Phase 4, hand-overs behind spilled effects: the receiver holds every
	// request, so a round spills whole, and the next round of each lead is
	// handed over behind it, in the outbox, and spills too. Released, both
	// drain.
	rcv.block()
	sendRound(true)
	sendRound(true)
	waitFor(t, 20*time.Second, "both held rounds spilled", func() bool {
		return outboxWrites()-afterAgain >= 4*leads
	})
	rcv.release()
	waitAnswered("released")
	t.Logf("outbox writes: %v while the receiver held every request (%d webhooks)", outboxWrites()-afterAgain, 4*leads)

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	t.Logf("%d requests for %d webhooks", rcv.calls, len(rcv.keys))
	require.Empty(t, rcv.bad)
	require.Len(t, rcv.keys, 2*leads*(nextSeq-1), "every webhook arrived, each with its own key")
	got := map[string][]bpEffect{}
	for _, e := range rcv.first {
		got[e.Lead] = append(got[e.Lead], e)
	}
	require.Len(t, got, leads)
	for _, id := range leadIDs {
		require.Equal(t, want[id], got[id], "lead %s: webhooks arrive in the order they were asked for", id)
	}
}
