package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

// patchSettings changes some of a tenant's settings through the admin API.
func patchSettings(t testing.TB, n *testNode, tenantID string, settings map[string]any) {
	t.Helper()
	st := adminDo(t, n, http.MethodPatch, "/api/v1/tenants/"+tenantID+"/settings", settings, nil)
	require.Equal(t, http.StatusOK, st, "patching settings of %s", tenantID)
}

// TestGuardQuotaDrop: with over_quota drop, the batch that crosses the daily
// quota is answered 200, the events over it are rejected quota_exceeded one
// by one, and only the events within it are stored and processed.
func TestGuardQuotaDrop(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "quota-drop")
	// The admin API answers once this node applied the change.
	patchSettings(t, n, tenantID, map[string]any{"over_quota": "drop"})
	patchLimits(t, n, tenantID, map[string]any{"daily_quota": 5})

	var evs []any
	for i := range 8 {
		evs = append(evs, track(fmt.Sprintf("qd-%d", i), fmt.Sprintf("qd-visitor-%d", i)))
	}
	resp := send(t, n, collectReq{basicKey: key, body: batchBody(t, nil, evs...)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, 5, resp.Accepted, "answer: %s", resp.Body)
	require.Equal(t, 3, resp.Rejected, "answer: %s", resp.Body)
	require.Len(t, resp.Results, 8)
	for i, r := range resp.Results {
		require.Equal(t, fmt.Sprintf("qd-%d", i), r.MessageID)
		if i < 5 {
			require.Equal(t, "accepted", r.Status, "qd-%d is within the quota", i)
		} else {
			require.Equal(t, "rejected", r.Status, "qd-%d is over the quota", i)
			require.Equal(t, "quota_exceeded", r.Code)
		}
	}
	resp = send(t, n, collectReq{basicKey: key, body: batchBody(t, nil, track("qd-late", "qd-visitor-0"))})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, 0, resp.Accepted)
	require.Equal(t, "quota_exceeded", resp.Results[0].Code)

	stored := byMessageID(t, readAll(t, n), tenantID)
	require.Len(t, stored, 5)
	for i := range 5 {
		require.Contains(t, stored, fmt.Sprintf("qd-%d", i))
	}
	caughtUp(t, n)
	processed := metrics(t, n, "contrail_shard_events_processed_total")
	require.Equal(t, 5.0, processed[labels("stream", "EVENTS", "tenant", tenantID)], "only the events within the quota are processed")
	rejected := metrics(t, n, "contrail_collect_events_rejected_total")
	require.Equal(t, 4.0, rejected[labels("reason", "quota_exceeded", "tenant", tenantID)])
	require.Equal(t, 5.0, metrics(t, n, "contrail_collect_quota_used")[labels("tenant", tenantID)])
	refused := metrics(t, n, "contrail_collect_requests_refused_total")
	require.Zero(t, refused[labels("reason", "quota_exceeded", "tenant", tenantID)], "no request was refused")
}

// TestGuardPausedRefuse: a paused tenant whose paused_intake is refuse gets
// 503 tenant_paused; one that accepts (the default) is answered as usual;
// resumed, the first tenant's events are taken again. The node runs on a
// NATS server the test reaches, to pause the tenants in the tenant store.
func TestGuardPausedRefuse(t *testing.T) {
	t.Parallel()
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{StoreDir: t.TempDir(), Listen: true, ServerName: "guard-nats"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	n := startNode(t, func(c *config.Config) { c.Log.NATSURL = ns.ClientURL() })
	refuseID, refuseKey, _ := createTenant(t, n, "paused-refuse")
	acceptID, acceptKey, _ := createTenant(t, n, "paused-accept")
	patchSettings(t, n, refuseID, map[string]any{"paused_intake": "refuse"})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(ns.ClientURL(), nats.Name("test-tenants"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	store, err := tenant.OpenStore(ctx, js, 1, nil)
	require.NoError(t, err)
	for _, id := range []string{refuseID, acceptID} {
		tn, err := store.SetPaused(ctx, id, true)
		require.NoError(t, err)
		require.True(t, tn.IsPaused())
	}

	// The collector learns of the pause through the KV watch.
	probe := 0
	var resp collectResp
	require.Eventually(t, func() bool {
		probe++
		resp = probeSend(n, collectReq{basicKey: refuseKey, body: events(fmt.Sprintf("pr-probe-%d", probe), 1, nil)})
		return resp.Status == http.StatusServiceUnavailable
	}, 10*time.Second, 10*time.Millisecond, "the collector refuses the paused tenant")
	require.Equal(t, "tenant_paused", resp.Error.Code, "answer: %s", resp.Body)
	require.Equal(t, "60", resp.Header.Get("Retry-After"))
	resp = send(t, n, collectReq{path: "/v1/track", basicKey: refuseKey, body: mustJSON(t, track("pr-track", "pr-visitor"))})
	require.Equal(t, http.StatusServiceUnavailable, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, "tenant_paused", resp.Error.Code)
	refused := metrics(t, n, "contrail_collect_requests_refused_total")
	require.Equal(t, 2.0, refused[labels("reason", "tenant_paused", "tenant", refuseID)])

	// Paused with the default intake: accepted, and kept for the resume.
	resp = send(t, n, collectReq{basicKey: acceptKey, body: events("pa", 3, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, 3, resp.Accepted)

	_, err = store.SetPaused(ctx, refuseID, false)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		probe++
		return probeSend(n, collectReq{basicKey: refuseKey, body: events(fmt.Sprintf("pr-probe-%d", probe), 1, nil)}).Status == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "the resumed tenant's events are taken again")

	ids := byMessageID(t, readAll(t, n), refuseID)
	require.NotContains(t, ids, "pr-track", "nothing of a refused request is stored")
	require.Len(t, byMessageID(t, readAll(t, n), acceptID), 3)
}

// TestGuardDiskLow: below the free-space floor (here, more than any disk
// has), the collector answers 503 disk_low with Retry-After and /readyz
// answers 503 saying why.
func TestGuardDiskLow(t *testing.T) {
	t.Parallel()
	n := startNode(t, func(c *config.Config) { c.Collect.MinFreeBytes = 1 << 62 })
	var created struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	require.Equal(t, http.StatusCreated, adminDo(t, n, http.MethodPost, "/api/v1/tenants", map[string]any{"name": "disk-low"}, &created))

	// Until the collector knows the key it answers 401, then 503.
	var resp collectResp
	require.Eventually(t, func() bool {
		resp = probeSend(n, collectReq{basicKey: created.WriteKey, body: events("dl", 2, nil)})
		return resp.Status != http.StatusUnauthorized
	}, 10*time.Second, 5*time.Millisecond, "the collector learns the new write key")
	require.Equal(t, http.StatusServiceUnavailable, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, "disk_low", resp.Error.Code)
	require.Equal(t, "30", resp.Header.Get("Retry-After"))
	require.NotContains(t, string(resp.Body), n.DataDir, "clients are not told the server's paths")

	r, err := httpClient.Get(n.URL + "/readyz")
	require.NoError(t, err)
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode, "%s", body)
	require.Contains(t, string(body), "free disk space on "+n.DataDir)
	require.Contains(t, string(body), "below the floor of 4.0 EiB")
	r, err = httpClient.Get(n.URL + "/healthz")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode, "the process is still healthy")

	require.Equal(t, 1.0, metrics(t, n, "contrail_disk_low")[""])
	require.Positive(t, metrics(t, n, "contrail_disk_free_bytes")[labels("dir", n.DataDir)])
	require.GreaterOrEqual(t, metrics(t, n, "contrail_collect_requests_refused_total")[labels("reason", "disk_low", "tenant", created.ID)], 1.0)
	require.Empty(t, byMessageID(t, readAll(t, n), created.ID), "nothing is written while the disk is low")
}

// TestGuardReadyWithDiskGuard: the default floor is far below the free space
// of the test machine, and /readyz says ready.
func TestGuardReadyWithDiskGuard(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	require.Positive(t, n.Cfg.Collect.MinFreeBytes, "the guard is on by default")
	r, err := httpClient.Get(n.URL + "/readyz")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, 0.0, metrics(t, n, "contrail_disk_low")[""])
}
