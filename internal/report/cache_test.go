package report_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// sameReports requires the reports of cached, which keeps merged buckets
// and decoded hit logs, to be those of plain, a new querier without merged
// buckets, over r: every breakdown in full, and summaries filtered by one
// value of a few.
func sameReports(t *testing.T, cached, plain *report.Querier, r report.Range) {
	t.Helper()
	ctx := context.Background()
	for _, name := range report.DimNames() {
		d, _ := report.ParseDim(name)
		want, err := plain.Top(ctx, testTenant, d, r, nil, 0)
		require.NoError(t, err)
		got, err := cached.Top(ctx, testTenant, d, r, nil, 0)
		require.NoError(t, err)
		require.Equal(t, want, got, "breakdown by %s", name)
		if len(want) == 0 || d == report.DimExitPage || d == report.DimEvent {
			continue
		}
		f := &report.Filter{Dim: d, Value: want[len(want)/2].Value}
		ws, err := plain.Summary(ctx, testTenant, r, f)
		require.NoError(t, err)
		gs, err := cached.Summary(ctx, testTenant, r, f)
		require.NoError(t, err)
		require.Equal(t, ws, gs, "summary filtered by %s=%s", name, f.Value)
		wt, err := plain.Top(ctx, testTenant, d, r, f, 0)
		require.NoError(t, err)
		gt, err := cached.Top(ctx, testTenant, d, r, f, 0)
		require.NoError(t, err)
		require.Equal(t, wt, gt, "breakdown by %s filtered by %s", name, f.Value)
	}
}

// TestMergedBucketsAnswerAsTheRecords holds the querier's merged buckets to
// the records they were merged from, while those change under them: a
// partition whose first events arrive late and compact into hours that
// were merged without it, and a record deleted by retention.
// TestMergedMinutes does the same for minutes.
func TestMergedBucketsAnswerAsTheRecords(t *testing.T) {
	pl := newPipeline(t, 4, tenant.Settings{})
	paths := []string{"/", "/pricing", "/blog/a", "/blog/b", "/docs", "/signup", "/about"}
	referrers := []map[string]any{nil, {"referrer": map[string]any{"url": "https://www.google.com/"}}, {"page": map[string]any{"referrer": "https://news.ycombinator.com/item"}}}
	visit := func(anon string, i int, at time.Duration) event.Event {
		e := page(anon, paths[i%len(paths)], at, referrers[i%len(referrers)])
		e.MessageID = fmt.Sprintf("%s-%d-%d", anon, i, at)
		return e
	}
	// One visitor from 10:00 to 13:00 and once at 14:30: one partition has
	// rollups, its hours 10 to 12 compacted.
	var first []event.Event
	for i := range 180 {
		first = append(first, visit("solo", i, time.Duration(i)*time.Minute))
	}
	first = append(first, visit("solo", 0, 4*time.Hour+30*time.Minute))
	pl.Run(first, 5)

	cached := pl.Querier()
	r := report.Range{From: t0, To: t0.Add(5 * time.Hour)}
	sameReports(t, cached, pl.QuerierCache(0), r)
	sameReports(t, cached, pl.QuerierCache(0), r)
	s := cached.CacheStats()
	require.Positive(t, s.Entries, "merged buckets")
	require.Positive(t, s.Hits, "a second query takes them from the cache")
	require.Zero(t, s.Stale)
	plain := pl.QuerierCache(0)
	sameReports(t, plain, pl.QuerierCache(0), r)
	require.Zero(t, plain.CacheStats().Entries, "no cache, no entries")

	// Other visitors, in other partitions, whose events of 10:00 to 12:00
	// arrive at 14:40: their partitions start rollups in the past and
	// compact those hours, which the cache merged without them.
	var late []event.Event
	for v := range 24 {
		for i := range 5 {
			e := visit(fmt.Sprintf("late-%d", v), v+i, time.Duration(v*5+i)*time.Minute)
			e.ReceivedAt = t0.Add(4*time.Hour + 40*time.Minute)
			late = append(late, e)
		}
	}
	for v := range 24 {
		late = append(late, visit(fmt.Sprintf("late-%d", v), v, 4*time.Hour+45*time.Minute))
	}
	pl.Run(late, 1)
	before := cached.CacheStats().Stale
	sameReports(t, cached, pl.QuerierCache(0), r)
	require.Equal(t, before, cached.CacheStats().Stale, "the late partitions' records are read beside the merged buckets, which lack them")
	sameReports(t, cached, pl.QuerierCache(0), r)

	// Queries at once on one querier share its merged buckets and decoded
	// hit logs (run with -race): each answers as a new querier does.
	want, err := pl.QuerierCache(0).Top(context.Background(), testTenant, report.DimPage, r, nil, 0)
	require.NoError(t, err)
	shared := pl.Querier()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			got, err := shared.Top(context.Background(), testTenant, report.DimPage, r, nil, 0)
			if err == nil && !reflect.DeepEqual(want, got) {
				err = fmt.Errorf("query %d: %v, want %v", i, got, want)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	// A consolidated record deleted (as retention does) fails the check too.
	for p := range 4 {
		require.NoError(t, report.DropConsolidated(pl.Store, p, testTenant, 'h', t0.Add(time.Hour).Unix()))
	}
	before = cached.CacheStats().Stale
	sameReports(t, cached, pl.QuerierCache(0), r)
	require.Greater(t, cached.CacheStats().Stale, before, "a deleted record fails the check")
}

// TestMergedMinutes: settled minutes are merged buckets too. One that
// settles after a query merged the minute without it is read beside it; a
// late event that rewrites a settled minute fails the check.
func TestMergedMinutes(t *testing.T) {
	pl := newPipeline(t, 2, tenant.Settings{})
	var evs []event.Event
	for i := range 600 { // 10:00 to 10:10, a page view a second, 4 visitors
		evs = append(evs, page(fmt.Sprintf("v%d", i%4), fmt.Sprintf("/p%d", i%5), time.Duration(i)*time.Second, nil))
	}
	pl.Run(evs[:300], 1) // to 10:05; 10:00 to 10:02 settled
	cached := pl.Querier()
	r := report.Range{From: t0, To: t0.Add(time.Hour)}
	sameReports(t, cached, pl.QuerierCache(0), r)
	require.Positive(t, cached.CacheStats().Entries)

	pl.Run(evs[300:], 1) // 10:03 to 10:07 settle since
	before := cached.CacheStats()
	sameReports(t, cached, pl.QuerierCache(0), r)
	after := cached.CacheStats()
	require.Equal(t, before.Stale, after.Stale, "minutes settled since are read beside the merged ones")
	require.Greater(t, after.Hits, before.Hits)

	// A late event of 10:01 rewrites that settled minute's record.
	// Ten more seconds of traffic fold the hit logs.
	late := page("v1", "/p1", 90*time.Second, nil)
	late.MessageID, late.ReceivedAt = "late", t0.Add(10*time.Minute)
	more := []event.Event{late}
	for i := range 10 {
		more = append(more, page(fmt.Sprintf("v%d", i%4), "/p0", 10*time.Minute+time.Duration(i+1)*time.Second, nil))
	}
	pl.Run(more, 1)
	sameReports(t, cached, pl.QuerierCache(0), r)
	require.Greater(t, cached.CacheStats().Stale, after.Stale, "the rewritten minute fails the check")
	sameReports(t, cached, pl.QuerierCache(0), r)
}
