package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/tenant"
)

// lowDisk is a Disk the test fills and frees.
type lowDisk struct{ low atomic.Bool }

func (d *lowDisk) Low() (bool, string) {
	if d.low.Load() {
		return true, "free disk space on /srv/secret-path is 1.0 MiB, below the floor of 256.0 MiB"
	}
	return false, ""
}

// startGuarded starts a collector for the one tenant tn (write key "wk")
// with disk (nil for none) on a clock stopped at recv, and returns its
// server, its log and the collector.
func startGuarded(t *testing.T, tn *tenant.Tenant, disk Disk) (*httptest.Server, *fakeLog, *Collector) {
	t.Helper()
	log := &fakeLog{}
	cfg := DefaultConfig()
	cfg.AckTimeout = 2 * time.Second
	c, err := New(cfg, Deps{
		Log: log, Partitions: 4, Tenants: fakeTenants{"wk": tn}, Disk: disk,
		Registerer: prometheus.NewRegistry(), Now: func() time.Time { return recv },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return srv, log, c
}

// intakeReq is one request to any collection endpoint.
type intakeReq struct {
	name        string
	method      string // default POST
	path        string
	contentType string // default application/json
	body        string
	basic       bool   // send wk as the Basic auth user
	msgID       string // of the request's event, when it is stored
}

// answer is the collector's answer, decoded when it is JSON.
type answer struct {
	status     int
	header     http.Header
	body       string
	ErrorField struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
	Results  []struct {
		MessageID string `json:"messageId"`
		Status    string `json:"status"`
		Code      string `json:"code"`
	} `json:"results"`
}

func do(t *testing.T, srv *httptest.Server, r intakeReq) answer {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, srv.URL+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	ct := r.contentType
	if ct == "" && method == http.MethodPost {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if r.basic {
		req.SetBasicAuth("wk", "")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(b, &a), "%s", b)
	}
	return a
}

// everyEndpoint is one request of each kind, authenticated by Basic auth
// or by a write key in the body or query.
var everyEndpoint = []intakeReq{
	{name: "batch", path: "/v1/batch", basic: true, body: `{"batch":[{"type":"track","event":"E","anonymousId":"a","messageId":"g-batch"}]}`, msgID: "g-batch"},
	{name: "batch, key in body", path: "/v1/b", body: `{"writeKey":"wk","batch":[{"type":"page","anonymousId":"a","messageId":"g-b"}]}`, msgID: "g-b"},
	{name: "track", path: "/v1/track", basic: true, body: `{"event":"E","anonymousId":"a","messageId":"g-track"}`, msgID: "g-track"},
	{name: "identify short path, key in body", path: "/v1/i", body: `{"writeKey":"wk","userId":"u","messageId":"g-i"}`, msgID: "g-i"},
	{name: "beacon", path: "/v1/beacon", contentType: "text/plain", body: `{"writeKey":"wk","type":"page","anonymousId":"a","messageId":"g-beacon"}`, msgID: "g-beacon"},
	{name: "pixel", method: http.MethodGet, path: "/v1/pixel/track?writeKey=wk&anonymousId=a&event=E&messageId=g-pixel", msgID: "g-pixel"},
	{name: "form", path: "/v1/form/contact-us", basic: true, contentType: urlencoded, body: "email=ann%40example.com&messageId=g-form", msgID: "g-form"},
	{name: "form, key in query", path: "/v1/form/contact-us?writeKey=wk", contentType: urlencoded, body: "email=bob%40example.com&messageId=g-form-q", msgID: "g-form-q"},
}

// pausedAt is when the test's paused tenants were paused.
var pausedAt = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// A paused tenant whose paused_intake is refuse gets 503 tenant_paused
// with Retry-After on every endpoint, and nothing is stored.
func TestPausedTenantRefused(t *testing.T) {
	t.Parallel()
	tn := &tenant.Tenant{ID: "tn_paused", Limits: tenant.DefaultLimits(), PausedAt: &pausedAt, Settings: tenant.Settings{PausedIntake: tenant.IntakeRefuse}}
	srv, log, c := startGuarded(t, tn, nil)
	for _, r := range everyEndpoint {
		a := do(t, srv, r)
		require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", r.name, a.body)
		require.Equal(t, "60", a.header.Get("Retry-After"), r.name)
		require.Equal(t, string(CodeTenantPaused), a.ErrorField.Code, "%s: %s", r.name, a.body)
		require.NotEmpty(t, a.ErrorField.Message, r.name)
	}
	require.Empty(t, log.messages(), "nothing of a refused request is stored")
	require.Equal(t, float64(len(everyEndpoint)), testutil.ToFloat64(c.metrics.refusedRequests.WithLabelValues(tn.ID, string(CodeTenantPaused))))
	require.Zero(t, testutil.CollectAndCount(c.metrics.rejectedEvents), "refused before any event was read")

	// A bad write key is still a 401: the pause belongs to the tenant.
	a := do(t, srv, intakeReq{path: "/v1/batch", body: `{"writeKey":"nope","batch":[]}`})
	require.Equal(t, http.StatusUnauthorized, a.status)

	// Resumed, the tenant's events are taken again.
	resumed := *tn
	resumed.PausedAt = nil
	srv2, log2, _ := startGuarded(t, &resumed, nil)
	require.Equal(t, http.StatusOK, do(t, srv2, everyEndpoint[0]).status)
	require.Len(t, storedEvents(log2), 1)
}

// A paused tenant that accepts intake (the default) is answered as usual:
// its events are stored and the shards park them.
func TestPausedTenantAccepted(t *testing.T) {
	t.Parallel()
	for _, intake := range []string{"", tenant.IntakeAccept} {
		t.Run("intake="+intake, func(t *testing.T) {
			t.Parallel()
			tn := &tenant.Tenant{ID: "tn_paused", Limits: tenant.DefaultLimits(), PausedAt: &pausedAt, Settings: tenant.Settings{PausedIntake: intake}}
			srv, log, _ := startGuarded(t, tn, nil)
			var want []string
			for _, r := range everyEndpoint {
				a := do(t, srv, r)
				require.Less(t, a.status, 400, "%s: %s", r.name, a.body)
				require.Empty(t, a.header.Get("Retry-After"), r.name)
				want = append(want, r.msgID)
			}
			var got []string
			for _, e := range storedEvents(log) {
				got = append(got, e.MessageID)
			}
			require.ElementsMatch(t, want, got)
		})
	}
}

// With over_quota drop, a request over the daily quota is answered 200:
// the events that fit are stored, in request order, and each event over
// the quota has the result quota_exceeded and is not stored.
func TestQuotaDropPerEventResults(t *testing.T) {
	t.Parallel()
	tn := &tenant.Tenant{ID: "tn_quota", Limits: tenant.DefaultLimits(), Settings: tenant.Settings{OverQuota: tenant.OverQuotaDrop}}
	tn.Limits.DailyQuota = 5
	srv, log, c := startGuarded(t, tn, nil)
	track := func(id string) string {
		// Visitors spread over the partitions, so dropped events come out
		// of several parts of the request.
		return fmt.Sprintf(`{"type":"track","event":"E","anonymousId":"v-%s","messageId":"%s"}`, id, id)
	}
	batch := func(evs ...string) intakeReq {
		return intakeReq{path: "/v1/batch", basic: true, body: `{"batch":[` + strings.Join(evs, ",") + `]}`}
	}

	a := do(t, srv, batch(track("m1"), track("m2"), track("m3")))
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, 3, a.Accepted)

	// 2 left: m4 and m5 fit; the invalid event takes no quota; m6, m7 do not fit.
	a = do(t, srv, batch(track("m4"), `{"type":"track","event":"E","messageId":"bad"}`, track("m5"), track("m6"), track("m7")))
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, 2, a.Accepted, a.body)
	require.Equal(t, 3, a.Rejected, a.body)
	type res struct{ id, status, code string }
	var got []res
	for _, r := range a.Results {
		got = append(got, res{r.MessageID, r.Status, r.Code})
	}
	require.Equal(t, []res{
		{"m4", "accepted", ""},
		{"bad", "rejected", string(CodeMissingID)},
		{"m5", "accepted", ""},
		{"m6", "rejected", string(CodeQuotaExceeded)},
		{"m7", "rejected", string(CodeQuotaExceeded)},
	}, got)

	// The quota is used up: every event is dropped, the answer is still 200.
	a = do(t, srv, batch(track("m8"), track("m9")))
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, 0, a.Accepted)
	require.Equal(t, 2, a.Rejected)
	a = do(t, srv, intakeReq{path: "/v1/track", basic: true, body: `{"event":"E","anonymousId":"a","messageId":"m10"}`})
	require.Equal(t, http.StatusOK, a.status, a.body)
	require.Equal(t, string(CodeQuotaExceeded), a.Results[0].Code)
	a = do(t, srv, intakeReq{method: http.MethodGet, path: "/v1/pixel/track?writeKey=wk&anonymousId=a&event=E&messageId=m11"})
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, string(CodeQuotaExceeded), a.Results[0].Code, "a pixel with a rejected event answers JSON, not the GIF")

	var stored []string
	for _, e := range storedEvents(log) {
		stored = append(stored, e.MessageID)
	}
	require.ElementsMatch(t, []string{"m1", "m2", "m3", "m4", "m5"}, stored)
	require.Equal(t, 5.0, testutil.ToFloat64(c.metrics.accepted.WithLabelValues(tn.ID)))
	require.Equal(t, 6.0, testutil.ToFloat64(c.metrics.rejectedEvents.WithLabelValues(tn.ID, string(CodeQuotaExceeded))), "m6..m11")
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.rejectedEvents.WithLabelValues(tn.ID, string(CodeMissingID))))
	require.Zero(t, testutil.CollectAndCount(c.metrics.refusedRequests), "no request was refused")
	require.NoError(t, testutil.CollectAndCompare(newQuotaCollector(c.admission, c.now), strings.NewReader(`
# HELP contrail_collect_quota_used Events admitted today (UTC) against the tenant's daily quota, on this node; tenants with a quota only.
# TYPE contrail_collect_quota_used gauge
contrail_collect_quota_used{tenant="tn_quota"} 5
`)))
}

// Without the setting, over the quota is refused whole, as before.
func TestQuotaRefuseIsTheDefault(t *testing.T) {
	t.Parallel()
	tn := &tenant.Tenant{ID: "tn_quota", Limits: tenant.DefaultLimits()}
	tn.Limits.DailyQuota = 1
	srv, log, _ := startGuarded(t, tn, nil)
	a := do(t, srv, intakeReq{path: "/v1/batch", basic: true, body: `{"batch":[{"type":"page","anonymousId":"a"},{"type":"page","anonymousId":"b"}]}`})
	require.Equal(t, http.StatusTooManyRequests, a.status, a.body)
	require.Equal(t, string(CodeQuotaExceeded), a.ErrorField.Code)
	require.Equal(t, "43200", a.header.Get("Retry-After"), "noon to midnight UTC")
	require.Empty(t, log.messages())
}

// While the disk is low, every endpoint answers 503 disk_low with
// Retry-After, and nothing is written; once space is back, events are
// taken again.
func TestDiskLowRefuses(t *testing.T) {
	t.Parallel()
	disk := &lowDisk{}
	disk.low.Store(true)
	tn := &tenant.Tenant{ID: "tn_disk", Limits: tenant.DefaultLimits()}
	srv, log, c := startGuarded(t, tn, disk)
	for _, r := range everyEndpoint {
		a := do(t, srv, r)
		require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", r.name, a.body)
		require.Equal(t, "30", a.header.Get("Retry-After"), r.name)
		require.Equal(t, string(CodeDiskLow), a.ErrorField.Code, "%s: %s", r.name, a.body)
		require.NotContains(t, a.body, "secret-path", "the server's paths are not told to clients")
	}
	require.Empty(t, log.messages())
	require.Equal(t, float64(len(everyEndpoint)), testutil.ToFloat64(c.metrics.refusedRequests.WithLabelValues(tn.ID, string(CodeDiskLow))))

	// A paused tenant that refuses intake is told so, disk or not.
	paused := &tenant.Tenant{ID: "tn_p", Limits: tenant.DefaultLimits(), PausedAt: &pausedAt, Settings: tenant.Settings{PausedIntake: tenant.IntakeRefuse}}
	srvP, _, _ := startGuarded(t, paused, disk)
	require.Equal(t, string(CodeTenantPaused), do(t, srvP, everyEndpoint[0]).ErrorField.Code)

	disk.low.Store(false)
	for _, r := range everyEndpoint {
		a := do(t, srv, r)
		require.Less(t, a.status, 400, "%s: %s", r.name, a.body)
	}
	require.Len(t, storedEvents(log), len(everyEndpoint))
}
