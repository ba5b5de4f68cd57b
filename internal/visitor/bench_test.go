package visitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

var benchUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}

// benchEvents makes n events of the load generator's shape (70% page, 22%
// track, 8% identify) for visitors drawn from a pool, one minute apart per
// visitor on average, starting at start.
func benchEvents(n, visitors int, start time.Time, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]event.Event, n)
	step := time.Minute / time.Duration(max(visitors, 1))
	for i := range out {
		v := r.IntN(visitors)
		at := start.Add(time.Duration(i) * step)
		e := event.Event{
			Tenant: "tn_bench", MessageID: fmt.Sprintf("%d-%d", seed, i), AnonymousID: "anon-" + strconv.Itoa(v),
			Timestamp: at, ReceivedAt: at,
		}
		page := fmt.Sprintf("https://www.example.com/docs/%d?utm_source=news&utm_campaign=c%d", r.IntN(50), r.IntN(5))
		ctx := map[string]any{
			"library":   map[string]any{"name": "analytics.js", "version": "2.11.1"},
			"userAgent": benchUAs[v%len(benchUAs)],
			"page":      map[string]any{"url": page, "referrer": "https://www.google.com/", "title": "Docs"},
			"locale":    "en-US", "ip": "203.0.113.7",
		}
		switch x := r.IntN(100); {
		case x < 70:
			e.Type = event.TypePage
			e.Properties, _ = json.Marshal(map[string]any{"url": page, "path": "/docs", "referrer": "https://www.google.com/", "title": "Docs"})
		case x < 92:
			e.Type, e.Event = event.TypeTrack, "Clicked CTA"
			e.Properties, _ = json.Marshal(map[string]any{"plan": "pro", "price": 49})
		default:
			e.Type = event.TypeIdentify
			if v%4 == 0 {
				e.UserID = "user-" + strconv.Itoa(v)
			}
			e.Traits, _ = json.Marshal(map[string]any{"email": "u" + strconv.Itoa(v) + "@example.com"})
		}
		e.Context, _ = json.Marshal(ctx)
		out[i] = e
	}
	return out
}

func benchProcessor(b *testing.B) (*Processor, *store.Store) {
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	cfg := DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = 16, 16
	p, err := New(cfg, 0, NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	return p, st
}

// BenchmarkProcess is the whole visitor step per event, committed in log
// messages of 100 events as a shard does, over 100k visitors.
func BenchmarkProcess(b *testing.B) { benchCommits(b, 100) }

// benchCommits applies b.N events of the load generator's model over 100k
// visitors in commits of per events.
func benchCommits(b *testing.B, per int) {
	p, st := benchProcessor(b)
	evs := benchEvents(max(b.N, per), 100_000, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(0)
	for i := 0; i < b.N; i += per {
		seq++
		if _, _, err := shard.ApplyLocal(ctx, st, eventlog.StreamEvents, 0, seq, p, evs[i:min(i+per, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitSize is BenchmarkProcess with commits of 24 events, the
// average log message of the bench's load (one commit per message, as a
// shard that keeps up commits), and of 384 events, a commit group of 16
// such messages (what a shard that is behind commits): the processor, the
// rollups' Flush and the Pebble commit, per event.
func BenchmarkCommitSize(b *testing.B) {
	for _, per := range []int{24, 384} {
		b.Run(fmt.Sprintf("events=%d", per), func(b *testing.B) { benchCommits(b, per) })
	}
}

// BenchmarkEnrich is reading the page and context JSON, the user agent
// (cached), path, UTM and channel.
func BenchmarkEnrich(b *testing.B) {
	p, _ := benchProcessor(b)
	evs := benchEvents(1024, 1000, time.Now(), 2)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e := &evs[i%len(evs)]
		e.Enrichment = event.Enrichment{}
		p.enrichEvent(e)
	}
}

// BenchmarkSessionize is the session step on a visitor's state.
func BenchmarkSessionize(b *testing.B) {
	evs := benchEvents(1024, 1, time.Now(), 3)
	var s state
	rules := sessionRules{timeout: 30 * 60 * 1000, maxLength: 24 * 3600 * 1000}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e := &evs[i%len(evs)]
		if i%len(evs) == 0 {
			s = state{}
		}
		sessionize(&s, e, "tn_bench", "anon-1", 0, rules)
	}
}

// BenchmarkStateEncode and BenchmarkStateDecode are a visitor record's
// round trip.
func BenchmarkStateEncode(b *testing.B) {
	s := state{lastSeen: 1795000000, sessStart: 1795000000000, sessLast: 1795000100000, pages: 3, campaign: 77,
		landing: "/docs/getting-started", histFirst: 10, histNext: 14}
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		buf = appendState(buf[:0], &s)
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkStateDecode(b *testing.B) {
	s := state{lastSeen: 1795000000, sessStart: 1795000000000, sessLast: 1795000100000, pages: 3, campaign: 77,
		landing: "/docs/getting-started", histFirst: 10, histNext: 14, lead: "ld_abcdefghijklmnopqrstuvwxyz"}
	buf := appendState(nil, &s)
	var out state
	b.ReportAllocs()
	for range b.N {
		if err := decodeState(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentify is a promotion with a ten-event history back-fill.
func BenchmarkIdentify(b *testing.B) {
	p, st := benchProcessor(b)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		evs := benchEvents(10, 1, at, uint64(i))
		for j := range evs {
			evs[j].AnonymousID, evs[j].UserID, evs[j].Type, evs[j].Event = "v"+strconv.Itoa(i), "", event.TypePage, ""
		}
		if _, _, err := shard.ApplyLocal(ctx, st, eventlog.StreamEvents, 0, uint64(2*i+1), p, evs); err != nil {
			b.Fatal(err)
		}
		id := []event.Event{{Tenant: "tn_bench", Type: event.TypeIdentify, MessageID: "id" + strconv.Itoa(i),
			AnonymousID: "v" + strconv.Itoa(i), UserID: "u" + strconv.Itoa(i), Timestamp: at, ReceivedAt: at}}
		b.StartTimer()
		outs, _, err := shard.ApplyLocal(ctx, st, eventlog.StreamEvents, 0, uint64(2*i+2), p, id)
		if err != nil || len(outs) != 1 {
			b.Fatal(err, len(outs))
		}
	}
}

// TestStatePerVisitor measures the state one anonymous visitor costs: one
// page view each for CONTRAIL_BENCH_VISITORS visitors (the figure
// uses 1000000). It reports the bytes of the hot record (key and value),
// of the expiry index entry and of the history per visitor, and the dedup
// entry per event. It is a measurement, not a check: skipped unless the
// variable is set.
func TestStatePerVisitor(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("CONTRAIL_BENCH_VISITORS"))
	if err != nil || n <= 0 {
		t.Skip("set CONTRAIL_BENCH_VISITORS to measure")
	}
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = 16, 16
	p, err := New(cfg, 0, NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	const msg = 500
	batch := make([]event.Event, 0, msg)
	tmpl := benchEvents(1, 1, at, 9)[0]
	tmpl.Type, tmpl.Event = event.TypePage, ""
	seq := uint64(0)
	start := time.Now()
	for i := range n {
		e := tmpl
		e.MessageID = "m" + strconv.Itoa(i)
		e.AnonymousID = fmt.Sprintf("%08x-4c1e-4d5b-9f3a-%012x", i, i) // a uuid-sized id
		batch = append(batch, e)
		if len(batch) == msg || i == n-1 {
			seq++
			if _, _, err := shard.ApplyLocal(ctx, st, eventlog.StreamEvents, 0, seq, p, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	took := time.Since(start)
	sizes := map[string]int64{}
	it, err := st.NewIter([]byte("v/0/"), []byte("v/0/\xff"))
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		kind := string(it.Key()[4:5])
		sizes[kind] += int64(len(it.Key()) + len(it.Value()))
	}
	_ = it.Close()
	per := func(kind string) float64 { return float64(sizes[kind]) / float64(n) }
	t.Logf("%d visitors in %s (%.0f events/s): state %.1f B/visitor, expiry index %.1f B/visitor, history %.1f B/visitor, dedup %.1f B/event (keys and values, before compression)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), per("s"), per("x"), per("h"), per("d"))
}
