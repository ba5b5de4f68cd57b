package report

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/cockroachdb/pebble/v2"

	"github.com/contrailhq/contrail/internal/store"
)

// Errors of the queries.
var (
	// ErrUnsupportedFilter: the filter cannot be answered from the rollups.
	ErrUnsupportedFilter = errors.New("unsupported filter")
)

// Querier answers report queries from the rollups of every partition of a
// node's store.
type Querier struct {
	store      *store.Store
	partitions int
	policy     func(tenant string) Policy
}

// NewQuerier returns a querier over partitions 0..partitions-1.
func NewQuerier(s *store.Store, partitions int, policy func(tenant string) Policy) *Querier {
	return &Querier{store: s, partitions: partitions, policy: policy}
}

// Range is the half-open time range [From, To).
type Range struct{ From, To time.Time }

// Filter restricts a report to one value of a dimension.
type Filter struct {
	Dim   Dim
	Value string
}

// Summary is a report's headline numbers. BounceRate and AvgSessionSeconds
// are nil under a filter on a dimension that is not the session's (page,
// event): a session can hold several pages.
type Summary struct {
	Pageviews, Visitors, Sessions, Events, Bots int64
	BounceRate, AvgSessionSeconds               *float64
}

// view is one query's snapshot.
type view struct {
	q      *Querier
	snap   *pebble.Snapshot
	tenant string
	pol    Policy
	marks  []*marks // per partition; nil when the tenant has no rollups there
}

func (q *Querier) open(tenant string) (*view, error) {
	v := &view{q: q, snap: q.store.NewSnapshot(), tenant: tenant, pol: q.policy(tenant)}
	for p := 0; p < q.partitions; p++ {
		b, err := store.Get(v.snap, newKeys(p).marks(tenant))
		if err != nil {
			_ = v.snap.Close()
			return nil, fmt.Errorf("reading rollup marks: %w", err)
		}
		var m *marks
		if len(b) == 16 {
			m = &marks{hourDone: int64(binary.BigEndian.Uint64(b)), dayDone: int64(binary.BigEndian.Uint64(b[8:]))}
		}
		v.marks = append(v.marks, m)
	}
	return v, nil
}

func (v *view) close() { _ = v.snap.Close() }

type span struct {
	res    byte
	lo, hi int64
}

// plan covers [from, to) with the coarsest buckets a partition has: whole
// days already compacted, then whole hours, then minutes.
func plan(from, to int64, m *marks, loc *time.Location) []span {
	var out []span
	rest := [][2]int64{{from, to}}
	d0 := dayStart(from, loc)
	if d0 < from {
		d0 = nextDay(d0, loc)
	}
	end := d0
	for n := nextDay(end, loc); n <= to && n <= m.dayDone; n = nextDay(end, loc) {
		end = n
	}
	if end > d0 {
		out = append(out, span{resDay, d0, end})
		rest = [][2]int64{{from, d0}, {end, to}}
	}
	for _, r := range rest {
		lo, hi := r[0], r[1]
		if lo >= hi {
			continue
		}
		h0 := floorHour(lo + 3599)
		h1 := floorHour(min(hi, m.hourDone))
		if h1 > h0 {
			out = append(out, span{resHour, h0, h1})
			out = append(out, span{resMinute, lo, h0}, span{resMinute, h1, hi})
			continue
		}
		out = append(out, span{resMinute, lo, hi})
	}
	return out
}

// each calls fn with section s of every bucket of the view's tenant in
// [from, to), in all partitions.
func (v *view) each(ctx context.Context, s int, from, to int64, fn func(data []byte) error) error {
	for p, m := range v.marks {
		if m == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		k := newKeys(p)
		for _, sp := range plan(from, to, m, v.pol.loc()) {
			if sp.lo >= sp.hi {
				continue
			}
			it, err := v.snap.NewIter(&pebble.IterOptions{
				LowerBound: k.section(v.tenant, s, sp.res, sp.lo),
				UpperBound: k.section(v.tenant, s, sp.res, sp.hi),
			})
			if err != nil {
				return fmt.Errorf("reading rollups: %w", err)
			}
			for it.First(); it.Valid(); it.Next() {
				if err := fn(it.Value()); err != nil {
					_ = it.Close()
					return err
				}
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("reading rollups: %w", err)
			}
		}
	}
	return nil
}

// row merges the rows of value in section s (or the total) over [from, to).
// With value nil every row of the section is merged.
func (v *view) row(ctx context.Context, s int, value *string, from, to int64) (Row, error) {
	var out Row
	err := v.each(ctx, s, from, to, func(data []byte) error {
		return eachRow(data, func(val []byte, c *Counts, sketch []byte) error {
			if value != nil && string(val) != *value {
				return nil
			}
			return mergeRaw(&out, c, sketch)
		})
	})
	return out, err
}

func mergeRaw(dst *Row, c *Counts, sketch []byte) error {
	dst.Counts.add(c)
	if len(sketch) == 0 {
		return nil
	}
	sk, err := decodeSketch(sketch)
	if err != nil {
		return err
	}
	if dst.Visitors == nil {
		dst.Visitors = sk
		return nil
	}
	return dst.Visitors.Merge(sk)
}

func estimate(s *hyperloglog.Sketch) int64 {
	if s == nil {
		return 0
	}
	return int64(s.Estimate())
}

func secs(t time.Time) int64 { return t.Unix() }

// Summary returns the headline numbers of tenant over r.
func (q *Querier) Summary(ctx context.Context, tenant string, r Range, f *Filter) (Summary, error) {
	v, err := q.open(tenant)
	if err != nil {
		return Summary{}, err
	}
	defer v.close()
	s, value := secTotal, (*string)(nil)
	if f != nil {
		if f.Dim == DimExitPage || f.Dim >= dimGoal {
			return Summary{}, fmt.Errorf("%w: a summary cannot be filtered by %s", ErrUnsupportedFilter, f.Dim)
		}
		s, value = dimSection(f.Dim), &f.Value
	}
	row, err := v.row(ctx, s, value, secs(r.From), secs(r.To))
	if err != nil {
		return Summary{}, err
	}
	out := Summary{
		Pageviews: max(row.Pageviews, 0), Visitors: estimate(row.Visitors), Events: max(row.Events, 0),
		Sessions: max(row.Sessions, 0), Bots: row.Bots,
	}
	if f != nil && !sessionDim(f.Dim) {
		out.Sessions = 0
		return out, nil
	}
	br, avg := 0.0, 0.0
	if out.Sessions > 0 {
		br = float64(min(max(row.Bounces, 0), out.Sessions)) / float64(out.Sessions)
		avg = float64(max(row.DurationMs, 0)) / 1000 / float64(out.Sessions)
	}
	out.BounceRate, out.AvgSessionSeconds = &br, &avg
	return out, nil
}

// Metric is what a time series counts.
type Metric string

// The metrics of a time series.
const (
	MetricPageviews Metric = "pageviews"
	MetricVisitors  Metric = "visitors"
	MetricSessions  Metric = "sessions"
	MetricEvents    Metric = "events"
)

// Interval is a time series' step.
type Interval string

// The steps of a time series.
const (
	IntervalMinute Interval = "minute"
	IntervalHour   Interval = "hour"
	IntervalDay    Interval = "day"
)

// Point is one step of a time series: its start and value.
type Point struct {
	T     time.Time
	Value int64
}

// Steps returns the starts of the steps of interval in r, in loc.
func Steps(r Range, interval Interval, loc *time.Location) []time.Time {
	var out []time.Time
	t := r.From.In(loc)
	switch interval {
	case IntervalMinute:
		t = t.Truncate(time.Minute)
	case IntervalHour:
		t = t.Truncate(time.Hour)
	case IntervalDay:
		y, m, d := t.Date()
		t = time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	for ; t.Before(r.To); t = step(t, interval) {
		out = append(out, t)
	}
	return out
}

func step(t time.Time, interval Interval) time.Time {
	switch interval {
	case IntervalMinute:
		return t.Add(time.Minute)
	case IntervalHour:
		return t.Add(time.Hour)
	default:
		return t.AddDate(0, 0, 1)
	}
}

// Timeseries returns metric over r in steps of interval, in loc; the first
// and last steps are clipped to r.
func (q *Querier) Timeseries(ctx context.Context, tenant string, metric Metric, interval Interval, r Range, loc *time.Location) ([]Point, error) {
	v, err := q.open(tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	steps := Steps(r, interval, loc)
	out := make([]Point, 0, len(steps))
	for _, t := range steps {
		lo, hi := max(secs(t), secs(r.From)), min(secs(step(t, interval)), secs(r.To))
		row, err := v.row(ctx, secTotal, nil, lo, hi)
		if err != nil {
			return nil, err
		}
		var n int64
		switch metric {
		case MetricPageviews:
			n = row.Pageviews
		case MetricVisitors:
			n = estimate(row.Visitors)
		case MetricSessions:
			n = row.Sessions
		case MetricEvents:
			n = row.Events
		default:
			return nil, fmt.Errorf("unknown metric %q", metric)
		}
		out = append(out, Point{T: t, Value: max(n, 0)})
	}
	return out, nil
}

// TopRow is one value of a breakdown. For exit pages, Sessions counts the
// sessions that ended there, and Pageviews and Visitors are the page's.
type TopRow struct {
	Value                                 string
	Pageviews, Visitors, Events, Sessions int64
}

// Top returns the busiest values of dimension d over r: pages by
// pageviews, entry and exit pages by sessions, events by count, the
// session's dimensions by sessions.
func (q *Querier) Top(ctx context.Context, tenant string, d Dim, r Range, f *Filter, limit int) ([]TopRow, error) {
	if d >= dimGoal {
		return nil, fmt.Errorf("unknown dimension %d", d)
	}
	if f != nil && f.Dim != d {
		return nil, fmt.Errorf("%w: a breakdown by %s cannot be filtered by %s (only by one of its own values)", ErrUnsupportedFilter, d, f.Dim)
	}
	v, err := q.open(tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	from, to := secs(r.From), secs(r.To)
	// First pass: counts only, to rank; sketches only for the winners.
	counts := map[string]*Counts{}
	err = v.each(ctx, dimSection(d), from, to, func(data []byte) error {
		return eachRow(data, func(val []byte, c *Counts, _ []byte) error {
			if f != nil && string(val) != f.Value {
				return nil
			}
			agg, ok := counts[string(val)]
			if !ok {
				agg = &Counts{}
				counts[string(val)] = agg
			}
			agg.add(c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	rank := func(c *Counts) [2]int64 {
		switch d {
		case DimPage:
			return [2]int64{c.Pageviews, c.Events}
		case DimEvent:
			return [2]int64{c.Events, 0}
		default:
			return [2]int64{c.Sessions, c.Pageviews}
		}
	}
	vals := make([]string, 0, len(counts))
	for val, c := range counts {
		if rank(c) != ([2]int64{}) {
			vals = append(vals, val)
		}
	}
	sort.Slice(vals, func(i, j int) bool {
		ri, rj := rank(counts[vals[i]]), rank(counts[vals[j]])
		if ri != rj {
			return ri[0] > rj[0] || ri[0] == rj[0] && ri[1] > rj[1]
		}
		return vals[i] < vals[j]
	})
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
	}
	want := make(map[string]*Row, len(vals))
	for _, val := range vals {
		want[val] = &Row{}
	}
	sketchDim := d
	if d == DimExitPage {
		sketchDim = DimPage // an exit page's pageviews and visitors are the page's
	}
	err = v.each(ctx, dimSection(sketchDim), from, to, func(data []byte) error {
		return eachRow(data, func(val []byte, c *Counts, sketch []byte) error {
			if row, ok := want[string(val)]; ok {
				return mergeRaw(row, c, sketch)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]TopRow, 0, len(vals))
	for _, val := range vals {
		c, row := counts[val], want[val]
		tr := TopRow{Value: val, Pageviews: max(c.Pageviews, 0), Visitors: estimate(row.Visitors),
			Events: max(c.Events, 0), Sessions: max(c.Sessions, 0)}
		if d == DimExitPage {
			tr.Pageviews = max(row.Pageviews, 0)
		}
		out = append(out, tr)
	}
	return out, nil
}

// GoalRow is one goal's conversions over a range: how many events
// converted, how many unique visitors did, and the share of all visitors.
type GoalRow struct {
	Goal                  string
	Conversions, Visitors int64
	Rate                  float64
}

// Goals returns the conversions of the named goals over r, in order.
func (q *Querier) Goals(ctx context.Context, tenant string, goals []string, r Range) ([]GoalRow, error) {
	v, err := q.open(tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	from, to := secs(r.From), secs(r.To)
	total, err := v.row(ctx, secTotal, nil, from, to)
	if err != nil {
		return nil, err
	}
	rows := make(map[string]*Row, len(goals))
	for _, g := range goals {
		rows[g] = &Row{}
	}
	err = v.each(ctx, dimSection(dimGoal), from, to, func(data []byte) error {
		return eachRow(data, func(val []byte, c *Counts, sketch []byte) error {
			if row, ok := rows[string(val)]; ok {
				return mergeRaw(row, c, sketch)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	all := estimate(total.Visitors)
	out := make([]GoalRow, 0, len(goals))
	for _, g := range goals {
		row := rows[g]
		gr := GoalRow{Goal: g, Conversions: row.Events, Visitors: estimate(row.Visitors)}
		if all > 0 {
			// Two sketches' estimates: the part must not exceed the whole.
			gr.Visitors = min(gr.Visitors, all)
			gr.Rate = float64(gr.Visitors) / float64(all)
		}
		out = append(out, gr)
	}
	return out, nil
}
