package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
)

// benchSite is a dashboard over a real report API and a store holding a
// synthetic tenant, signed in as the tenant.
type benchSite struct {
	mux     *http.ServeMux
	querier *report.Querier
	tenant  *tenant.Tenant
	apiKey  string
	session *http.Cookie
	now     time.Time
}

// The benchmark's tenant: 100 million events over 30 days in 16
// partitions, as in BenchmarkQuery30Days of package report, with every
// dimension and two goals filled in (see newBenchSite).
const (
	benchPartitions = 16
	benchTenant     = "tn_bench"
)

// newBenchSite writes the tenant's rollups, and mounts the API and the
// dashboard on one mux as the node does.
func newBenchSite(tb testing.TB) *benchSite {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	// A Thursday afternoon: today is 14 compacted hours and 30 minutes of
	// fold records; the last 30 days are 3 weeks, 8 days and today.
	now := time.Date(2026, 11, 19, 14, 30, 0, 0, time.UTC)
	goals := []string{"Signup", "Purchase"}
	began := time.Now()
	stats, err := report.Synthesize(st, report.Synthetic{
		Tenant: benchTenant, Partitions: benchPartitions, End: now, Days: 30, Events: 100_000_000,
		Visitors: 6000, Pages: 2000, Referrers: 1000, EntryPages: 500, Countries: 100,
		AllDims: true, Goals: goals, Weeks: true, HourDays: 1, Seed: 7,
	})
	require.NoError(tb, err)
	tb.Logf("fixture: %d events, %d MB of rollups, written in %v", stats.Events, stats.Bytes>>20, time.Since(began).Round(time.Millisecond))

	const adminToken, apiKey, writeKey = "admin-token-for-the-benchmark", "ak_benchmark_api_key", "wk_benchmark_write_key"
	t := &tenant.Tenant{
		ID: benchTenant, Name: "Bench shop", CreatedAt: now.AddDate(-1, 0, 0),
		Keys: []tenant.Key{
			{ID: "key_api", Kind: tenant.KindAPI, Hash: tenant.HashKey(apiKey), Prefix: apiKey[:6]},
			{ID: "key_write", Kind: tenant.KindWrite, Secret: writeKey, Prefix: writeKey[:6]},
		},
	}
	for _, g := range goals {
		t.Settings.Goals = append(t.Settings.Goals, tenant.Goal{Name: g, Event: g})
	}
	tenants := benchTenants{t: t}
	q := report.NewQuerier(st, benchPartitions, func(string) report.Policy { return report.DefaultPolicy() }, report.DefaultCacheBytes)
	if n, _ := strconv.Atoi(os.Getenv("CONTRAIL_BENCH_REPORT_CORES")); n > 0 {
		q.Limit(n) // as serve --report-cores does
	}
	campaigns := benchCampaigns{}
	for i, name := range []string{"Welcome", "Abandoned cart", "Win back"} {
		campaigns.list = append(campaigns.list, campaign.Campaign{
			ID: "cmp_" + strings.ToLower(strings.ReplaceAll(name, " ", "_")), Tenant: benchTenant, Name: name,
			Status: campaign.StatusDraft, Spec: campaign.Spec{Name: name}, Unpublished: true,
			CreatedAt: now.AddDate(0, 0, -10), UpdatedAt: now.Add(-time.Duration(i+1) * time.Hour),
		})
	}
	mux := http.NewServeMux()
	api.New(api.Deps{AdminToken: adminToken, Tenants: tenants, Reports: q, Keys: tenants, Campaigns: campaigns}).Register(mux)
	cfg := DefaultConfig()
	cfg.ReportCache = -1 // every render computes its report
	d, err := New(cfg, Deps{API: mux, AdminToken: adminToken, Tenants: tenants, Now: func() time.Time { return now }})
	require.NoError(tb, err)
	d.Register(mux)
	s := &benchSite{mux: mux, querier: q, tenant: t, apiKey: apiKey, now: now}
	s.session = s.signIn(tb)
	return s
}

// signIn signs in with the tenant's API key as a browser does: the form
// for its CSRF token and pre-session cookie, then the post.
func (s *benchSite) signIn(tb testing.TB) *http.Cookie {
	tb.Helper()
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin", nil))
	require.Equal(tb, http.StatusOK, rec.Code)
	pre := cookie(tb, rec, preCookie)
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	require.NotNil(tb, m, "the sign-in form has no CSRF token")
	form := url.Values{csrfField: {m[1]}, "key": {s.apiKey}, "next": {"/report"}}
	req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre)
	rec = httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	require.Equal(tb, http.StatusSeeOther, rec.Code, rec.Body.String())
	return cookie(tb, rec, sessionCookie)
}

func cookie(tb testing.TB, rec *httptest.ResponseRecorder, name string) *http.Cookie {
	tb.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == name && c.Value != "" {
			return c
		}
	}
	tb.Fatalf("no %s cookie in %v", name, rec.Result().Header["Set-Cookie"])
	return nil
}

// get serves a signed-in GET of path.
func (s *benchSite) get(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(s.session)
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	return rec
}

// reportCase is a report page: its range and filter.
type reportCase struct {
	name, rng, filter string
}

// reportCases are the report pages benchmarked: every range offered, and
// a filter.
func reportCases() []reportCase {
	return []reportCase{
		{"realtime", "realtime", ""}, {"today", "today", ""}, {"24h", "24h", ""}, {"yesterday", "yesterday", ""},
		{"7d", "7d", ""}, {"30d", "30d", ""}, {"30d-filter", "30d", "page:/page/1"},
	}
}

func (c reportCase) path() string {
	q := url.Values{"range": {c.rng}}
	if c.filter != "" {
		q.Set("filter", c.filter)
	}
	return "/report?" + q.Encode()
}

// span is the page's range, as the page picks it.
func (c reportCase) span(tb testing.TB, now time.Time) span {
	tb.Helper()
	sp, err := pickSpan(url.Values{"range": {c.rng}}, now, time.UTC)
	require.NoError(tb, err)
	return sp
}

// reportFilter is the page's filter for the querier.
func (c reportCase) reportFilter(tb testing.TB) *report.Filter {
	tb.Helper()
	if c.filter == "" {
		return nil
	}
	name, value, _ := strings.Cut(c.filter, ":")
	d, ok := report.ParseDim(name)
	require.True(tb, ok)
	return &report.Filter{Dim: d, Value: value}
}

// benchDims are the dimensions the report shows by default, one per card.
func benchDims() []string {
	dims := make([]string, 0, len(cards))
	for _, c := range cards {
		dims = append(dims, c.Tabs[0].Dim)
	}
	return dims
}

// BenchmarkPages renders the dashboard's pages (a signed-in GET, through
// the node's mux) for a tenant with 100 million events over 30 days in 16
// partitions; the goal is under 50 ms a page. The report pages call the
// report API in process, 4 calls at a time; api/* makes the same calls
// to the report API one after the other (the queries and their JSON,
// without the page's decoding and template), and querier/* the same
// queries to report.Querier directly. The fixture is written once,
// before any timing: about a minute on 2 cores.
func BenchmarkPages(b *testing.B) {
	s := newBenchSite(b)
	ctx := context.Background()
	b.Run("report", func(b *testing.B) {
		for _, c := range reportCases() {
			b.Run(c.name, func(b *testing.B) {
				sp, f := c.span(b, s.now), c.reportFilter(b)
				r := report.Range{From: sp.From, To: sp.To}
				sum, err := s.querier.Summary(ctx, benchTenant, r, f)
				require.NoError(b, err)
				require.NotZero(b, sum.Pageviews)
				top, err := s.querier.Top(ctx, benchTenant, report.DimPage, r, f, 10)
				require.NoError(b, err)
				require.NotEmpty(b, top)
				rec := s.get(c.path())
				require.Equal(b, http.StatusOK, rec.Code, rec.Body.String())
				body := rec.Body.String()
				require.Contains(b, body, `<dd data-metric="pageviews">`+formatNum(sum.Pageviews)+`</dd>`)
				require.Contains(b, body, `<dd data-metric="events">`+formatNum(sum.Events)+`</dd>`)
				require.Contains(b, body, `title="Filter by `+top[0].Value+`">`)
				require.Contains(b, body, `data-dimension="goal"`)
				require.NotContains(b, body, `class="error"`, "an API call failed")
				if f != nil {
					require.Contains(b, body, "Not broken down under this filter.")
				}
				b.ReportAllocs()
				for b.Loop() {
					if rec := s.get(c.path()); rec.Code != http.StatusOK {
						b.Fatal(rec.Code)
					}
				}
				b.ReportMetric(float64(len(body)), "page-bytes")
				// The report cache's merged buckets after this page (and
				// the pages before it in the run).
				b.ReportMetric(float64(s.querier.CacheStats().Bytes)/(1<<20), "cache-MiB")
			})
		}
	})
	b.Run("setup", func(b *testing.B) {
		rec := s.get("/setup")
		require.Equal(b, http.StatusOK, rec.Code, rec.Body.String())
		require.Contains(b, rec.Body.String(), s.tenant.Keys[1].Secret)
		b.ReportAllocs()
		for b.Loop() {
			if rec := s.get("/setup"); rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("campaigns", func(b *testing.B) {
		rec := s.get("/campaigns")
		require.Equal(b, http.StatusOK, rec.Code, rec.Body.String())
		require.Contains(b, rec.Body.String(), "Abandoned cart")
		b.ReportAllocs()
		for b.Loop() {
			if rec := s.get("/campaigns"); rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("api", func(b *testing.B) {
		for _, c := range reportCases() {
			b.Run(c.name, func(b *testing.B) {
				paths := s.apiCalls(b, c)
				for _, p := range paths {
					rec := s.apiGet(p)
					if c.filter != "" && strings.Contains(p, "/top?") && !strings.Contains(p, "dimension=page&") {
						require.Equal(b, http.StatusBadRequest, rec.Code, rec.Body.String()) // not broken down
						continue
					}
					require.Equal(b, http.StatusOK, rec.Code, p+": "+rec.Body.String())
				}
				b.ReportAllocs()
				for b.Loop() {
					for _, p := range paths {
						s.apiGet(p)
					}
				}
			})
		}
	})
	b.Run("querier", func(b *testing.B) {
		for _, c := range reportCases() {
			b.Run(c.name, func(b *testing.B) {
				run := s.queries(b, c)
				require.NoError(b, run())
				b.ReportAllocs()
				for b.Loop() {
					if err := run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// apiCalls returns the report API requests of a report page, as the page
// makes them: summary, time series, goals, and a breakdown per card.
func (s *benchSite) apiCalls(tb testing.TB, c reportCase) []string {
	sp := c.span(tb, s.now)
	with := func(path string, kv ...string) string {
		q := url.Values{"from": {sp.From.UTC().Format(time.RFC3339)}, "to": {sp.To.UTC().Format(time.RFC3339)}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				q.Set(kv[i], kv[i+1])
			}
		}
		return "/api/v1/reports/" + path + "?" + q.Encode()
	}
	paths := []string{
		with("summary", "filter", c.filter),
		with("timeseries", "metric", "visitors", "interval", sp.Interval, "timezone", "UTC"),
		with("goals"),
	}
	for _, d := range benchDims() {
		paths = append(paths, with("top", "dimension", d, "limit", "10", "filter", c.filter))
	}
	return paths
}

// apiGet serves an API request with the tenant's API key.
func (s *benchSite) apiGet(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	return rec
}

// queries returns the report.Querier calls of a report page, one after
// the other.
func (s *benchSite) queries(tb testing.TB, c reportCase) func() error {
	sp, f := c.span(tb, s.now), c.reportFilter(tb)
	r := report.Range{From: sp.From, To: sp.To}
	goals := make([]string, 0, len(s.tenant.Settings.Goals))
	for _, g := range s.tenant.Settings.Goals {
		goals = append(goals, g.Name)
	}
	var dims []report.Dim
	for _, name := range benchDims() {
		d, ok := report.ParseDim(name)
		require.True(tb, ok)
		dims = append(dims, d)
	}
	ctx := context.Background()
	return func() error {
		if _, err := s.querier.Summary(ctx, benchTenant, r, f); err != nil {
			return err
		}
		if _, err := s.querier.Timeseries(ctx, benchTenant, report.MetricVisitors, report.Interval(sp.Interval), r, time.UTC); err != nil {
			return err
		}
		if _, err := s.querier.Goals(ctx, benchTenant, goals, r); err != nil {
			return err
		}
		for _, d := range dims {
			if _, err := s.querier.Top(ctx, benchTenant, d, r, f, 10); err != nil && !errors.Is(err, report.ErrUnsupportedFilter) {
				return err
			}
		}
		return nil
	}
}

// benchTenants serves the one tenant, found by its API key's hash as
// *tenant.Cache finds it.
type benchTenants struct {
	api.Tenants // only Get is called, for the admin
	t           *tenant.Tenant
}

func (b benchTenants) ByAPIKey(secret string) (*tenant.Tenant, bool) {
	if b.t.HasAPIKey(secret) {
		return b.t, true
	}
	return nil, false
}

func (b benchTenants) ByID(id string) (*tenant.Tenant, bool) {
	if id == b.t.ID {
		return b.t, true
	}
	return nil, false
}

func (b benchTenants) Get(_ context.Context, idOrName string) (tenant.Tenant, error) {
	if idOrName == b.t.ID || idOrName == b.t.Name {
		return *b.t, nil
	}
	return tenant.Tenant{}, tenant.ErrNotFound
}

// benchCampaigns lists a few drafts (which have no counters to read).
type benchCampaigns struct {
	api.CampaignStore // only List is called
	list              []campaign.Campaign
}

func (c benchCampaigns) List(context.Context, string) ([]campaign.Campaign, error) {
	return c.list, nil
}
