package lead_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
)

// benchActivities makes n events of known leads as a visitor shard hands
// them on: 75% pages, 25% tracked events (a tenth of those link clicks),
// with their enrichment, for leads drawn uniformly from ids.
func benchActivities(n int, ids []string, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]event.Event, n)
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := range out {
		id := ids[r.IntN(len(ids))]
		at := start.Add(time.Duration(i) * time.Millisecond)
		e := event.Event{
			Tenant: testTenant, MessageID: "m" + strconv.Itoa(i), AnonymousID: "dev-" + id[3:12], UserID: "",
			Timestamp: at, ReceivedAt: at,
		}
		x := &e.Enrichment
		x.LeadID, x.SessionID, x.Browser, x.OS, x.Device = id, "ses-"+id[3:10], "Chrome", "Windows", "desktop"
		x.Channel, x.ReferrerDomain, x.UTMSource, x.UTMCampaign = "search", "www.google.com", "google", "spring"
		switch k := r.IntN(100); {
		case k < 75:
			e.Type = event.TypePage
			x.Path = fmt.Sprintf("/docs/%d", r.IntN(50))
			e.Properties = []byte(`{"path":"` + x.Path + `","url":"https://www.example.com` + x.Path + `","title":"Docs","referrer":"https://www.google.com/"}`)
		case k < 78:
			e.Type, e.Event = event.TypeTrack, "Link Clicked"
			e.Properties = []byte(`{"href":"https://www.example.com/pricing","text":"Pricing"}`)
		default:
			e.Type, e.Event = event.TypeTrack, "Clicked CTA"
			e.Properties = []byte(`{"plan":"pro","price":49}`)
		}
		out[i] = e
	}
	return out
}

func benchLeadIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = event.LeadID(testTenant, "bench-"+strconv.Itoa(i))
	}
	return ids
}

// BenchmarkApplyActivity is the lead shard's cost per activity of a known
// lead: messages of 16 events over 1000 existing leads, committed to
// Pebble with shard.ApplyLocal as a shard commits them. b.N counts events.
func BenchmarkApplyActivity(b *testing.B) {
	const perMessage = 16
	s := newLeadShard(b)
	ids := benchLeadIDs(1000)
	// Every lead exists first: the benchmark measures appends, not creation.
	warm := benchActivities(len(ids), ids, 1)
	for i := range warm {
		warm[i].Enrichment.LeadID = ids[i]
	}
	for i := 0; i < len(warm); i += 100 {
		s.apply(warm[i:min(i+100, len(warm))])
	}
	pool := benchActivities(1<<14, ids, 2)
	base := warm[len(warm)-1].Timestamp
	msg := make([]event.Event, 0, perMessage)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := pool[i%len(pool)]
		e.Timestamp = base.Add(time.Duration(i+1) * time.Millisecond)
		e.ReceivedAt = e.Timestamp
		msg = append(msg, e)
		if len(msg) == perMessage || i == b.N-1 {
			for _, err := range s.apply(msg) {
				if err != nil {
					b.Fatal(err)
				}
			}
			msg = msg[:0]
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/activity")
}

// BenchmarkTimelineRead100 reads the newest 100 activities of a lead with
// 10,000 stored: all types, a common type (track, a quarter of them), and
// a type the lead has none of (the read then scans the whole timeline).
func BenchmarkTimelineRead100(b *testing.B) {
	s := newLeadShard(b)
	id := event.LeadID(testTenant, "bench-reader")
	events := benchActivities(10000-1, []string{id}, 3) // plus create_lead
	for i := 0; i < len(events); i += 500 {
		s.apply(events[i:min(i+500, len(events))])
	}
	rd := lead.NewReader(s.st, 1)
	ctx := context.Background()
	l, err := rd.Get(ctx, testTenant, id)
	if err != nil || l.Activities != 10000 {
		b.Fatalf("lead of %d activities: %v", l.Activities, err)
	}
	for _, bc := range []struct {
		name  string
		types []string
		want  int
	}{
		{"all", nil, 100},
		{"type=track", []string{lead.ActTrack}, 100},
		{"type=fill_form", []string{lead.ActFillForm}, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, _, err := rd.Activities(ctx, testTenant, id, lead.ActivityQuery{Limit: 100, Types: bc.types})
				if err != nil || len(page) != bc.want {
					b.Fatalf("%d activities, want %d: %v", len(page), bc.want, err)
				}
			}
		})
	}
}
