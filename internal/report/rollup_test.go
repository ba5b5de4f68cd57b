package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
	"github.com/contrailhq/contrail/internal/visitor"
)

const testTenant = "tn_report"

type tenants map[string]*tenant.Tenant

func (f tenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := f[id]; return t, ok }

// pipeline runs the visitor shards of a few partitions over events, as log
// messages of a given size, through shard.ApplyLocal.
type pipeline struct {
	t     *testing.T
	st    *store.Store
	procs []*visitor.Processor
	seqs  []uint64
	set   tenant.Settings
}

func newPipeline(t *testing.T, parts int, set tenant.Settings) *pipeline {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	pl := &pipeline{t: t, st: st, seqs: make([]uint64, parts), set: set}
	pl.restart()
	return pl
}

// restart replaces the processors by fresh ones, as a process restart does.
func (pl *pipeline) restart() {
	cfg := visitor.DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = len(pl.seqs), 2
	cfg.Tenants = tenants{testTenant: {ID: testTenant, Settings: pl.set}}
	m := visitor.NewMetrics(prometheus.NewRegistry())
	pl.procs = make([]*visitor.Processor, len(pl.seqs))
	for p := range pl.procs {
		proc, err := visitor.New(cfg, p, m)
		require.NoError(pl.t, err)
		pl.procs[p] = proc
	}
}

// run partitions events by visitor and applies them, perMsg per message.
// The events get the enrichment the processors gave them.
func (pl *pipeline) run(events []event.Event, perMsg int) {
	byPart := make([][]int, len(pl.seqs))
	for i, e := range events {
		p := event.Partition(e.Tenant, e.VisitorKey(), len(pl.seqs))
		byPart[p] = append(byPart[p], i)
	}
	for p, idx := range byPart {
		for len(idx) > 0 {
			n := min(perMsg, len(idx))
			msg := make([]event.Event, n)
			for i := range msg {
				msg[i] = events[idx[i]]
			}
			pl.seqs[p]++
			_, errs, err := shard.ApplyLocal(context.Background(), pl.st, eventlog.StreamEvents, p, pl.seqs[p], pl.procs[p], msg)
			require.NoError(pl.t, err)
			for i, e := range errs {
				require.NoError(pl.t, e)
				events[idx[i]].Enrichment = msg[i].Enrichment
			}
			idx = idx[n:]
		}
	}
}

func (pl *pipeline) querier() *report.Querier {
	return report.NewQuerier(pl.st, len(pl.seqs), func(string) report.Policy { return visitor.PolicyOf(pl.set) })
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
	pl.run(events, 3)
	q := pl.querier()
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
