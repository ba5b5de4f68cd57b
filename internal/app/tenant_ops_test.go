package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/eventlog"
)

type statusView struct {
	Partitions       []api.PartitionStatus `json:"partitions"`
	Tenants          []api.TenantStatus    `json:"tenants"`
	ProcessingPaused bool                  `json:"processing_paused"`
}

func tenantStatus(t testing.TB, n *testNode, id string) api.TenantStatus {
	t.Helper()
	var st statusView
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/status", nil, &st))
	for _, ts := range st.Tenants {
		if ts.ID == id {
			return ts
		}
	}
	require.FailNow(t, "tenant not in status", id)
	return api.TenantStatus{}
}

func stage(ts api.TenantStatus, stream string) api.StageStatus {
	for _, s := range ts.Stages {
		if s.Stream == stream {
			return s
		}
	}
	return api.StageStatus{}
}

// TestTenantPauseResume: a paused tenant's events are accepted and parked,
// its lead writes refused, its campaign timers held, while another tenant
// goes on; on resume everything is applied once, in order, timers fire
// late rather than never, and the status shows each step.
func TestTenantPauseResume(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	acme, wk, ak := createTenant(t, n, "acme")
	beta, wkB, akB := createTenant(t, n, "beta")
	l := identifyLead(t, n, wk, ak, "anon-p", "u-p", nil)
	lb := identifyLead(t, n, wkB, akB, "anon-q", "u-q", nil)
	createCampaign(t, n, ak, map[string]any{
		"name":          "pings",
		"triggers":      []any{map[string]any{"type": "event_tracked", "event": "Ping"}},
		"qualification": "every_time",
		"flow": []any{
			map[string]any{"type": "change_score", "change": 1},
			map[string]any{"type": "wait", "duration": "2s"},
			map[string]any{"type": "change_score", "change": 10},
		},
	}, true)

	sendEvents(t, n, wk, trackOf("u-p", "Ping"))
	waitFor(t, 20*time.Second, "the first run scores 1", func() bool { return getLead(t, n, ak, l.ID).Score >= 1 })

	var tv api.TenantView
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodPost, "/api/v1/tenants/acme/pause", nil, &tv))
	require.True(t, tv.Paused)
	require.NotNil(t, tv.PausedAt)

	const pings = 20
	for range pings {
		sendEvents(t, n, wk, trackOf("u-p", "Ping"))
	}
	for range 5 {
		sendEvents(t, n, wkB, trackOf("u-q", "Pong"))
	}
	waitFor(t, 20*time.Second, "the other tenant's events applied", func() bool {
		return countActivities(t, n, akB, lb.ID, "track") == 5
	})
	waitFor(t, 20*time.Second, "the paused tenant's events parked", func() bool {
		return stage(tenantStatus(t, n, acme), eventlog.StreamEvents).Parked == pings
	})
	// Past the wait's due time: the timer is held, not fired.
	time.Sleep(3 * time.Second)
	require.Equal(t, 1, countActivities(t, n, ak, l.ID, "track"), "nothing of the paused tenant is applied")
	require.Equal(t, int64(1), getLead(t, n, ak, l.ID).Score, "the wait does not end while the tenant is paused")
	st, body := apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/"+l.ID+"/score", map[string]any{"change": 5}, nil)
	require.Equal(t, http.StatusConflict, st, "%s", body)
	require.Contains(t, string(body), api.CodeTenantPaused)
	ts := tenantStatus(t, n, acme)
	require.True(t, ts.Paused)
	ev := stage(ts, eventlog.StreamEvents)
	require.EqualValues(t, pings, ev.Backlog, "parked and waiting")
	require.GreaterOrEqual(t, ev.LagEvents, float64(pings))

	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodPost, "/api/v1/tenants/acme/resume", nil, &tv))
	require.False(t, tv.Paused)
	want := int64(1 + 10 + pings*(1+10))
	waitFor(t, 30*time.Second, fmt.Sprintf("score %d", want), func() bool { return getLead(t, n, ak, l.ID).Score >= want })
	require.Equal(t, pings+1, countActivities(t, n, ak, l.ID, "track"), "each parked event applied once")
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, want, getLead(t, n, ak, l.ID).Score, "every run's steps ran once")
	require.Len(t, getRuns(t, n, ak, "/api/v1/leads/"+l.ID+"/runs"), pings+1)
	ts = tenantStatus(t, n, acme)
	ev = stage(ts, eventlog.StreamEvents)
	require.Zero(t, ev.Backlog)
	require.EqualValues(t, pings, ev.Replayed)
	require.Zero(t, ev.LagEvents)
	st, body = apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/"+l.ID+"/score", map[string]any{"change": 5}, nil)
	require.Equal(t, http.StatusOK, st, "%s", body)

	// The other tenant was never parked.
	require.Zero(t, stage(tenantStatus(t, n, beta), eventlog.StreamEvents).Parked)

	m := metrics(t, n, "contrail_tenant_paused")
	require.Equal(t, 0.0, m[labels("tenant", acme)])
}

// TestProcessingPauseAndCampaignLimit: the admin can stop a node's
// processing (the log keeps the events) and start it again; a tenant's
// limit on active campaigns is enforced at publish and resume.
func TestProcessingPauseAndCampaignLimit(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	id, wk, ak := createTenant(t, n, "acme")

	var out map[string]bool
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodPost, "/api/v1/processing/pause", nil, &out))
	require.True(t, out["processing_paused"])
	sendEvents(t, n, wk, trackOf("u-1", "A"), trackOf("u-1", "B"))
	time.Sleep(200 * time.Millisecond)
	ts := tenantStatus(t, n, id)
	require.Zero(t, stage(ts, eventlog.StreamEvents).Processed, "nothing processed while paused")
	require.EqualValues(t, 2, stage(ts, eventlog.StreamEvents).LagEvents)
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodPost, "/api/v1/processing/resume", nil, &out))
	require.False(t, out["processing_paused"])
	waitFor(t, 20*time.Second, "processed after resume", func() bool {
		return stage(tenantStatus(t, n, id), eventlog.StreamEvents).Processed == 2
	})

	patchLimits(t, n, id, map[string]any{"max_active_campaigns": 1})
	spec := func(name string) map[string]any {
		return map[string]any{"name": name, "triggers": []any{map[string]any{"type": "event_tracked", "event": "X"}},
			"flow": []any{map[string]any{"type": "change_score", "change": 1}}}
	}
	first := createCampaign(t, n, ak, spec("one"), true)
	second := createCampaign(t, n, ak, spec("two"), false)
	st, body := apiDo(t, n, ak, http.MethodPost, "/api/v1/campaigns/"+second.ID+"/publish", nil, nil)
	require.Equal(t, http.StatusConflict, st, "%s", body)
	require.Contains(t, string(body), api.CodeCampaignLimit)
	campaignAction(t, n, ak, first.ID, "pause")
	campaignAction(t, n, ak, second.ID, "publish")
	st, body = apiDo(t, n, ak, http.MethodPost, "/api/v1/campaigns/"+first.ID+"/resume", nil, nil)
	require.Equal(t, http.StatusConflict, st, "%s", body)
	require.Contains(t, string(body), api.CodeCampaignLimit)
}
