package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/report/reporttest"
	"github.com/contrailhq/contrail/internal/tenant"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/reports")

// Two tenants with fixed ids and API keys.
const (
	acmeID, acmeKey     = "tn_acme", "ak_acme_secret"
	globexID, globexKey = "tn_globex", "ak_globex_secret"
)

// fakeTenants serves the tenants from a map: Get for the admin token's
// tenant=, ByAPIKey and ByID for the report API and the visitor shards.
// The other methods of api.Tenants are not used by the report API.
type fakeTenants struct {
	api.Tenants
	byID map[string]*tenant.Tenant
}

func (f *fakeTenants) Get(_ context.Context, idOrName string) (tenant.Tenant, error) {
	for _, t := range f.byID {
		if t.ID == idOrName || strings.EqualFold(t.Name, idOrName) {
			return *t, nil
		}
	}
	return tenant.Tenant{}, fmt.Errorf("tenant %q: %w", idOrName, tenant.ErrNotFound)
}

func (f *fakeTenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := f.byID[id]; return t, ok }

func (f *fakeTenants) ByAPIKey(secret string) (*tenant.Tenant, bool) {
	for _, t := range f.byID {
		if t.HasAPIKey(secret) {
			return t, true
		}
	}
	return nil, false
}

func newFakeTenants() *fakeTenants {
	apiKey := func(secret string) []tenant.Key {
		return []tenant.Key{{ID: "key_" + secret, Kind: tenant.KindAPI, Hash: tenant.HashKey(secret), Prefix: secret[:6]}}
	}
	return &fakeTenants{byID: map[string]*tenant.Tenant{
		acmeID: {ID: acmeID, Name: "acme", Keys: apiKey(acmeKey), Settings: tenant.Settings{
			Timezone: "Europe/Paris",
			Goals: []tenant.Goal{
				{Name: "Pricing", Page: "/pricing"},
				{Name: "Pro signup", Event: "Signed Up", Property: "plan", Value: "pro"},
				{Name: "Never", Page: "/nowhere"},
			},
		}},
		globexID: {ID: globexID, Name: "globex", Keys: apiKey(globexKey)},
	}}
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func pageEvent(tn, anon, path string, at time.Duration, ctx map[string]any) event.Event {
	props, _ := json.Marshal(map[string]any{"path": path, "url": "https://shop.example" + path})
	var c []byte
	if ctx != nil {
		c, _ = json.Marshal(ctx)
	}
	return event.Event{Tenant: tn, Type: event.TypePage, MessageID: fmt.Sprintf("%s-%s-%d", anon, path, at),
		AnonymousID: anon, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: props, Context: c}
}

func trackEvent(tn, anon, name string, at time.Duration, props map[string]any) event.Event {
	p, _ := json.Marshal(props)
	return event.Event{Tenant: tn, Type: event.TypeTrack, MessageID: fmt.Sprintf("%s-%s-%d", anon, name, at),
		AnonymousID: anon, Event: name, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: p}
}

// reportEvents are acme's and globex's traffic on the morning of t0.
func reportEvents() []event.Event {
	google := map[string]any{"page": map[string]any{"referrer": "https://www.google.com/search?q=shoes"}}
	newsletter := map[string]any{"campaign": map[string]any{"source": "newsletter", "medium": "email", "name": "launch"}}
	bot := map[string]any{
		"library":   map[string]any{"name": "analytics.js"},
		"userAgent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	}
	return []event.Event{
		// a: from Google, two pages and a pro signup: one session, no bounce.
		pageEvent(acmeID, "a", "/", 0, google),
		pageEvent(acmeID, "a", "/pricing", 90*time.Second, nil),
		trackEvent(acmeID, "a", "Signed Up", 100*time.Second, map[string]any{"plan": "pro"}),
		// b: from the newsletter, one page: a bounce.
		pageEvent(acmeID, "b", "/blog", 30*time.Second, newsletter),
		// c: two sessions of one page each, and a free signup.
		pageEvent(acmeID, "c", "/pricing", 0, nil),
		pageEvent(acmeID, "c", "/", 40*time.Minute, nil),
		trackEvent(acmeID, "c", "Signed Up", 41*time.Minute, map[string]any{"plan": "free"}),
		// d: two hours later, a page and a click.
		pageEvent(acmeID, "d", "/blog", 2*time.Hour+10*time.Minute, nil),
		trackEvent(acmeID, "d", "Clicked CTA", 2*time.Hour+11*time.Minute, nil),
		// A crawler.
		pageEvent(acmeID, "bot", "/", 5*time.Minute, bot),
		// globex has one visitor only.
		pageEvent(globexID, "g", "/globex-only", 5*time.Minute, nil),
	}
}

// reportAPI serves the report API over rollups of reportEvents.
type reportAPI struct {
	url string
}

func startReportAPI(t *testing.T, withReports bool) *reportAPI {
	t.Helper()
	ts := newFakeTenants()
	deps := api.Deps{AdminToken: adminToken, Tenants: ts, Keys: ts}
	if withReports {
		pl := reporttest.New(t, 4, ts)
		pl.Run(reportEvents(), 3)
		deps.Reports = pl.Querier()
	}
	mux := http.NewServeMux()
	api.New(deps).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &reportAPI{url: srv.URL}
}

func (a *reportAPI) get(t *testing.T, token, path string) (int, []byte) {
	t.Helper()
	d := deadAPI{url: a.url}
	return d.do(t, token, "GET", path, "")
}

// rng is the query of [t0-1h, t0+3h), plus extra parameters.
func rng(extra string) string {
	q := "from=" + url.QueryEscape(t0.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(t0.Add(3*time.Hour).Format(time.RFC3339))
	if extra != "" {
		q += "&" + extra
	}
	return q
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "reports", name+".json")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		require.FailNow(t, "no golden file", "%s: run go test ./internal/api -run TestReports -update", path)
	}
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "%s differs (rewrite with -update)", path)
}

func TestReportsGolden(t *testing.T) {
	t.Parallel()
	a := startReportAPI(t, true)
	cases := []struct{ golden, path string }{
		{"summary", "/api/v1/reports/summary?" + rng("")},
		{"summary_filter_channel", "/api/v1/reports/summary?" + rng("filter=channel:search")},
		{"summary_filter_utm_source", "/api/v1/reports/summary?" + rng("filter=utm_source:newsletter")},
		{"summary_filter_page", "/api/v1/reports/summary?" + rng("filter=page:/pricing")},
		{"summary_empty", "/api/v1/reports/summary?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"},
		{"timeseries_hour", "/api/v1/reports/timeseries?" + rng("metric=pageviews&interval=hour")},
		{"timeseries_minute_visitors_utc", "/api/v1/reports/timeseries?from=2026-11-23T10:00:00Z&to=2026-11-23T10:06:00Z&metric=visitors&interval=minute&timezone=UTC"},
		{"timeseries_day_events_new_york", "/api/v1/reports/timeseries?" + rng("metric=events&interval=day&timezone=America/New_York")},
		{"timeseries_sessions_default_interval", "/api/v1/reports/timeseries?" + rng("metric=sessions")},
		{"top_page", "/api/v1/reports/top?" + rng("dimension=page")},
		{"top_page_limit", "/api/v1/reports/top?" + rng("dimension=page&limit=1")},
		{"top_page_filter", "/api/v1/reports/top?" + rng("dimension=page&filter=page:/blog")},
		{"top_entry_page", "/api/v1/reports/top?" + rng("dimension=entry_page")},
		{"top_exit_page", "/api/v1/reports/top?" + rng("dimension=exit_page")},
		{"top_referrer", "/api/v1/reports/top?" + rng("dimension=referrer")},
		{"top_channel", "/api/v1/reports/top?" + rng("dimension=channel")},
		{"top_utm_source", "/api/v1/reports/top?" + rng("dimension=utm_source")},
		{"top_utm_campaign", "/api/v1/reports/top?" + rng("dimension=utm_campaign")},
		{"top_event", "/api/v1/reports/top?" + rng("dimension=event")},
		{"goals", "/api/v1/reports/goals?" + rng("")},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			st, b := a.get(t, acmeKey, c.path)
			require.Equal(t, http.StatusOK, st, "body: %s", b)
			golden(t, c.golden, b)
		})
	}
	t.Run("globex", func(t *testing.T) {
		st, b := a.get(t, globexKey, "/api/v1/reports/summary?"+rng(""))
		require.Equal(t, http.StatusOK, st, "body: %s", b)
		golden(t, "summary_globex", b)
		st, b = a.get(t, globexKey, "/api/v1/reports/goals?"+rng(""))
		require.Equal(t, http.StatusOK, st, "body: %s", b)
		require.JSONEq(t, `{"rows":[]}`, string(b), "a tenant without goals has no rows")
	})
}

func TestReportsAuth(t *testing.T) {
	t.Parallel()
	a := startReportAPI(t, true)
	summary := "/api/v1/reports/summary?" + rng("")
	_, acme := a.get(t, acmeKey, summary)
	_, globex := a.get(t, globexKey, summary)
	require.NotEqual(t, string(acme), string(globex))

	t.Run("wrong or missing key", func(t *testing.T) {
		for _, tok := range []string{"", "wrong", "ak_acme_secre", "Bearer " + acmeKey} {
			st, b := a.get(t, tok, summary)
			require.Equal(t, http.StatusUnauthorized, st, "token %q: %s", tok, b)
			require.Equal(t, api.CodeUnauthorized, errCode(t, b))
		}
		// Not a Bearer token.
		req, err := http.NewRequest("GET", a.url+summary, nil)
		require.NoError(t, err)
		req.SetBasicAuth(acmeKey, "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		// Authentication comes before the parameters.
		st, b := a.get(t, "wrong", "/api/v1/reports/summary?from=x")
		require.Equal(t, http.StatusUnauthorized, st)
		require.Equal(t, api.CodeUnauthorized, errCode(t, b))
	})

	t.Run("admin token with tenant", func(t *testing.T) {
		for _, tn := range []string{"acme", acmeID, "ACME"} {
			st, b := a.get(t, adminToken, summary+"&tenant="+tn)
			require.Equal(t, http.StatusOK, st, "tenant=%s: %s", tn, b)
			require.Equal(t, string(acme), string(b), "tenant=%s", tn)
		}
		st, b := a.get(t, adminToken, summary+"&tenant=globex")
		require.Equal(t, http.StatusOK, st, "body: %s", b)
		require.Equal(t, string(globex), string(b))
		_, goals := a.get(t, acmeKey, "/api/v1/reports/goals?"+rng(""))
		st, b = a.get(t, adminToken, "/api/v1/reports/goals?"+rng("tenant=acme"))
		require.Equal(t, http.StatusOK, st, "body: %s", b)
		require.Equal(t, string(goals), string(b), "the goals are the tenant's")

		st, b = a.get(t, adminToken, summary)
		require.Equal(t, http.StatusBadRequest, st, "the admin token names a tenant: %s", b)
		require.Equal(t, api.CodeInvalidParameter, errCode(t, b))
		st, b = a.get(t, adminToken, summary+"&tenant=nope")
		require.Equal(t, http.StatusNotFound, st, "body: %s", b)
		require.Equal(t, api.CodeNotFound, errCode(t, b))
	})

	t.Run("an API key reads its own tenant only", func(t *testing.T) {
		for _, tn := range []string{"acme", acmeID} {
			st, b := a.get(t, globexKey, summary+"&tenant="+tn)
			require.Equal(t, http.StatusOK, st, "body: %s", b)
			require.Equal(t, string(globex), string(b), "globex's key with tenant=%s reads globex", tn)
		}
		st, b := a.get(t, globexKey, "/api/v1/reports/top?"+rng("dimension=page&tenant=acme"))
		require.Equal(t, http.StatusOK, st, "body: %s", b)
		require.NotContains(t, string(b), "/pricing")
		require.Contains(t, string(b), "/globex-only")
	})

	t.Run("the API key does not open the admin API", func(t *testing.T) {
		d := deadAPI{url: a.url}
		st, b := d.do(t, acmeKey, "GET", "/api/v1/tenants", "")
		require.Equal(t, http.StatusUnauthorized, st)
		require.Equal(t, api.CodeUnauthorized, errCode(t, b))
		st, _ = d.do(t, acmeKey, "POST", "/api/v1/reports/summary?"+rng(""), "")
		require.Equal(t, http.StatusUnauthorized, st, "other methods fall to the admin catch-all")
	})
}

func TestReportsBadParameters(t *testing.T) {
	t.Parallel()
	a := startReportAPI(t, true)
	const (
		from = "from=2026-11-23T09:00:00Z"
		to   = "to=2026-11-23T13:00:00Z"
		fr   = from + "&" + to
	)
	cases := []struct {
		path string
		code string
	}{
		// from and to.
		{"/api/v1/reports/summary", api.CodeInvalidParameter},
		{"/api/v1/reports/summary?" + from, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?" + to, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?from=yesterday&" + to, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?" + from + "&to=2026-11-23", api.CodeInvalidParameter},
		{"/api/v1/reports/summary?" + from + "&to=1700000000", api.CodeInvalidParameter},
		{"/api/v1/reports/summary?" + fr + "&" + from, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&" + from + "&to=2026-11-23T13:00:00", api.CodeInvalidParameter},
		{"/api/v1/reports/summary?from=2026-11-23T09:00:00Z&to=2026-11-23T09:00:00Z", api.CodeInvalidRange},
		{"/api/v1/reports/summary?from=2026-11-23T13:00:00Z&to=2026-11-23T09:00:00Z", api.CodeInvalidRange},
		{"/api/v1/reports/goals?from=2026-11-23T13:00:00%2B01:00&to=2026-11-23T12:00:00Z", api.CodeInvalidRange},
		{"/api/v1/reports/summary?from=2024-01-01T00:00:00Z&to=2026-03-12T00:00:01Z", api.CodeRangeTooLarge},
		{"/api/v1/reports/goals?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", api.CodeRangeTooLarge},
		// Time series.
		{"/api/v1/reports/timeseries?metric=bounces&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?metric=Pageviews&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?interval=week&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?interval=hour&interval=day&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?timezone=Mars/Olympus&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?timezone=Local&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?timezone=../../etc/passwd&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/timeseries?interval=minute&from=2026-11-01T00:00:00Z&to=2026-11-08T00:01:00Z", api.CodeRangeTooLarge},
		{"/api/v1/reports/timeseries?interval=minute&from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z", api.CodeRangeTooLarge},
		{"/api/v1/reports/timeseries?interval=hour&from=2026-01-01T00:00:00Z&to=2026-08-01T00:00:00Z", api.CodeRangeTooLarge},
		{"/api/v1/reports/timeseries?interval=day&from=2024-01-01T00:00:00Z&to=2026-03-12T00:00:01Z", api.CodeRangeTooLarge},
		// Top.
		{"/api/v1/reports/top?" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=color&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=goal&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&limit=0&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&limit=1001&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&limit=-1&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&limit=ten&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&filter=channel:search&" + fr, api.CodeUnsupportedFilter},
		{"/api/v1/reports/top?dimension=exit_page&filter=page:/&" + fr, api.CodeUnsupportedFilter},
		// Filters.
		{"/api/v1/reports/summary?filter=page&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=page:&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=:/pricing&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=color:red&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=goal:Pricing&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=page:/&filter=channel:search&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/top?dimension=page&filter=page:/&filter=page:/blog&" + fr, api.CodeInvalidParameter},
		{"/api/v1/reports/summary?filter=exit_page:/&" + fr, api.CodeUnsupportedFilter},
	}
	for _, c := range cases {
		st, b := a.get(t, acmeKey, c.path)
		require.Equal(t, http.StatusBadRequest, st, "%s: %s", c.path, b)
		require.Equal(t, c.code, errCode(t, b), "%s", c.path)
		var e struct {
			Error api.Error `json:"error"`
		}
		require.NoError(t, json.Unmarshal(b, &e))
		require.NotEmpty(t, e.Error.Message, c.path)
	}

	// At the bounds.
	for _, path := range []string{
		"/api/v1/reports/summary?from=2024-01-01T00:00:00Z&to=2026-03-11T00:00:00Z",
		"/api/v1/reports/timeseries?interval=minute&from=2026-11-01T00:00:00Z&to=2026-11-04T11:20:00Z",
		"/api/v1/reports/top?dimension=page&limit=1000&" + fr,
		"/api/v1/reports/top?dimension=page&limit=1&" + fr,
		"/api/v1/reports/summary?from=2026-11-23T10:00:00%2B01:00&to=2026-11-23T14:00:00%2B01:00",
		"/api/v1/reports/summary?from=2026-11-23T10:00:00+01:00&to=2026-11-23T14:00:00+01:00",
		"/api/v1/reports/summary?filter=page:/a:b&" + fr,
	} {
		st, b := a.get(t, acmeKey, path)
		require.Equal(t, http.StatusOK, st, "%s: %s", path, b)
	}
	st, b := a.get(t, acmeKey, "/api/v1/reports/timeseries?interval=minute&from=2026-11-01T00:00:00Z&to=2026-11-04T11:20:00Z")
	require.Equal(t, http.StatusOK, st)
	var series struct {
		Points []api.PointView `json:"points"`
	}
	require.NoError(t, json.Unmarshal(b, &series))
	require.Len(t, series.Points, 5000)
}

func TestReportsUnavailable(t *testing.T) {
	t.Parallel()
	a := startReportAPI(t, false)
	for _, p := range []string{"summary", "timeseries", "top?dimension=page", "goals"} {
		path := "/api/v1/reports/" + p
		if strings.Contains(p, "?") {
			path += "&" + rng("")
		} else {
			path += "?" + rng("")
		}
		st, b := a.get(t, acmeKey, path)
		require.Equal(t, http.StatusServiceUnavailable, st, "%s: %s", path, b)
		require.Equal(t, api.CodeUnavailable, errCode(t, b))
		st, b = a.get(t, "wrong", path)
		require.Equal(t, http.StatusUnauthorized, st, "%s: %s", path, b)
		require.Equal(t, api.CodeUnauthorized, errCode(t, b))
	}
}
