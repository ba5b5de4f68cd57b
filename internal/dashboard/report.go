package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/contrailhq/contrail/internal/api"
)

// rangeChoice is a range the report offers.
type rangeChoice struct{ Key, Label string }

var ranges = []rangeChoice{
	{"realtime", "Last 30 minutes"}, {"today", "Today"}, {"24h", "Last 24 hours"},
	{"yesterday", "Yesterday"}, {"7d", "Last 7 days"}, {"30d", "Last 30 days"},
}

// span is a report's time range and the time series interval that suits
// it.
type span struct {
	Key            string
	From, To       time.Time
	Interval       string
	Label          string
	FromDay, ToDay string // a custom range's dates, for the form
}

// pickSpan reads ?range= (or ?from=&to= dates) in the tenant's zone.
func pickSpan(q url.Values, now time.Time, loc *time.Location) (span, error) {
	now = now.In(loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	key := q.Get("range")
	if q.Get("from") != "" || q.Get("to") != "" {
		key = "custom"
	}
	sp := span{Key: key}
	switch key {
	case "realtime":
		sp.From, sp.To, sp.Interval = now.Add(-30*time.Minute).Truncate(time.Minute), now, "minute"
	case "", "today":
		sp.Key, sp.From, sp.To, sp.Interval = "today", midnight, now, "hour"
	case "24h":
		sp.From, sp.To, sp.Interval = now.Add(-24*time.Hour).Truncate(time.Hour), now, "hour"
	case "yesterday":
		sp.From, sp.To, sp.Interval = midnight.AddDate(0, 0, -1), midnight, "hour"
	case "7d":
		sp.From, sp.To, sp.Interval = midnight.AddDate(0, 0, -6), now, "day"
	case "30d":
		sp.From, sp.To, sp.Interval = midnight.AddDate(0, 0, -29), now, "day"
	case "custom":
		from, err := time.ParseInLocation("2006-01-02", q.Get("from"), loc)
		if err != nil {
			return sp, fmt.Errorf("from %q is not a date (YYYY-MM-DD)", q.Get("from"))
		}
		to, err := time.ParseInLocation("2006-01-02", q.Get("to"), loc)
		if err != nil {
			return sp, fmt.Errorf("to %q is not a date (YYYY-MM-DD)", q.Get("to"))
		}
		to = to.AddDate(0, 0, 1) // through the end of that day
		if !from.Before(to) {
			return sp, fmt.Errorf("the range must start before it ends")
		}
		if to.Sub(from) > 731*24*time.Hour {
			return sp, fmt.Errorf("a range covers at most two years")
		}
		sp.From, sp.To, sp.Interval = from, to, "day"
		if to.Sub(from) <= 2*24*time.Hour {
			sp.Interval = "hour"
		}
		sp.FromDay, sp.ToDay = q.Get("from"), q.Get("to")
		sp.Label = sp.FromDay + " – " + sp.ToDay
	default:
		return sp, fmt.Errorf("unknown range %q", key)
	}
	for _, r := range ranges {
		if r.Key == sp.Key {
			sp.Label = r.Label
		}
	}
	if sp.FromDay == "" {
		sp.FromDay, sp.ToDay = sp.From.Format("2006-01-02"), sp.To.Format("2006-01-02")
	}
	if !sp.From.Before(sp.To) { // the first instant of today
		sp.To = sp.From.Add(time.Minute)
	}
	return sp, nil
}

// breakdown is a card of the report: one dimension, chosen by its tab.
type breakdown struct {
	Title, Param string
	Tabs         []tab
	Dim, Column  string
	Rows         []api.TopRowView
	Max          int64
	// Error is why the card could not be read; Note why it is empty.
	Error, Note string
}

type tab struct{ Dim, Label string }

// cards are the report's breakdowns: a query parameter picks each card's
// tab.
var cards = []breakdown{
	{Title: "Sources", Param: "sources", Tabs: []tab{{"channel", "Channels"}, {"referrer", "Referrers"}, {"utm_source", "UTM sources"}, {"utm_medium", "UTM mediums"}, {"utm_campaign", "UTM campaigns"}}},
	{Title: "Pages", Param: "pages", Tabs: []tab{{"page", "Top pages"}, {"entry_page", "Entry pages"}, {"exit_page", "Exit pages"}}},
	{Title: "Locations", Param: "locations", Tabs: []tab{{"country", "Countries"}}},
	{Title: "Devices", Param: "devices", Tabs: []tab{{"device", "Devices"}, {"browser", "Browsers"}, {"os", "Operating systems"}}},
	{Title: "Events", Param: "events", Tabs: []tab{{"event", "Events"}}},
}

var metrics = []struct{ Key, Label string }{
	{"visitors", "Visitors"}, {"pageviews", "Pageviews"}, {"sessions", "Sessions"}, {"events", "Events"},
}

// reportView is the report page's data.
type reportView struct {
	Span    span
	Ranges  []rangeChoice
	Self    string // this page's URL, to derive links from
	Filter  string // dim:value, or ""
	Metric  string
	Metrics []struct{ Key, Label string }
	Summary api.SummaryView
	Chart   chart
	Cards   []breakdown
	Goals   []goalRow
	Empty   bool
	Errors  []string
	Setup   setup
}

type goalRow struct {
	Goal        string  `json:"goal"`
	Conversions int64   `json:"conversions"`
	Visitors    int64   `json:"visitors"`
	Rate        float64 `json:"rate"`
}

// reportPage shows the web report: headline numbers, a chart, the
// breakdowns and the goals, all from the report API.
//
// Its answers are kept for a little less than the refresh interval, per
// tenant and query: however many browsers keep a tenant's report open, the
// node computes it at most once per interval (the queries, not the page,
// are the cost: see BENCHMARKS.md). A range that ended a while ago does
// not refresh.
func (s *Server) reportPage(w http.ResponseWriter, rq *request) {
	q := rq.URL.Query()
	loc := rq.tenant.Settings.Location()
	now := s.deps.Now()
	sp, err := pickSpan(q, now, loc)
	if err != nil {
		s.renderError(w, rq, http.StatusBadRequest, err.Error())
		return
	}
	v, ok := s.cachedReport(rq, q, sp, loc, now)
	if !ok {
		return // the browser went away
	}
	v.Self = rq.URL.RequestURI()
	if v.Empty {
		v.Setup = s.setupFor(rq)
	}
	refresh := 0
	if now.Sub(sp.To) < time.Minute {
		refresh = int(s.cfg.Refresh / time.Second)
	}
	s.render(w, rq, http.StatusOK, "report", page{Title: "Report", Nav: "report", Refresh: refresh, Data: v})
}

// cachedReport returns the report of q over sp: a kept answer, or one
// computed now, once for the browsers that ask together. ok is false when
// the request went away first.
func (s *Server) cachedReport(rq *request, q url.Values, sp span, loc *time.Location, now time.Time) (reportView, bool) {
	if s.cfg.ReportCache < 0 {
		v := s.buildReport(rq.Context(), rq, q, sp, loc)
		return v, rq.Context().Err() == nil
	}
	key := rq.tenant.ID + "?" + q.Encode() // Encode sorts: one key per query
	if v, ok := s.reports.get(key, now); ok {
		return v, true
	}
	// The computation is theirs, not the first one's: it goes on if that
	// browser leaves.
	got, _, _ := s.reports.flight.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(rq.Context()), reportTimeout)
		defer cancel()
		v := s.buildReport(ctx, rq, q, sp, loc)
		if ctx.Err() == nil && len(v.Errors) == 0 {
			s.reports.put(key, v, now.Add(s.cfg.ReportCache))
		}
		return v, nil
	})
	return got.(reportView), rq.Context().Err() == nil
}

// buildReport reads the report of q over sp from the report API.
func (s *Server) buildReport(ctx context.Context, rq *request, q url.Values, sp span, loc *time.Location) reportView {
	v := reportView{Span: sp, Ranges: ranges, Filter: q.Get("filter"), Metric: q.Get("metric"), Metrics: metrics}
	if v.Metric == "" {
		v.Metric = "visitors"
	}
	base := url.Values{"from": {sp.From.UTC().Format(time.RFC3339)}, "to": {sp.To.UTC().Format(time.RFC3339)}}
	with := func(kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range base {
			out[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				out.Set(kv[i], kv[i+1])
			}
		}
		return out
	}
	var points struct {
		Points []api.PointView `json:"points"`
	}
	var goals struct {
		Rows []goalRow `json:"rows"`
	}
	v.Cards = make([]breakdown, len(cards))
	var errs [2]error // the summary, and the time series with the goals
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	g.Go(func() error {
		errs[0] = s.do(gctx, &rq.sess, call{method: "GET", path: "/api/v1/reports/summary", query: with("filter", v.Filter)}, &v.Summary)
		return nil
	})
	g.Go(func() error {
		errs[1] = s.do(gctx, &rq.sess, call{method: "GET", path: "/api/v1/reports/timeseries",
			query: with("metric", v.Metric, "interval", sp.Interval, "timezone", loc.String())}, &points)
		if errs[1] == nil {
			errs[1] = s.do(gctx, &rq.sess, call{method: "GET", path: "/api/v1/reports/goals", query: with()}, &goals)
		}
		return nil
	})
	for i, c := range cards {
		c.Dim = c.Tabs[0].Dim
		if d := q.Get(c.Param); d != "" {
			for _, t := range c.Tabs {
				if t.Dim == d {
					c.Dim = d
				}
			}
		}
		c.Column = "Visitors"
		if c.Dim == "event" {
			c.Column = "Events"
		}
		v.Cards[i] = c
		g.Go(func() error {
			var top struct {
				Rows []api.TopRowView `json:"rows"`
			}
			err := s.do(gctx, &rq.sess, call{method: "GET", path: "/api/v1/reports/top", query: with("dimension", c.Dim, "limit", "10", "filter", v.Filter)}, &top)
			var e *apiError
			if errors.As(err, &e) && e.Code == api.CodeUnsupportedFilter {
				v.Cards[i].Note = "Not broken down under this filter."
				return nil
			}
			if err != nil {
				v.Cards[i].Error = errorText(err)
				return nil
			}
			v.Cards[i].Rows = top.Rows
			for _, r := range top.Rows {
				v.Cards[i].Max = max(v.Cards[i].Max, cardValue(c.Dim, r))
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err != nil {
			if ctx.Err() != nil {
				return v // the browser went away: the caller drops it
			}
			v.Errors = append(v.Errors, errorText(err))
		}
	}
	times := make([]time.Time, 0, len(points.Points))
	values := make([]int64, 0, len(points.Points))
	for _, p := range points.Points {
		t, err := time.Parse(time.RFC3339, p.T)
		if err != nil {
			continue
		}
		times, values = append(times, t.In(loc)), append(values, p.Value)
	}
	v.Chart = drawChart(times, values, sp.Interval, v.Metric)
	v.Goals = goals.Rows
	v.Empty = errs[0] == nil && v.Summary.Pageviews == 0 && v.Summary.Events == 0 && v.Filter == ""
	return v
}

// reportTimeout bounds one computation of a report.
const reportTimeout = 30 * time.Second

// reportCache keeps report answers until they expire.
type reportCache struct {
	mu      sync.Mutex
	entries map[string]cachedReport
	flight  singleflight.Group
}

type cachedReport struct {
	v       reportView
	expires time.Time
}

// maxCachedReports bounds the cache: past it, expired entries go, then
// all.
const maxCachedReports = 1024

func (c *reportCache) get(key string, now time.Time) (reportView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		return reportView{}, false
	}
	return e.v, true
}

func (c *reportCache) put(key string, v reportView, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedReport{}
	}
	if len(c.entries) >= maxCachedReports {
		now := time.Now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedReports {
			clear(c.entries)
		}
	}
	c.entries[key] = cachedReport{v: v, expires: expires}
}

// cardValue is the number a card's bar shows for a row.
func cardValue(dim string, r api.TopRowView) int64 {
	if dim == "event" {
		return r.Events
	}
	return r.Visitors
}

// errorText is an error as a user reads it.
func errorText(err error) string {
	if e, ok := err.(*apiError); ok {
		return e.Message
	}
	return err.Error()
}
