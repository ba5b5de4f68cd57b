package report

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/contrailhq/contrail/internal/store"
)

// Synthetic describes the rollups of a synthetic tenant, written as
// compaction leaves them, so that a benchmark or a capacity test reads
// what a report of a tenant that size reads without processing its events.
// Days are UTC days, as DefaultPolicy's; rows beyond DefaultPolicy's row
// limit are folded into Other, as compaction does.
//
// The counts follow a simple model: each value's counts are drawn from a
// long tail (the i-th value of a dimension has 1 to 50000/(i+1) page views
// a partition-day), and each row's sketch holds up to 200 random visitors.
// The numbers are plausible, not consistent: the rows do not add up to
// the total, and an hour's buckets do not add up to its day's.
//
// Not written, as no query reads them: the minute buckets of compacted
// hours, the hours before the last HourDays days, and the hit log (the
// last few seconds of hits, not folded yet).
type Synthetic struct {
	// Tenant is the tenant's id.
	Tenant string
	// Partitions is how many partitions hold the tenant's rollups:
	// 0 to Partitions-1, every one alike.
	Partitions int
	// End is the tenant's now. The Days whole days before End's day are
	// compacted day buckets. The part of End's day before End's hour is
	// hour buckets, and the rest minute buckets of one record per fold of
	// the hit log (one every 5 seconds), as they are before the hour is
	// compacted (the minutes that settled are one record each). With End
	// at a midnight there is no such part.
	End time.Time
	// Days is how many whole days the rollups hold.
	Days int
	// Events is the number of events of the whole days, spread evenly
	// over days and partitions: 70% page views and 30% other events, a
	// session per 5 events. End's day has the same rate.
	Events int64
	// Visitors is how many visitors are drawn per partition and day.
	Visitors int
	// Pages, Referrers, EntryPages and Countries are how many values
	// those dimensions have per partition and day.
	Pages, Referrers, EntryPages, Countries int
	// AllDims gives every other dimension values too, from 3 devices to
	// 40 UTM campaigns (and the exit pages EntryPages values), and the
	// total bounces, session time and bots. The days' rows of the
	// dimensions above are the same whether it is set or not.
	AllDims bool
	// Goals names goals whose conversions are counted; a report shows
	// them when the tenant's settings name them too.
	Goals []string
	// Weeks writes the buckets compaction makes of the days' whole weeks,
	// and marks those weeks compacted; without it no week is.
	Weeks bool
	// HourDays is how many of the last whole days keep their hour buckets
	// too, as hours are kept 90 days by default: a time series in hours,
	// or a range that starts within a day, reads them.
	HourDays int
	// Seed seeds the random source: the same description writes the same
	// rollups.
	Seed uint64
}

// SyntheticStats is what Synthesize wrote.
type SyntheticStats struct {
	// Events is how many events the rollups count.
	Events int64
	// Bytes is the size of the records written, values only, before
	// Pebble's compression.
	Bytes int64
}

// synthFolds is how many records a minute bucket of today's last hour
// has: under steady traffic the hit log folds every foldAfter seconds.
const synthFolds = 60 / foldAfter

// Synthesize writes the rollups s describes into st, one batch per
// partition, with the tenant's compaction marks (replacing any) and its
// entry in each partition's list of tenants, as a shard leaves them.
func Synthesize(st *store.Store, s Synthetic) (SyntheticStats, error) {
	if err := s.validate(); err != nil {
		return SyntheticStats{}, err
	}
	g := &synth{
		s:      s,
		perDay: s.Events / int64(s.Days) / int64(s.Partitions),
		// The days' base rows draw from rng alone, in the order the
		// fixture of BenchmarkQuery30Days always drew them, so that its
		// numbers stay comparable; everything else draws from more.
		rng:  rand.New(rand.NewPCG(s.Seed, s.Seed+1)),
		more: rand.New(rand.NewPCG(^s.Seed, s.Seed)),
	}
	loc := time.UTC
	today := dayStart(s.End.Unix(), loc)
	start := today
	for range s.Days {
		start = dayStart(start-1, loc)
	}
	nowHour := floorHour(s.End.Unix())
	m := marks{hourDone: nowHour, dayDone: today, weekDone: start}
	if s.Weeks {
		m.weekDone = weekStart(today, loc)
	}
	var out SyntheticStats
	for p := range s.Partitions {
		if err := g.writePartition(st, p, start, today, nowHour, &m, &out); err != nil {
			return out, fmt.Errorf("writing synthetic rollups of %s in partition %d: %w", s.Tenant, p, err)
		}
	}
	return out, nil
}

// writePartition writes partition p's buckets and marks in one batch.
func (g *synth) writePartition(st *store.Store, p int, start, today, nowHour int64, m *marks, out *SyntheticStats) error {
	k, tenant := newKeys(p), g.s.Tenant
	batch := st.NewBatch()
	defer func() { _ = batch.Close() }()
	put := func(res byte, at int64, seq uint64, bk *Bucket, all bool) error {
		for sec := range numSecs {
			if !all && sec != secTotal && len(bk.Dims[sec-1]) == 0 {
				continue // a fold writes only the sections it changed
			}
			counts, sks, err := bk.appendSection(sec)
			if err != nil {
				return fmt.Errorf("encoding a bucket: %w", err)
			}
			out.Bytes += int64(len(counts) + len(sks))
			if err := errors.Join(
				batch.Set(k.record(tenant, sec, res, at, seq), counts, nil),
				batch.Set(k.sketchRecord(tenant, sec, res, at, seq), sks, nil),
			); err != nil {
				return fmt.Errorf("adding a bucket to the batch: %w", err)
			}
		}
		return nil
	}
	events, err := g.partition(start, today, nowHour, put)
	if err != nil {
		return err
	}
	out.Events += events
	if err := errors.Join(batch.Set(k.marks(tenant), m.encode(), nil), batch.Set(k.tenant(tenant), nil, nil)); err != nil {
		return fmt.Errorf("adding the marks to the batch: %w", err)
	}
	return st.Commit(batch)
}

func (s *Synthetic) validate() error {
	switch {
	case s.Tenant == "":
		return errors.New("a synthetic tenant needs an id")
	case s.Partitions <= 0 || s.Days <= 0:
		return fmt.Errorf("synthetic tenant %s: partitions and days must be positive", s.Tenant)
	case s.Events < 0 || s.Visitors < 0 || s.Pages < 0 || s.Referrers < 0 || s.EntryPages < 0 || s.Countries < 0:
		return fmt.Errorf("synthetic tenant %s: counts must not be negative", s.Tenant)
	case s.HourDays < 0 || s.HourDays > s.Days:
		return fmt.Errorf("synthetic tenant %s: hour days must be from 0 to days (%d)", s.Tenant, s.Days)
	}
	return nil
}

// synth draws a synthetic tenant's buckets.
type synth struct {
	s         Synthetic
	perDay    int64 // events per partition-day
	rng, more *rand.Rand
}

// putFunc writes bucket bk as record seq of the bucket of resolution res
// starting at at: every section if all, else those with rows.
type putFunc func(res byte, at int64, seq uint64, bk *Bucket, all bool) error

// partition writes one partition's buckets with put: the days from start
// to today, their weeks, the hours of the last HourDays days, and today
// up to the end. It returns the number of events they count.
func (g *synth) partition(start, today, nowHour int64, put putFunc) (int64, error) {
	var total int64
	s, loc, limit := &g.s, time.UTC, DefaultPolicy().RowLimit
	days := map[int64]*Bucket{}
	for d := start; d < today; d = nextDay(d, loc) {
		bk, events, err := g.bucket(g.rng, 1, limit)
		if err != nil {
			return 0, err
		}
		total += events
		days[d] = bk
		if err := put(resDay, d, 0, bk, true); err != nil {
			return 0, err
		}
	}
	if s.Weeks {
		// The weeks wholly inside the days, merged as compaction does.
		for w := nextWeek(weekStart(start-1, loc), loc); nextWeek(w, loc) <= today; w = nextWeek(w, loc) {
			wk := &Bucket{}
			for d := w; d < nextWeek(w, loc); d = nextDay(d, loc) {
				if err := wk.merge(days[d]); err != nil {
					return 0, fmt.Errorf("merging a week: %w", err)
				}
			}
			if err := wk.limitRows(limit); err != nil {
				return 0, err
			}
			if err := put(resWeek, w, 0, wk, true); err != nil {
				return 0, err
			}
		}
	}
	// The hours of the last whole days (counted in their days already),
	// then today's.
	from := today
	for range s.HourDays {
		from = dayStart(from-1, loc)
	}
	for h := from; h < nowHour; h += 3600 {
		bk, events, err := g.bucket(g.more, 24, limit)
		if err != nil {
			return 0, err
		}
		if h >= today {
			total += events
		}
		if err := put(resHour, h, 0, bk, true); err != nil {
			return 0, err
		}
	}
	// Today's last hour: minutes that settled are one record, the last
	// ones a record per fold.
	end, seq := g.s.End.Unix(), uint64(0)
	for m := nowHour; m < end; m += 60 {
		if m+60+minuteSettle <= end {
			bk, events, err := g.bucket(g.more, 24*60, 0)
			if err != nil {
				return 0, err
			}
			total += events
			if err := put(resMinute, m, 0, bk, true); err != nil {
				return 0, err
			}
			continue
		}
		for f := int64(0); f < synthFolds && m+f*foldAfter < end; f++ {
			bk, events, err := g.bucket(g.more, 24*60*synthFolds, 0)
			if err != nil {
				return 0, err
			}
			total += events
			seq++
			if err := put(resMinute, m, seq, bk, false); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// bucket draws a day's bucket (div 1), or an hour's (24) or a fold's
// share of one: every count divided by div; and the events it counts.
// rng draws the totals and the base dimensions; with div 1 it draws from
// rng exactly what the original fixture of BenchmarkQuery30Days drew.
// Rows beyond limit (if not 0) are folded into Other.
func (g *synth) bucket(rng *rand.Rand, div int64, limit int) (*Bucket, int64, error) {
	s := &g.s
	bk := &Bucket{}
	for range g.scale(rng, int64(s.Visitors), div) {
		bk.Total.addVisitor(rng.Uint64())
	}
	per := g.perDay / div
	bk.Total.Pageviews, bk.Total.Events, bk.Total.Sessions = per*7/10, per*3/10, per/5
	if s.AllDims {
		bk.Total.Bounces, bk.Total.DurationMs, bk.Total.Bots = bk.Total.Sessions*45/100, bk.Total.Sessions*95_000, per/50
	}
	prefixed := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s%d", prefix, i) }
	}
	g.rows(rng, bk, DimPage, s.Pages, prefixed("/page/"), div)
	g.rows(rng, bk, DimReferrer, s.Referrers, prefixed("site"), div)
	g.rows(rng, bk, DimEntryPage, s.EntryPages, prefixed("/page/"), div)
	g.rows(rng, bk, DimCountry, s.Countries, prefixed("C"), div)
	if s.AllDims {
		for _, d := range synthDims() {
			name := prefixed(d.prefix)
			if d.values != nil {
				name = func(i int) string { return d.values[i] }
			}
			n := d.n
			if n == 0 {
				n = len(d.values)
			}
			if d.dim == DimExitPage {
				n = s.EntryPages
			}
			g.rows(g.more, bk, d.dim, n, name, div)
		}
	}
	g.rows(g.more, bk, dimGoal, len(s.Goals), func(i int) string { return s.Goals[i] }, div)
	if limit > 0 {
		if err := bk.limitRows(limit); err != nil {
			return nil, 0, err
		}
	}
	return bk, per, nil
}

// rows draws n rows of dimension d, the i-th named name(i), with a
// weight of 1 to 50000/(i+1) divided by div (the row is left out if that
// makes it 0): page views and a third as many sessions; for events, events;
// for goals, conversions, a twentieth; for exit pages, exits, a third and
// no visitors (an exit page's are its page's). A row has as many visitors
// as its page views or conversions, at most 200.
func (g *synth) rows(rng *rand.Rand, bk *Bucket, d Dim, n int, name func(int) string, div int64) {
	for i := range n {
		v := g.scale(rng, int64(1+rng.IntN(50000/(i+1)+1)), div)
		if v == 0 {
			continue
		}
		row := bk.row(d, name(i))
		visitors := v
		switch d {
		case DimEvent:
			row.Events = v
		case dimGoal:
			row.Events = max(v/20, 1)
			visitors = row.Events
		case DimExitPage:
			row.Sessions, visitors = max(v/3, 1), 0
		case DimDevice, DimBrowser, DimOS:
			row.Pageviews, row.Events, row.Sessions = v, v*3/7, v/3
		default:
			row.Pageviews, row.Sessions = v, v/3
		}
		for range min(visitors, 200) {
			row.addVisitor(rng.Uint64())
		}
	}
}

// scale divides n by div, rounding at random so that the sum over many
// buckets is about right and a long tail keeps some of its rows. With
// div 1 it draws nothing.
func (g *synth) scale(rng *rand.Rand, n, div int64) int64 {
	if div == 1 {
		return n
	}
	q := n / div
	if rng.Int64N(div) < n%div {
		q++
	}
	return q
}

// synthDim is a dimension AllDims fills: its values, or n values named
// prefix and a number.
type synthDim struct {
	dim    Dim
	values []string
	prefix string
	n      int
}

func synthDims() []synthDim {
	return []synthDim{
		{dim: DimExitPage, prefix: "/page/"},
		{dim: DimChannel, values: []string{"Direct", "Organic Search", "Referral", "Organic Social", "Email", "Paid Search", "Display", "Affiliates"}},
		{dim: DimUTMSource, prefix: "source-", n: 20},
		{dim: DimUTMMedium, values: []string{"cpc", "email", "social", "referral", "display", "affiliate"}},
		{dim: DimUTMCampaign, prefix: "campaign-", n: 40},
		{dim: DimDevice, values: []string{"desktop", "mobile", "tablet"}},
		{dim: DimBrowser, values: []string{"Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera", "Brave", "Vivaldi", "UC Browser", "Yandex"}},
		{dim: DimOS, values: []string{"Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS", "iPadOS", "Ubuntu"}},
		{dim: DimEvent, prefix: "event-", n: 25},
	}
}
