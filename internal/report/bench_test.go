package report

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/contrailhq/contrail/internal/store"
)

// mapTx is a Tx over a map, for benchmarks of the rollups alone.
type mapTx map[string][]byte

func (m mapTx) Get(k []byte) ([]byte, error) { return m[string(k)], nil }
func (m mapTx) Set(k, v []byte)              { m[string(k)] = v }
func (m mapTx) Delete(k []byte)              { delete(m, string(k)) }
func (m mapTx) DeleteRange(_, _ []byte)      {}
func (m mapTx) Scan(_, _ []byte, _ func(k, v []byte) bool) error {
	return nil
}

// storeTx is a Tx over the store, committed per log message like a
// shard's: Get sees the message's writes, Scan only committed state.
type storeTx struct {
	st    *store.Store
	batch *pebble.Batch
	msg   map[string][]byte
}

func (t *storeTx) Get(k []byte) ([]byte, error) {
	if v, ok := t.msg[string(k)]; ok {
		return v, nil
	}
	return store.Get(t.st.DB(), k)
}

func (t *storeTx) Set(k, v []byte) {
	t.msg[string(k)] = bytes.Clone(v)
	_ = t.batch.Set(k, v, nil)
}

func (t *storeTx) Delete(k []byte) {
	t.msg[string(k)] = nil
	_ = t.batch.Delete(k, nil)
}

func (t *storeTx) DeleteRange(lo, hi []byte) { _ = t.batch.DeleteRange(lo, hi, nil) }

func (t *storeTx) Scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	it, err := t.st.NewIter(lo, hi)
	if err != nil {
		return err
	}
	for it.First(); it.Valid() && fn(it.Key(), it.Value()); it.Next() {
	}
	return it.Close()
}

func (t *storeTx) commit(b *testing.B) {
	if err := t.st.Commit(t.batch); err != nil {
		b.Fatal(err)
	}
	t.batch = t.st.NewBatch()
	clear(t.msg)
}

// BenchmarkRollupMessage is the whole cost per event of the rollups in a
// shard: counting, writing at the end of each log message of 7 events (the
// size messages have under load, an HTTP batch split over 16 partitions)
// and committing to Pebble, with the folds, consolidations and compactions
// that come due. Event times advance one second per 100 events.
func BenchmarkRollupMessage(b *testing.B) {
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hits := benchHits(4096)
	r := NewRollup(0, func(string) Policy { return DefaultPolicy() })
	tx := &storeTx{st: st, batch: st.NewBatch(), msg: map[string][]byte{}}
	const perMsg = 7
	b.ReportAllocs()
	seq := uint64(0)
	for i := 0; b.Loop(); i++ {
		h := hits[i%len(hits)]
		h.Time = 1_800_000_000 + int64(i/100)
		h.Received = h.Time
		if err := r.Add(tx, "tn_bench", &h); err != nil {
			b.Fatal(err)
		}
		if i%perMsg == perMsg-1 {
			seq++
			if err := r.Flush(tx, seq); err != nil {
				b.Fatal(err)
			}
			tx.commit(b)
		}
	}
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

// BenchmarkRollupAdd is the cost per event of counting it while its log
// message is processed: encoding its hit (the rest is paid per message
// and per fold, in BenchmarkRollupMessage). The message buffer is reset
// every 100 events, as a flush does.
func BenchmarkRollupAdd(b *testing.B) {
	hits := benchHits(4096)
	r := NewRollup(0, func(string) Policy { return DefaultPolicy() })
	tx := mapTx{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.Add(tx, "tn_bench", &hits[i%len(hits)]); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			m := r.msg["tn_bench"]
			m.buf, m.n = m.buf[:0], 0
		}
	}
}

// BenchmarkQuery30Days answers a 30-day summary and top 10 pages (apart
// and together) for a tenant with 100 million events in 16 partitions:
// per partition 30 compacted days of up to 2000 pages, 1000 referrers,
// 500 entry pages and 100 countries, and the weeks compaction makes of
// them, with the querier's merged buckets and without. The range ends on
// a Thursday, so it is read as 9 days and 3 weeks; tenant tn_days has the
// same days without weeks, as before weeks were compacted.
func BenchmarkQuery30Days(b *testing.B) {
	const parts, days = 16, 30
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	end := time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC) // a Thursday
	start := end.AddDate(0, 0, -days)
	var events int64
	stored := map[string]int64{} // bytes of records per tenant
	for _, tenant := range []string{"tn_big", "tn_days"} {
		// The same seed draws the same days for both.
		s, err := Synthesize(st, Synthetic{
			Tenant: tenant, Partitions: parts, End: end, Days: days, Events: 100_000_000,
			Visitors: 6000, Pages: 2000, Referrers: 1000, EntryPages: 500, Countries: 100,
			Weeks: tenant == "tn_big", Seed: 3,
		})
		if err != nil {
			b.Fatal(err)
		}
		events, stored[tenant] = s.Events, s.Bytes
	}
	pol := func(string) Policy { return DefaultPolicy() }
	r := Range{From: start, To: end}
	ctx := context.Background()
	// Merged: with the cache of merged buckets, warmed by a first query,
	// as a node runs; cold: a new querier (an empty cache) for every query,
	// as after a start or once a new hour is compacted; each: merging
	// every partition's records on every query, as before the cache.
	for _, mode := range []string{"merged", "cold", "each"} {
		cache := int64(DefaultCacheBytes)
		if mode == "each" {
			cache = 0
		}
		q := NewQuerier(st, parts, pol, cache)
		for _, tenant := range []string{"tn_big", "tn_days"} {
			summary := func(b *testing.B) {
				if mode == "cold" {
					q = NewQuerier(st, parts, pol, cache)
				}
				s, err := q.Summary(ctx, tenant, r, nil)
				if err != nil || s.Pageviews == 0 {
					b.Fatal(err, s)
				}
			}
			top := func(b *testing.B) {
				if mode == "cold" {
					q = NewQuerier(st, parts, pol, cache)
				}
				top, err := q.Top(ctx, tenant, DimPage, r, nil, 10)
				if err != nil || len(top) != 10 {
					b.Fatal(err, len(top))
				}
			}
			name := "weeks"
			if tenant == "tn_days" {
				name = "days"
			}
			for _, c := range []struct {
				name string
				fn   []func(*testing.B)
			}{{"summary", []func(*testing.B){summary}}, {"top10", []func(*testing.B){top}}, {"both", []func(*testing.B){summary, top}}} {
				b.Run(mode+"/"+name+"/"+c.name, func(b *testing.B) {
					if mode == "merged" {
						for _, fn := range c.fn {
							fn(b)
						}
					}
					b.ReportAllocs()
					for b.Loop() {
						for _, fn := range c.fn {
							fn(b)
						}
					}
					// Reported after the loop, which resets metrics.
					b.ReportMetric(float64(events), "events")
					// The storage cost of the compacted rollups per day of this
					// tenant (3.3 M events a day), all partitions, before Pebble's
					// compression.
					b.ReportMetric(float64(stored[tenant])/days, "bytes/day")
				})
			}
		}
	}
}
