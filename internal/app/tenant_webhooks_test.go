package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	analytics "gopkg.in/segmentio/analytics-go.v3"

	"github.com/contrailhq/contrail/internal/config"
)

// segmentSend sends msgs with Segment's Go library and waits until they
// are accepted.
func segmentSend(t testing.TB, n *testNode, writeKey string, msgs ...analytics.Message) {
	t.Helper()
	cb := &segmentCallback{}
	client, err := analytics.NewWithConfig(writeKey, analytics.Config{
		Endpoint: n.URL, Interval: time.Minute, Callback: cb, Logger: segmentLogger{t},
	})
	require.NoError(t, err)
	for _, m := range msgs {
		require.NoError(t, client.Enqueue(m))
	}
	require.NoError(t, client.Close()) // flushes
	cb.mu.Lock()
	defer cb.mu.Unlock()
	require.Empty(t, cb.failed, "analytics-go reported failures")
	require.Len(t, cb.succeeded, len(msgs))
}

// orderHook is the body the campaign of TestTenantWebhookIsolation sends.
type orderHook struct {
	Lead  string `json:"lead"`
	Order string `json:"order"`
}

// TestTenantWebhookIsolation: two tenants' campaigns call a webhook on
// every order. The receiver of "noisy" answers 500 to everything (slowly),
// so its deliveries keep failing and retrying, held to the one attempt at
// a time its limits allow; meanwhile every webhook of "quiet" arrives, once
// each, on a node with only four delivery workers.
func TestTenantWebhookIsolation(t *testing.T) {
	t.Parallel()
	const (
		leads  = 5
		orders = 2 // per lead
	)
	n := campaignNode(t, func(c *config.Config) {
		c.Deliver.Workers = 4
		c.Deliver.MaxAttempts = 1_000_000 // noisy keeps retrying for the whole test
	})
	noisyID, noisyWK, noisyAK := createTenant(t, n, "noisy")
	quietID, quietWK, quietAK := createTenant(t, n, "quiet")
	patchLimits(t, n, noisyID, map[string]any{"webhook_concurrency": 1})

	noisy := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		// Slow as well as broken, so that noisy's attempts overlap and
		// meet its limit.
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Millisecond):
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	quiet := newHookReceiver(t, nil)

	want := map[orderHook]bool{}
	for _, tn := range []struct {
		name, wk, ak string
		hook         *hookReceiver
	}{{"noisy", noisyWK, noisyAK, noisy}, {"quiet", quietWK, quietAK, quiet}} {
		createCampaign(t, n, tn.ak, map[string]any{
			"name":          "orders",
			"triggers":      []any{map[string]any{"type": "event_tracked", "event": "Order Completed"}},
			"qualification": "every_time",
			"flow": []any{map[string]any{
				"type": "call_webhook", "url": tn.hook.URL + "/orders",
				"body": `{"lead":"{{lead.email}}","order":"{{event.properties.order}}"}`,
			}},
		}, true)

		var identifies, tracks []analytics.Message
		for i := range leads {
			user := fmt.Sprintf("%s-%d", tn.name, i)
			email := user + "@example.com"
			identifies = append(identifies, analytics.Identify{UserId: user, Traits: analytics.NewTraits().SetEmail(email)})
			for j := range orders {
				order := fmt.Sprintf("o-%d-%d", i, j)
				tracks = append(tracks, analytics.Track{UserId: user, Event: "Order Completed",
					Properties: analytics.NewProperties().Set("order", order)})
				if tn.name == "quiet" {
					want[orderHook{Lead: email, Order: order}] = true
				}
			}
		}
		segmentSend(t, n, tn.wk, identifies...)
		for i := range leads {
			waitLead(t, n, tn.ak, fmt.Sprintf("user_id=%s-%d", tn.name, i), nil)
		}
		segmentSend(t, n, tn.wk, tracks...)
	}

	keysOf := func(calls []hookCall) map[string]int {
		keys := map[string]int{}
		for _, c := range calls {
			keys[c.Header.Get("Idempotency-Key")]++
		}
		return keys
	}
	require.Eventually(t, func() bool {
		return len(keysOf(quiet.Calls())) == len(want)
	}, 60*time.Second, 10*time.Millisecond, "every webhook of quiet arrives")

	calls := quiet.Calls()
	require.Len(t, calls, len(want), "each of quiet's webhooks once")
	for key, count := range keysOf(calls) {
		require.NotEmpty(t, key)
		require.Equal(t, 1, count, "webhook %s", key)
	}
	got := map[orderHook]bool{}
	for _, c := range calls {
		var h orderHook
		require.NoError(t, json.Unmarshal(c.Body, &h), "%s", c.Body)
		got[h] = true
	}
	require.Equal(t, want, got)

	// Meanwhile noisy's deliveries were failing and are retrying still, at
	// most one at a time: every lead's first webhook over and over, its
	// second waiting behind it.
	attempts := func(tenantID, outcome string) float64 {
		t.Helper()
		return metrics(t, n, "contrail_deliver_attempts_total")[labels("tenant", tenantID, "kind", "webhook", "outcome", outcome)]
	}
	throttled := func(tenantID string) float64 {
		t.Helper()
		return metrics(t, n, "contrail_deliver_tenant_throttled_total")[labels("tenant", tenantID)]
	}
	require.Positive(t, attempts(noisyID, "retry"))
	require.Zero(t, attempts(noisyID, "ok"))
	waitFor(t, 60*time.Second, "quiet's attempts counted", func() bool { return attempts(quietID, "ok") == float64(len(want)) })
	require.Eventually(t, func() bool {
		return len(keysOf(noisy.Calls())) == leads
	}, 60*time.Second, 10*time.Millisecond, "the first webhook of each of noisy's leads is tried")
	waitFor(t, 60*time.Second, "noisy held to its webhook_concurrency", func() bool { return throttled(noisyID) > 0 })
	require.Len(t, keysOf(noisy.Calls()), leads, "a lead's second webhook waits behind its first")
	require.Zero(t, attempts(quietID, "retry"))
	require.Zero(t, throttled(quietID))
}
