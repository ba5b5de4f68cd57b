package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/report/reporttest"
	"github.com/contrailhq/contrail/internal/tenant"
)

const testTenant = "tn_report"

type tenants map[string]*tenant.Tenant

func (f tenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := f[id]; return t, ok }

func newPipeline(t *testing.T, parts int, set tenant.Settings) *reporttest.Pipeline {
	return reporttest.New(t, parts, tenants{testTenant: {ID: testTenant, Settings: set}})
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func page(anon, path string, at time.Duration, ctx map[string]any) event.Event {
	props, _ := json.Marshal(map[string]any{"path": path, "url": "https://shop.example" + path})
	var c []byte
	if ctx != nil {
		c, _ = json.Marshal(ctx)
	}
	return event.Event{Tenant: testTenant, Type: event.TypePage, MessageID: fmt.Sprintf("%s-%s-%d", anon, path, at),
		AnonymousID: anon, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: props, Context: c}
}

func track(anon, name string, at time.Duration, props map[string]any) event.Event {
	p, _ := json.Marshal(props)
	return event.Event{Tenant: testTenant, Type: event.TypeTrack, MessageID: fmt.Sprintf("%s-%s-%d", anon, name, at),
		AnonymousID: anon, Event: name, Timestamp: t0.Add(at), ReceivedAt: t0.Add(at), Properties: p}
}

func TestRollupSummaryTopGoals(t *testing.T) {
	set := tenant.Settings{Goals: []tenant.Goal{
		{Name: "Pricing", Page: "/pricing"},
		{Name: "Pro signup", Event: "Signed Up", Property: "plan", Value: "pro"},
	}}
	pl := newPipeline(t, 4, set)
	google := map[string]any{"page": map[string]any{"referrer": "https://www.google.com/search?q=x"}}
	events := []event.Event{
		// a: two pages, 90 s apart, from Google: one session, no bounce.
		page("a", "/", 0, google),
		page("a", "/pricing", 90*time.Second, nil),
		track("a", "Signed Up", 100*time.Second, map[string]any{"plan": "pro"}),
		// b: one page: a bounce.
		page("b", "/blog", 30*time.Second, nil),
		// c: a page, then another 40 minutes later: two sessions, two bounces.
		page("c", "/pricing", 0, nil),
		page("c", "/", 40*time.Minute, nil),
		track("c", "Signed Up", 41*time.Minute, map[string]any{"plan": "free"}),
	}
	pl.Run(events, 3)
	q := pl.Querier()
	ctx := context.Background()
	r := report.Range{From: t0, To: t0.Add(time.Hour)}
	s, err := q.Summary(ctx, testTenant, r, nil)
	require.NoError(t, err)
	require.Equal(t, int64(5), s.Pageviews)
	require.Equal(t, int64(2), s.Events)
	require.Equal(t, int64(3), s.Visitors)
	require.Equal(t, int64(4), s.Sessions)
	require.InDelta(t, 0.75, *s.BounceRate, 1e-9)
	// a lasted 100 s, c's second session 60 s, the bounces 0.
	require.InDelta(t, 160.0/4, *s.AvgSessionSeconds, 1e-9)

	top, err := q.Top(ctx, testTenant, report.DimPage, r, nil, 10)
	require.NoError(t, err)
	require.Equal(t, []report.TopRow{
		{Value: "/", Pageviews: 2, Visitors: 2},
		{Value: "/pricing", Pageviews: 2, Visitors: 2},
		{Value: "/blog", Pageviews: 1, Visitors: 1},
	}, top)
	exits, err := q.Top(ctx, testTenant, report.DimExitPage, r, nil, 10)
	require.NoError(t, err)
	require.Equal(t, []report.TopRow{
		{Value: "/pricing", Pageviews: 2, Visitors: 2, Sessions: 2},
		{Value: "/", Pageviews: 2, Visitors: 2, Sessions: 1},
		{Value: "/blog", Pageviews: 1, Visitors: 1, Sessions: 1},
	}, exits)
	ch, err := q.Top(ctx, testTenant, report.DimChannel, r, nil, 10)
	require.NoError(t, err)
	// Every event of a's session counts under its source, search.
	require.Equal(t, []report.TopRow{
		{Value: "direct", Pageviews: 3, Visitors: 2, Events: 1, Sessions: 3},
		{Value: "search", Pageviews: 2, Visitors: 1, Events: 1, Sessions: 1},
	}, ch)

	g, err := q.Goals(ctx, testTenant, []string{"Pricing", "Pro signup"}, r)
	require.NoError(t, err)
	require.Equal(t, []report.GoalRow{
		{Goal: "Pricing", Conversions: 2, Visitors: 2, Rate: 2.0 / 3},
		{Goal: "Pro signup", Conversions: 1, Visitors: 1, Rate: 1.0 / 3},
	}, g)

	f, err := q.Summary(ctx, testTenant, r, &report.Filter{Dim: report.DimChannel, Value: "search"})
	require.NoError(t, err)
	require.Equal(t, int64(1), f.Sessions)
	require.Equal(t, int64(1), f.Visitors)
	require.InDelta(t, 0.0, *f.BounceRate, 1e-9)
}

// TestClosedMinutesSettleIntoOneRecord: under steady traffic a minute
// gathers a record per fold of the hit log; a minute after it closes, its
// records are merged into one, and the reports stay the same. A restart
// in the middle leaves minutes unsettled, which the next run settles.
func TestClosedMinutesSettleIntoOneRecord(t *testing.T) {
	pl := newPipeline(t, 1, tenant.Settings{})
	var evs []event.Event
	for i := range 300 { // 10:00 to 10:10, one page view every 2 seconds
		evs = append(evs, page(fmt.Sprintf("v%d", i%7), fmt.Sprintf("/p%d", i%5), time.Duration(i)*2*time.Second, nil))
	}
	pl.Run(evs[:155], 1) // to 10:05:08: 10:04 and 10:05 are not settled yet
	pl.Restart()
	pl.Run(evs[155:], 1)
	q := pl.Querier()
	r := report.Range{From: t0, To: t0.Add(time.Hour)}
	s, err := q.Summary(context.Background(), testTenant, r, nil)
	require.NoError(t, err)
	require.EqualValues(t, 300, s.Pageviews)

	per := report.RecordsPerBucket(pl.Store, 1, testTenant, 'm')
	require.Len(t, per, 10)
	clock := t0.Add(598 * time.Second).Unix()
	for start, n := range per {
		if start+60+60 <= clock {
			require.Equal(t, 1, n, "settled minute %s", time.Unix(start, 0).UTC())
		} else {
			require.Greater(t, n, 1, "open minute %s keeps a record per fold", time.Unix(start, 0).UTC())
		}
	}
	// A late event of a settled minute adds a record; the counts hold it.
	late := page("v1", "/p1", 30*time.Second, nil)
	late.MessageID, late.ReceivedAt = "late", t0.Add(10*time.Minute)
	pl.Run([]event.Event{late}, 1)
	s2, err := q.Summary(context.Background(), testTenant, r, nil)
	require.NoError(t, err)
	require.EqualValues(t, 301, s2.Pageviews)
}
