package report

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/store"
)

// mapTx is a Tx over a map, for benchmarks of the rollups alone.
type mapTx map[string][]byte

func (m mapTx) Get(k []byte) ([]byte, error) { return m[string(k)], nil }
func (m mapTx) Set(k, v []byte)              { m[string(k)] = v }
func (m mapTx) DeleteRange(_, _ []byte)      {}
func (m mapTx) Scan(_, _ []byte, _ func(k, v []byte) bool) error {
	return nil
}

// benchHits is a realistic mix: 50 pages, 10 sources, a few devices; 70%
// page views, a new session every 5 events.
func benchHits(n int) []Hit {
	rng := rand.New(rand.NewPCG(1, 2))
	pages := make([]string, 50)
	for i := range pages {
		pages[i] = fmt.Sprintf("/products/item-%d", i)
	}
	refs := []string{"google.com", "bing.com", "facebook.com", "t.co", "news.ycombinator.com", "", "", "", "duckduckgo.com", "reddit.com"}
	chans := []string{"search", "search", "social", "social", "other", "direct", "direct", "direct", "search", "social"}
	devs := []string{"desktop", "mobile", "tablet"}
	hits := make([]Hit, n)
	for i := range hits {
		h := &hits[i]
		h.Time, h.Received = 1_800_000_000+int64(i%50), 1_800_000_000+int64(i%50)
		h.Visitor = rng.Uint64()
		h.Pageview = rng.IntN(10) < 7
		if !h.Pageview {
			h.Event = "Product Viewed"
		}
		h.NewSession = i%5 == 0
		if h.NewSession {
			h.Bounce = 1
		}
		h.DurationMs = 5000
		src := rng.IntN(len(refs))
		h.Values[DimPage] = pages[rng.IntN(len(pages))]
		h.Values[DimEntryPage] = pages[rng.IntN(10)]
		h.Values[DimReferrer], h.Values[DimChannel] = refs[src], chans[src]
		h.Values[DimCountry] = []string{"US", "DE", "FR", "GB"}[rng.IntN(4)]
		h.Values[DimDevice] = devs[rng.IntN(3)]
		h.Values[DimBrowser], h.Values[DimOS] = "Chrome", "Windows"
		if i%3 == 0 {
			h.Values[DimUTMSource], h.Values[DimUTMMedium], h.Values[DimUTMCampaign] = "newsletter", "email", "black-friday"
		}
	}
	return hits
}

// warmRollup returns hits and a rollup that has counted them all once, so
// that its rows exist.
func warmRollup(b *testing.B) ([]Hit, *Rollup, mapTx) {
	hits := benchHits(4096)
	r := NewRollup(0, func(string) Policy { return DefaultPolicy() })
	tx := mapTx{}
	for i := range hits {
		if err := r.Add(tx, "tn_bench", &hits[i]); err != nil {
			b.Fatal(err)
		}
	}
	return hits, r, tx
}

// BenchmarkRollupAdd is the cost per event of counting it into its minute
// bucket, in steady state (the bucket is cached and its rows exist).
func BenchmarkRollupAdd(b *testing.B) {
	hits, r, tx := warmRollup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := r.Add(tx, "tn_bench", &hits[i%len(hits)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRollupFlush is the cost of writing a changed minute bucket at
// the end of a log message, per message.
func BenchmarkRollupFlush(b *testing.B) {
	hits, r, tx := warmRollup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A message of 100 events, then its flush.
		for j := range 100 {
			if err := r.Add(tx, "tn_bench", &hits[(i*100+j)%len(hits)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.Flush(tx, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuery30Days answers a 30-day summary and top 10 pages for a
// tenant with 100 million events in 16 partitions: 30 compacted days (up
// to 2000 pages and 1000 referrers each), plus today's hours and minutes.
func BenchmarkQuery30Days(b *testing.B) {
	const parts, days = 16, 30
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	end := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -days)
	rng := rand.New(rand.NewPCG(3, 4))
	perBucket := int64(100_000_000 / days / parts) // events per partition-day
	var events int64
	for p := range parts {
		k := newKeys(p)
		batch := st.NewBatch()
		for d := range days {
			bk := &Bucket{}
			for range 6000 { // visitors per partition-day, sampled
				bk.Total.addVisitor(rng.Uint64())
			}
			bk.Total.Pageviews, bk.Total.Events, bk.Total.Sessions = perBucket*7/10, perBucket*3/10, perBucket/5
			events += perBucket
			fill := func(dim Dim, n int, prefix string) {
				for i := range n {
					row := bk.row(dim, fmt.Sprintf("%s%d", prefix, i))
					row.Pageviews = int64(1 + rng.IntN(50000/(i+1)+1))
					row.Sessions = row.Pageviews / 3
					for range min(row.Pageviews, 200) {
						row.addVisitor(rng.Uint64())
					}
				}
			}
			fill(DimPage, 2000, "/page/")
			fill(DimReferrer, 1000, "site")
			fill(DimEntryPage, 500, "/page/")
			fill(DimCountry, 100, "C")
			at := start.AddDate(0, 0, d).Unix()
			for s := range numSecs {
				v, err := bk.appendSection(nil, s)
				if err != nil {
					b.Fatal(err)
				}
				if err := batch.Set(k.section("tn_big", s, resDay, at), v, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		m := binary.BigEndian.AppendUint64(nil, uint64(end.Unix()))
		m = binary.BigEndian.AppendUint64(m, uint64(end.Unix()))
		if err := batch.Set(k.marks("tn_big"), m, nil); err != nil {
			b.Fatal(err)
		}
		if err := st.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	q := NewQuerier(st, parts, func(string) Policy { return DefaultPolicy() })
	r := Range{From: start, To: end}
	ctx := context.Background()
	b.ReportMetric(float64(events), "events")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s, err := q.Summary(ctx, "tn_big", r, nil)
		if err != nil || s.Pageviews == 0 {
			b.Fatal(err, s)
		}
		top, err := q.Top(ctx, "tn_big", DimPage, r, nil, 10)
		if err != nil || len(top) != 10 {
			b.Fatal(err, len(top))
		}
	}
}
