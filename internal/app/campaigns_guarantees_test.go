package app_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The guarantees of issue 6 as a node keeps them: one effect per key
// through retries, atomic qualification, durable timers.

// TestCampaignWebhookRetriesKeepKey: a receiver that does the work, then
// answers too late twice, sees three attempts with one key and does the
// work once.
func TestCampaignWebhookRetriesKeepKey(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	var mu sync.Mutex
	effects := map[string]int{}
	hook := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, i int) {
		mu.Lock()
		effects[r.Header.Get("Idempotency-Key")]++ // the work, done once per key
		mu.Unlock()
		if i <= 2 {
			select { // past the step's timeout: the sender gives up on it
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	l := identifyLead(t, n, wk, ak, "anon-b", "u-b", map[string]any{"email": "bob@acme.test"})
	c := createCampaign(t, n, ak, map[string]any{
		"name":     "demo requests",
		"triggers": []any{map[string]any{"type": "event_tracked", "event": "Demo Requested"}},
		"flow":     []any{map[string]any{"type": "call_webhook", "url": hook.URL, "body": `{"lead":"{{lead.id}}"}`, "timeout_ms": 200}},
	}, true)

	sendEvents(t, n, wk, trackOf("u-b", "Demo Requested"))
	var run runView
	waitFor(t, 30*time.Second, "the webhook delivered after retries", func() bool {
		runs := getRuns(t, n, ak, "/api/v1/campaigns/"+c.ID+"/runs")
		if len(runs) != 1 || len(runs[0].Steps) != 1 || runs[0].Steps[0].Delivery == nil {
			return false
		}
		run = runs[0]
		return run.Steps[0].Delivery.Status == "delivered"
	})
	require.Equal(t, l.ID, run.Lead)
	require.GreaterOrEqual(t, run.Steps[0].Delivery.Attempts, 3)
	calls := hook.Calls()
	require.GreaterOrEqual(t, len(calls), 3)
	for _, call := range calls {
		require.Equal(t, run.Steps[0].Key, call.Header.Get("Idempotency-Key"), "every attempt carries the step's key")
		require.Equal(t, run.Steps[0].Key, call.Header.Get("webhook-id"))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, effects, 1, "a receiver deduplicating by key does the work once")
}

// TestCampaignConcurrentTriggersOnce: 50 identical trigger events sent at
// once make one run of a "once" campaign.
func TestCampaignConcurrentTriggersOnce(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	l := identifyLead(t, n, wk, ak, "anon-d", "u-d", map[string]any{"email": "di@acme.test"})
	c := createCampaign(t, n, ak, map[string]any{
		"name":          "signups",
		"triggers":      []any{map[string]any{"type": "event_tracked", "event": "Signed Up"}},
		"qualification": "once",
		"flow":          []any{map[string]any{"type": "change_score", "change": 7}},
	}, true)
	body := batchBody(t, nil, trackOf("u-d", "Signed Up"))
	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		wg.Go(func() {
			resp, err := trySend(n, collectReq{basicKey: wk, body: body})
			if err == nil {
				statuses[i] = resp.Status
			}
		})
	}
	wg.Wait()
	for i, st := range statuses {
		require.Equal(t, http.StatusOK, st, "request %d", i)
	}
	waitFor(t, 30*time.Second, "50 events applied", func() bool { return countActivities(t, n, ak, l.ID, "track") == 50 })
	require.Len(t, getRuns(t, n, ak, "/api/v1/campaigns/"+c.ID+"/runs"), 1)
	require.Equal(t, int64(7), getLead(t, n, ak, l.ID).Score)
}

// TestCampaignWaitSurvivesRestart: a node stopped during a wait fires the
// timer once after it starts again.
func TestCampaignWaitSurvivesRestart(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	l := identifyLead(t, n, wk, ak, "anon-e", "u-e", map[string]any{"email": "eve@acme.test"})
	c := createCampaign(t, n, ak, map[string]any{
		"name":     "trials",
		"triggers": []any{map[string]any{"type": "event_tracked", "event": "Trial Started"}},
		"flow":     []any{map[string]any{"type": "wait", "duration": "2s"}, map[string]any{"type": "change_score", "change": 5}},
	}, true)
	sendEvents(t, n, wk, trackOf("u-e", "Trial Started"))
	path := "/api/v1/campaigns/" + c.ID + "/runs"
	waitFor(t, 20*time.Second, "the run waits", func() bool {
		runs := getRuns(t, n, ak, path)
		return len(runs) == 1 && runs[0].Status == "waiting"
	})
	n.stop(t)

	n2 := startNodeWith(t, n.Cfg)
	var run runView
	waitFor(t, 30*time.Second, "the run completes after the restart", func() bool {
		runs := getRuns(t, n2, ak, path)
		if len(runs) != 1 {
			return false
		}
		run = runs[0]
		return run.Status == "completed"
	})
	require.Len(t, run.Steps, 2)
	require.Equal(t, 1, strings.Count(run.Steps[0].Result, "timer fired"), "%s", run.Steps[0].Result)
	require.Equal(t, int64(5), getLead(t, n2, ak, l.ID).Score, "the step after the wait ran once")
	require.Equal(t, 1, countActivities(t, n2, ak, l.ID, "change_score"))
}
