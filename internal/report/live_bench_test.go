package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/report/reporttest"
)

// BenchmarkQueryLive answers, as the dashboard's report page does for a
// live tenant, a summary and the top 10 pages and referrers of the last
// hour, in 16 partitions: 10 minutes of traffic (60k events) in minute
// buckets, and the last 4 seconds (8k events, about 500 per partition) in
// the hit logs, not folded yet.
func BenchmarkQueryLive(b *testing.B) {
	pl := reporttest.New(b, 16, tenants{testTenant: {ID: testTenant}})
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	pl.Run(modelEvents(b, 60000, 5000, start, 10*time.Minute, 1), 50)
	pl.Run(modelEvents(b, 8000, 5000, start.Add(10*time.Minute), 4*time.Second, 2), 7)
	q := pl.Querier()
	r := report.Range{From: start, To: start.Add(time.Hour)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := q.Summary(ctx, testTenant, r, nil)
		if err != nil || s.Pageviews == 0 {
			b.Fatal(err, s)
		}
		for _, d := range []report.Dim{report.DimPage, report.DimReferrer} {
			if _, err := q.Top(ctx, testTenant, d, r, nil, 10); err != nil {
				b.Fatal(err)
			}
		}
	}
}
