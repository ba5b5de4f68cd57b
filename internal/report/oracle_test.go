package report_test

import (
	"context"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/loadgen"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// modelEvents draws n events of the load generator's traffic model, spread
// evenly over span from start, decoded as the collector would store them.
func modelEvents(t testing.TB, n, visitors int, start time.Time, span time.Duration, seed uint64) []event.Event {
	t.Helper()
	m := loadgen.NewModel(loadgen.ModelConfig{Visitors: visitors, Seed: seed})
	out := make([]event.Event, 0, n)
	var buf []byte
	for i := range n {
		ts := start.Add(time.Duration(int64(span) / int64(n) * int64(i))).Truncate(time.Millisecond)
		buf = m.AppendEvent(buf[:0], ts)
		r := gjson.ParseBytes(buf)
		e := event.Event{
			Tenant: testTenant, Type: event.ParseType(r.Get("type").Str), MessageID: r.Get("messageId").Str,
			AnonymousID: r.Get("anonymousId").Str, UserID: r.Get("userId").Str, Event: r.Get("event").Str,
			Timestamp: ts, ReceivedAt: ts.Add(2 * time.Second),
		}
		if p := r.Get("properties"); p.Exists() {
			e.Properties = []byte(p.Raw)
		}
		if tr := r.Get("traits"); tr.Exists() {
			e.Traits = []byte(tr.Raw)
		}
		e.Context = []byte(r.Get("context").Raw)
		require.NotEqual(t, event.TypeUnknown, e.Type)
		out = append(out, e)
	}
	return out
}

// oracle computes the reports by brute force from the processed events
// (their enrichment says what the event was: path, channel, device...):
// sessions by the rules (30 minutes idle, 24 hours at most), then every
// count by walking every event.
type oracle struct {
	pageviews, events, bots, sessions, bounces, durationMs int64
	visitors                                               map[string]bool
	rows                                                   map[report.Dim]map[string]*oracleRow
	goals                                                  map[string]*oracleRow
	hourly                                                 map[int64]int64 // pageviews per hour
}

type oracleRow struct {
	pageviews, events, sessions int64
	visitors                    map[string]bool
}

func (o *oracle) row(d report.Dim, v string) *oracleRow {
	if o.rows[d] == nil {
		o.rows[d] = map[string]*oracleRow{}
	}
	r := o.rows[d][v]
	if r == nil {
		r = &oracleRow{visitors: map[string]bool{}}
		o.rows[d][v] = r
	}
	return r
}

type oracleSession struct {
	start, last int64
	pages       int
	landing     string
	exit        string
	src         *event.Enrichment // the first event with a channel
	events      []*event.Event
}

func bruteForce(t *testing.T, events []event.Event, goals func(*event.Event) []string) *oracle {
	o := &oracle{visitors: map[string]bool{}, rows: map[report.Dim]map[string]*oracleRow{},
		goals: map[string]*oracleRow{}, hourly: map[int64]int64{}}
	// Sessions, per visitor, in time order.
	byVisitor := map[string][]*event.Event{}
	var order []string
	for i := range events {
		e := &events[i]
		k := e.VisitorKey()
		if byVisitor[k] == nil {
			order = append(order, k)
		}
		byVisitor[k] = append(byVisitor[k], e)
	}
	var sessions []*oracleSession
	for _, k := range order {
		evs := byVisitor[k]
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Timestamp.Before(evs[j].Timestamp) })
		var cur *oracleSession
		for _, e := range evs {
			active := e.Type == event.TypePage || e.Type == event.TypeTrack
			tm := e.Timestamp.UnixMilli()
			if cur == nil || tm > cur.last+30*60*1000 || tm-cur.start >= 24*3600*1000 {
				if !active {
					continue
				}
				cur = &oracleSession{start: tm, last: tm}
				sessions = append(sessions, cur)
			}
			if active {
				cur.last = max(cur.last, tm)
			}
			if active && cur.src == nil && e.Enrichment.Channel != "" {
				cur.src = &e.Enrichment
			}
			if e.Type == event.TypePage {
				cur.pages++
				if cur.landing == "" {
					cur.landing = e.Enrichment.Path
				}
				cur.exit = e.Enrichment.Path
			}
			cur.events = append(cur.events, e)
		}
	}
	// The processor's sessions must be the same.
	for _, s := range sessions {
		for _, e := range s.events {
			require.Equal(t, s.events[0].Enrichment.SessionID, e.Enrichment.SessionID, "session of %s", e.MessageID)
		}
	}
	for _, s := range sessions {
		first := s.events[0]
		if first.Enrichment.Bot {
			continue
		}
		src := s.src
		if src == nil {
			src = &event.Enrichment{}
		}
		sessVals := map[report.Dim]string{
			report.DimEntryPage: s.landing, report.DimReferrer: src.ReferrerDomain, report.DimChannel: src.Channel,
			report.DimUTMSource: src.UTMSource, report.DimUTMMedium: src.UTMMedium, report.DimUTMCampaign: src.UTMCampaign,
			report.DimCountry: src.Country,
		}
		o.sessions++
		if s.pages == 1 {
			o.bounces++
		}
		o.durationMs += s.last - s.start
		for d, v := range sessVals {
			if v != "" {
				o.row(d, v).sessions++
			}
		}
		for d, v := range map[report.Dim]string{report.DimDevice: first.Enrichment.Device, report.DimBrowser: first.Enrichment.Browser, report.DimOS: first.Enrichment.OS} {
			if v != "" {
				o.row(d, v).sessions++
			}
		}
		if s.exit != "" {
			o.row(report.DimExitPage, s.exit).sessions++
		}
		// An event counts under the session's values known by then: the
		// entry page from the first page view, the source from the first
		// event that has one.
		landing, source := "", (*event.Enrichment)(nil)
		for _, e := range s.events {
			x := &e.Enrichment
			if landing == "" && e.Type == event.TypePage {
				landing = x.Path
			}
			pv, tr := e.Type == event.TypePage, e.Type == event.TypeTrack
			if !pv && !tr {
				continue
			}
			if source == nil && x.Channel != "" {
				source = x
			}
			vals := map[report.Dim]string{report.DimDevice: x.Device, report.DimBrowser: x.Browser, report.DimOS: x.OS,
				report.DimEntryPage: landing}
			if source != nil {
				vals[report.DimReferrer], vals[report.DimChannel] = source.ReferrerDomain, source.Channel
				vals[report.DimUTMSource], vals[report.DimUTMMedium], vals[report.DimUTMCampaign] = source.UTMSource, source.UTMMedium, source.UTMCampaign
				vals[report.DimCountry] = source.Country
			}
			for d, v := range vals {
				if v == "" {
					continue
				}
				r := o.row(d, v)
				r.visitors[e.VisitorKey()] = true
				if pv {
					r.pageviews++
				} else {
					r.events++
				}
			}
		}
	}
	for i := range events {
		e := &events[i]
		if e.Enrichment.Bot {
			o.bots++
			continue
		}
		k := e.VisitorKey()
		switch e.Type {
		case event.TypePage:
			o.pageviews++
			o.visitors[k] = true
			o.hourly[e.Timestamp.Unix()/3600*3600]++
			r := o.row(report.DimPage, e.Enrichment.Path)
			r.pageviews++
			r.visitors[k] = true
		case event.TypeTrack:
			o.events++
			o.visitors[k] = true
			r := o.row(report.DimEvent, e.Event)
			r.events++
			r.visitors[k] = true
		}
		for _, g := range goals(e) {
			r := o.goals[g]
			if r == nil {
				r = &oracleRow{visitors: map[string]bool{}}
				o.goals[g] = r
			}
			r.events++
			r.visitors[k] = true
		}
	}
	return o
}

// requireNear checks an estimate of unique visitors: within 2%.
func requireNear(t *testing.T, want int, got int64, msg string, args ...any) {
	t.Helper()
	require.LessOrEqual(t, math.Abs(float64(got)-float64(want)), math.Max(0.02*float64(want), 0.5), append([]any{msg + ": want %d, got %d"}, append(args, want, got)...)...)
}

// TestReportsMatchOracle runs the traffic model through the visitor shards
// and compares every report with the brute-force answer: exact for counts,
// within 2% for unique visitors. The processors are replaced half-way, as
// a restart does, so the second half is counted into buckets read back
// from the store; three hours of traffic make the first hours compacted.
func TestReportsMatchOracle(t *testing.T) {
	set := tenant.Settings{Goals: []tenant.Goal{
		{Name: "Blog", Page: "/blog/**"},
		{Name: "Cart", Event: "Added to Cart", Property: "currency", Value: "USD"},
	}}
	pl := newPipeline(t, 4, set)
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	events := modelEvents(t, 30000, 3000, start, 3*time.Hour, 7)
	half := len(events) / 2
	pl.Run(events[:half], 50)
	pl.Restart()
	pl.Run(events[half:], 50)

	goalsOf := func(e *event.Event) []string {
		var out []string
		if e.Type == event.TypePage && len(e.Enrichment.Path) > 6 && e.Enrichment.Path[:6] == "/blog/" {
			out = append(out, "Blog")
		}
		if e.Type == event.TypeTrack && e.Event == "Added to Cart" && gjson.GetBytes(e.Properties, "currency").Str == "USD" {
			out = append(out, "Cart")
		}
		return out
	}
	o := bruteForce(t, events, goalsOf)
	require.Greater(t, o.sessions, int64(1000))
	require.Greater(t, o.bounces, int64(100))

	q := pl.Querier()
	ctx := context.Background()
	r := report.Range{From: start, To: start.Add(4 * time.Hour)}
	s, err := q.Summary(ctx, testTenant, r, nil)
	require.NoError(t, err)
	require.Equal(t, o.pageviews, s.Pageviews, "pageviews")
	require.Equal(t, o.events, s.Events, "events")
	require.Equal(t, o.bots, s.Bots, "bots")
	require.Equal(t, o.sessions, s.Sessions, "sessions")
	requireNear(t, len(o.visitors), s.Visitors, "visitors")
	require.InDelta(t, float64(o.bounces)/float64(o.sessions), *s.BounceRate, 1e-9, "bounce rate")
	require.InDelta(t, float64(o.durationMs)/1000/float64(o.sessions), *s.AvgSessionSeconds, 1e-6, "avg session")

	// Every dimension, every row.
	for _, name := range report.DimNames() {
		d, _ := report.ParseDim(name)
		rows, err := q.Top(ctx, testTenant, d, r, nil, 1000)
		require.NoError(t, err)
		want := o.rows[d]
		require.Len(t, rows, len(want), "rows of %s", name)
		for _, got := range rows {
			w := want[got.Value]
			require.NotNil(t, w, "%s: unexpected row %q", name, got.Value)
			switch d {
			case report.DimExitPage:
				require.Equal(t, w.sessions, got.Sessions, "%s %q exits", name, got.Value)
			default:
				require.Equal(t, w.pageviews, got.Pageviews, "%s %q pageviews", name, got.Value)
				require.Equal(t, w.events, got.Events, "%s %q events", name, got.Value)
				require.Equal(t, w.sessions, got.Sessions, "%s %q sessions", name, got.Value)
				requireNear(t, len(w.visitors), got.Visitors, "%s %q visitors", name, got.Value)
			}
		}
	}

	// Filtered summaries answer from the filter's row.
	for _, d := range []report.Dim{report.DimChannel, report.DimCountry, report.DimDevice, report.DimEntryPage} {
		for v, w := range o.rows[d] {
			f, err := q.Summary(ctx, testTenant, r, &report.Filter{Dim: d, Value: v})
			require.NoError(t, err)
			require.Equal(t, w.pageviews, f.Pageviews, "%s=%s", d, v)
			require.Equal(t, w.sessions, f.Sessions, "%s=%s", d, v)
			requireNear(t, len(w.visitors), f.Visitors, "%s=%s visitors", d, v)
		}
	}

	g, err := q.Goals(ctx, testTenant, []string{"Blog", "Cart"}, r)
	require.NoError(t, err)
	for _, row := range g {
		w := o.goals[row.Goal]
		require.NotNil(t, w, row.Goal)
		require.Equal(t, w.events, row.Conversions, row.Goal)
		requireNear(t, len(w.visitors), row.Visitors, row.Goal)
	}

	// Pageviews per hour, from compacted hours and from minutes.
	checkHourly := func() {
		t.Helper()
		pts, err := q.Timeseries(ctx, testTenant, report.MetricPageviews, report.IntervalHour, r, time.UTC)
		require.NoError(t, err)
		require.Len(t, pts, 4)
		for _, p := range pts {
			require.Equal(t, o.hourly[p.T.Unix()], p.Value, "pageviews at %s", p.T)
		}
	}
	checkHourly()

	// Two and a half days later the day is compacted and its minutes are
	// gone (48 hours of minutes by default): the same range is answered
	// from hours, the whole day from its day bucket, with the same numbers.
	later := modelEvents(t, 500, 3000, start.Add(60*time.Hour), time.Hour, 8)
	pl.Run(later, 50)
	checkHourly()
	day := report.Range{From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	for _, rr := range []report.Range{r, day} {
		s2, err := q.Summary(ctx, testTenant, rr, nil)
		require.NoError(t, err)
		// Merged sketches turn dense, whose estimate differs from the
		// sparse one's, both within the error bound of the truth.
		requireNear(t, len(o.visitors), s2.Visitors, "visitors over %v after compaction", rr)
		s2.Visitors = s.Visitors
		require.Equal(t, s, s2, "summary over %v after compaction", rr)
	}
	top, err := q.Top(ctx, testTenant, report.DimPage, day, nil, 1000)
	require.NoError(t, err)
	require.Len(t, top, len(o.rows[report.DimPage]))
	for _, got := range top {
		require.Equal(t, o.rows[report.DimPage][got.Value].pageviews, got.Pageviews, got.Value)
	}
	minute, err := q.Timeseries(ctx, testTenant, report.MetricPageviews, report.IntervalMinute,
		report.Range{From: start, To: start.Add(10 * time.Minute)}, time.UTC)
	require.NoError(t, err)
	for _, p := range minute {
		require.Zero(t, p.Value, "minute buckets past their retention are gone")
	}

	// Nine days on, the week of it all (Monday 23 to Monday 30) is
	// compacted into a week bucket, which answers the week's range.
	pl.Run(modelEvents(t, 2000, 3000, start.Add(9*24*time.Hour), 2*time.Hour, 9), 20)
	week := report.Range{From: day.From, To: day.From.AddDate(0, 0, 7)}
	ow := bruteForce(t, append(slices.Clone(events), later...), goalsOf)
	sw, err := q.Summary(ctx, testTenant, week, nil)
	require.NoError(t, err)
	require.Equal(t, ow.pageviews, sw.Pageviews, "week pageviews")
	require.Equal(t, ow.sessions, sw.Sessions, "week sessions")
	require.Equal(t, ow.events, sw.Events, "week events")
	requireNear(t, len(ow.visitors), sw.Visitors, "week visitors")
	top, err = q.Top(ctx, testTenant, report.DimReferrer, week, nil, 1000)
	require.NoError(t, err)
	require.Len(t, top, len(ow.rows[report.DimReferrer]))
	for _, got := range top {
		require.Equal(t, ow.rows[report.DimReferrer][got.Value].sessions, got.Sessions, got.Value)
	}
	require.Positive(t, report.CountRecords(pl.Store, 4, testTenant, 'w'), "week buckets")
}
