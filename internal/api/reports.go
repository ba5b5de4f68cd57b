package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// ReportQuerier answers the web reports from the rollups; *report.Querier
// implements it. It is called concurrently by the requests in flight.
type ReportQuerier interface {
	Summary(ctx context.Context, tenant string, r report.Range, f *report.Filter) (report.Summary, error)
	Timeseries(ctx context.Context, tenant string, metric report.Metric, interval report.Interval, r report.Range, loc *time.Location) ([]report.Point, error)
	Top(ctx context.Context, tenant string, d report.Dim, r report.Range, f *report.Filter, limit int) ([]report.TopRow, error)
	Goals(ctx context.Context, tenant string, goals []string, r report.Range) ([]report.GoalRow, error)
}

// TenantKeys finds the tenant of a request to the report API;
// *tenant.Cache implements it.
type TenantKeys interface {
	// ByAPIKey returns the tenant owning the API key secret.
	ByAPIKey(secret string) (*tenant.Tenant, bool)
	// ByID returns the tenant with id.
	ByID(id string) (*tenant.Tenant, bool)
}

// Bounds of the report endpoints.
const (
	maxReportRange     = 800 * 24 * time.Hour
	maxMinuteRange     = 7 * 24 * time.Hour
	maxSeriesPoints    = 5000
	defaultReportLimit = 10
	maxReportLimit     = 1000
)

// registerReports mounts the report endpoints. They take a tenant's API key
// or the admin token, so they do not go through the admin-only wrapper.
func (a *API) registerReports(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/reports/summary", a.reports(a.summary))
	mux.HandleFunc("GET /api/v1/reports/timeseries", a.reports(a.timeseries))
	mux.HandleFunc("GET /api/v1/reports/top", a.reports(a.top))
	mux.HandleFunc("GET /api/v1/reports/goals", a.reports(a.goals))
}

// reportRequest is a report request whose tenant and range are known.
type reportRequest struct {
	tenant *tenant.Tenant
	rng    report.Range
	query  url.Values
}

// reports wraps a report handler: it resolves the tenant, then checks that
// this node serves reports, then reads from and to.
func (a *API) reports(next func(w http.ResponseWriter, r *http.Request, req reportRequest)) http.HandlerFunc {
	return a.tenantScoped(a.deps.Reports != nil, "reports", func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
		q := r.URL.Query()
		rng, err := parseRange(q)
		if err != nil {
			a.fail(w, err)
			return
		}
		next(w, r, reportRequest{tenant: t, rng: rng, query: q})
	})
}

// tenantScoped wraps a handler of a tenant's data: it resolves the tenant
// (see reportTenant), then checks that this node serves what (served).
func (a *API) tenantScoped(served bool, what string, next func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, err := a.reportTenant(r)
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="contrail"`)
			}
			a.fail(w, err)
			return
		}
		if !served {
			a.fail(w, fmt.Errorf("%w: this node does not process events, so it serves no %s", errUnavailable, what))
			return
		}
		next(w, r, t)
	}
}

// reportTenant returns the tenant a report request reads: the API key's,
// whatever tenant= says, or with the admin token the one named by tenant=.
func (a *API) reportTenant(r *http.Request) (*tenant.Tenant, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, fmt.Errorf("%w: send a tenant API key, or the admin token with tenant=, as Authorization: Bearer <key>", errUnauthorized)
	}
	admin := []byte(a.deps.AdminToken)
	if len(admin) > 0 && subtle.ConstantTimeCompare([]byte(tok), admin) == 1 {
		q := r.URL.Query()
		idOrName, err := single(q, "tenant")
		if err != nil {
			return nil, err
		}
		if idOrName == "" {
			return nil, fmt.Errorf("%w: tenant (an id or a name) is required with the admin token", errInvalidParameter)
		}
		if a.deps.Keys != nil {
			if t, ok := a.deps.Keys.ByID(idOrName); ok {
				return t, nil
			}
		}
		t, err := a.deps.Tenants.Get(r.Context(), idOrName)
		if err != nil {
			return nil, fmt.Errorf("finding tenant %q: %w", idOrName, err)
		}
		return &t, nil
	}
	if a.deps.Keys != nil {
		if t, ok := a.deps.Keys.ByAPIKey(tok); ok {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown API key", errUnauthorized)
}

// single returns the value of query parameter name, "" when absent; a
// parameter given twice is an error rather than a guess.
func single(q url.Values, name string) (string, error) {
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", fmt.Errorf("%w: %s is given %d times, give it once", errInvalidParameter, name, len(vs))
}

// parseRange reads the required from and to: RFC 3339, from before to, at
// most maxReportRange apart.
func parseRange(q url.Values) (report.Range, error) {
	var rng report.Range
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &rng.From}, {"to", &rng.To}} {
		s, err := single(q, p.name)
		if err != nil {
			return rng, err
		}
		if s == "" {
			return rng, fmt.Errorf("%w: %s is required (RFC 3339, e.g. 2026-01-02T15:04:05Z)", errInvalidParameter, p.name)
		}
		// An unescaped "+01:00" arrives as " 01:00"; RFC 3339 has no spaces.
		s = strings.ReplaceAll(s, " ", "+")
		if *p.dst, err = time.Parse(time.RFC3339, s); err != nil {
			return rng, fmt.Errorf("%w: %s %q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", errInvalidParameter, p.name, s)
		}
	}
	if !rng.From.Before(rng.To) {
		return rng, fmt.Errorf("%w: from must be before to", errInvalidRange)
	}
	if rng.To.Sub(rng.From) > maxReportRange {
		return rng, fmt.Errorf("%w: at most %d days from from to to", errRangeTooLarge, maxReportRange/(24*time.Hour))
	}
	return rng, nil
}

// parseFilter reads the optional filter=dim:value.
func parseFilter(q url.Values) (*report.Filter, error) {
	s, err := single(q, "filter")
	if err != nil || s == "" {
		return nil, err
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok || value == "" {
		return nil, fmt.Errorf("%w: filter %q: want dimension:value, e.g. page:/pricing", errInvalidParameter, s)
	}
	d, ok := report.ParseDim(name)
	if !ok {
		return nil, fmt.Errorf("%w: filter %q: unknown dimension %q, want one of %s", errInvalidParameter, s, name, strings.Join(report.DimNames(), ", "))
	}
	return &report.Filter{Dim: d, Value: value}, nil
}

// round4 keeps 4 decimals, so that answers do not change with the last
// bits of a float.
func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }

// SummaryView is the answer of GET /api/v1/reports/summary. BounceRate and
// AvgSessionSeconds are null under a filter the session numbers are not
// kept for (page, event).
type SummaryView struct {
	Pageviews         int64    `json:"pageviews"`
	Visitors          int64    `json:"visitors"`
	Sessions          int64    `json:"sessions"`
	BounceRate        *float64 `json:"bounce_rate"`
	AvgSessionSeconds *float64 `json:"avg_session_seconds"`
	Events            int64    `json:"events"`
	Bots              int64    `json:"bots"`
}

// summary answers GET /api/v1/reports/summary?from=&to=[&filter=dim:value].
func (a *API) summary(w http.ResponseWriter, r *http.Request, req reportRequest) {
	f, err := parseFilter(req.query)
	if err != nil {
		a.fail(w, err)
		return
	}
	s, err := a.deps.Reports.Summary(r.Context(), req.tenant.ID, req.rng, f)
	if err != nil {
		a.fail(w, fmt.Errorf("querying summary: %w", err))
		return
	}
	out := SummaryView{Pageviews: s.Pageviews, Visitors: s.Visitors, Sessions: s.Sessions, Events: s.Events, Bots: s.Bots}
	if s.BounceRate != nil {
		v := round4(*s.BounceRate)
		out.BounceRate = &v
	}
	if s.AvgSessionSeconds != nil {
		v := round4(*s.AvgSessionSeconds)
		out.AvgSessionSeconds = &v
	}
	writeJSON(w, http.StatusOK, out)
}

// PointView is one step of a time series: its start, in the request's time
// zone, and its value.
type PointView struct {
	T     string `json:"t"`
	Value int64  `json:"value"`
}

// timeseries answers GET /api/v1/reports/timeseries?metric=&interval=&from=&to=[&timezone=]
// with {"points":[...]}. metric defaults to pageviews, interval to hour,
// timezone to the tenant's.
func (a *API) timeseries(w http.ResponseWriter, r *http.Request, req reportRequest) {
	metric, interval, loc, err := parseSeries(req.query, req.tenant.Settings.Location())
	if err != nil {
		a.fail(w, err)
		return
	}
	if interval == report.IntervalMinute && req.rng.To.Sub(req.rng.From) > maxMinuteRange {
		a.fail(w, fmt.Errorf("%w: interval=minute covers at most 7 days; use hour or day", errRangeTooLarge))
		return
	}
	if n := len(report.Steps(req.rng, interval, loc)); n > maxSeriesPoints {
		a.fail(w, fmt.Errorf("%w: %d points, at most %d; use a longer interval or a shorter range", errRangeTooLarge, n, maxSeriesPoints))
		return
	}
	pts, err := a.deps.Reports.Timeseries(r.Context(), req.tenant.ID, metric, interval, req.rng, loc)
	if err != nil {
		a.fail(w, fmt.Errorf("querying time series: %w", err))
		return
	}
	out := make([]PointView, 0, len(pts))
	for _, p := range pts {
		out = append(out, PointView{T: p.T.In(loc).Format(time.RFC3339), Value: p.Value})
	}
	writeJSON(w, http.StatusOK, map[string][]PointView{"points": out})
}

// parseSeries reads a time series' metric, interval and time zone (def
// when absent).
func parseSeries(q url.Values, def *time.Location) (report.Metric, report.Interval, *time.Location, error) {
	m, err := single(q, "metric")
	if err != nil {
		return "", "", nil, err
	}
	metric := report.Metric(m)
	switch metric {
	case "":
		metric = report.MetricPageviews
	case report.MetricPageviews, report.MetricVisitors, report.MetricSessions, report.MetricEvents:
	default:
		return "", "", nil, fmt.Errorf("%w: unknown metric %q, want pageviews, visitors, sessions or events", errInvalidParameter, m)
	}
	i, err := single(q, "interval")
	if err != nil {
		return "", "", nil, err
	}
	interval := report.Interval(i)
	switch interval {
	case "":
		interval = report.IntervalHour
	case report.IntervalMinute, report.IntervalHour, report.IntervalDay:
	default:
		return "", "", nil, fmt.Errorf("%w: unknown interval %q, want minute, hour or day", errInvalidParameter, i)
	}
	tz, err := single(q, "timezone")
	if err != nil {
		return "", "", nil, err
	}
	loc := def
	if tz != "" {
		// "Local" is the server's zone, not an IANA name a client can mean.
		if loc, err = time.LoadLocation(tz); err != nil || tz == "Local" {
			return "", "", nil, fmt.Errorf("%w: timezone %q is not an IANA time zone (e.g. Europe/Paris)", errInvalidParameter, tz)
		}
	}
	return metric, interval, loc, nil
}

// TopRowView is one value of a breakdown.
type TopRowView struct {
	Value     string `json:"value"`
	Pageviews int64  `json:"pageviews"`
	Visitors  int64  `json:"visitors"`
	Events    int64  `json:"events"`
	Sessions  int64  `json:"sessions"`
}

// top answers GET /api/v1/reports/top?dimension=&from=&to=[&limit=][&filter=]
// with {"rows":[...]}.
func (a *API) top(w http.ResponseWriter, r *http.Request, req reportRequest) {
	name, err := single(req.query, "dimension")
	if err != nil {
		a.fail(w, err)
		return
	}
	d, ok := report.ParseDim(name)
	if !ok {
		a.fail(w, fmt.Errorf("%w: unknown dimension %q, want one of %s", errInvalidParameter, name, strings.Join(report.DimNames(), ", ")))
		return
	}
	limit := defaultReportLimit
	s, err := single(req.query, "limit")
	if err != nil {
		a.fail(w, err)
		return
	}
	if s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxReportLimit {
			a.fail(w, fmt.Errorf("%w: limit must be a number from 1 to %d, got %q", errInvalidParameter, maxReportLimit, s))
			return
		}
	}
	f, err := parseFilter(req.query)
	if err != nil {
		a.fail(w, err)
		return
	}
	rows, err := a.deps.Reports.Top(r.Context(), req.tenant.ID, d, req.rng, f, limit)
	if err != nil {
		a.fail(w, fmt.Errorf("querying top %s: %w", d, err))
		return
	}
	out := make([]TopRowView, 0, len(rows))
	for _, row := range rows {
		out = append(out, TopRowView(row))
	}
	writeJSON(w, http.StatusOK, map[string][]TopRowView{"rows": out})
}

// GoalView is one goal's conversions over a report's range.
type GoalView struct {
	Goal        string  `json:"goal"`
	Conversions int64   `json:"conversions"`
	Visitors    int64   `json:"visitors"`
	Rate        float64 `json:"rate"`
}

// goals answers GET /api/v1/reports/goals?from=&to= with {"rows":[...]}:
// the tenant's goals in the order of its settings.
func (a *API) goals(w http.ResponseWriter, r *http.Request, req reportRequest) {
	names := make([]string, 0, len(req.tenant.Settings.Goals))
	for _, g := range req.tenant.Settings.Goals {
		names = append(names, g.Name)
	}
	rows, err := a.deps.Reports.Goals(r.Context(), req.tenant.ID, names, req.rng)
	if err != nil {
		a.fail(w, fmt.Errorf("querying goals: %w", err))
		return
	}
	out := make([]GoalView, 0, len(rows))
	for _, g := range rows {
		out = append(out, GoalView{Goal: g.Goal, Conversions: g.Conversions, Visitors: g.Visitors, Rate: round4(g.Rate)})
	}
	writeJSON(w, http.StatusOK, map[string][]GoalView{"rows": out})
}
