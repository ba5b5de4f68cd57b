package report

import (
	"context"
	"fmt"
	"sort"
)

// TopRow is one value of a breakdown. For exit pages, Sessions counts the
// sessions that ended there, and Pageviews and Visitors are the page's.
type TopRow struct {
	Value                                 string
	Pageviews, Visitors, Events, Sessions int64
}

// topPart is one partition's first pass of a breakdown: the counts per
// value, and for every record read, which value each of its rows holds,
// so that the second pass fetches the winners' sketches by row.
type topPart struct {
	tally
	rows [][]int32 // per record, per row: the value's index, or -1
}

// tally is values and their counts, in the order first seen.
type tally struct {
	index  map[string]int32
	vals   []string
	counts []Counts
}

// add counts c for val and returns val's index.
func (t *tally) add(val []byte, c *Counts) int32 {
	i, ok := t.index[string(val)]
	if !ok {
		i = int32(len(t.vals))
		v := string(val)
		t.index[v] = i
		t.vals = append(t.vals, v)
		t.counts = append(t.counts, Counts{})
	}
	t.counts[i].add(c)
	return i
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
	v, err := q.open(ctx, tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	var out []TopRow
	from, to := secs(r.From), secs(r.To)
	err = v.withShared(ctx, dimSection(d), from, to, func(sh *shared) error {
		var err error
		out, err = v.top(ctx, sh, d, from, to, f, limit)
		return err
	})
	return out, err
}

func (v *view) top(ctx context.Context, sh *shared, d Dim, from, to int64, f *Filter, limit int) ([]TopRow, error) {
	sec := dimSection(d)
	// First pass: counts only, to rank.
	parts := make([]topPart, len(v.marks))
	err := v.parallel(ctx, func(_, p int) error {
		t := &parts[p]
		t.index = map[string]int32{}
		return v.eachRecord(p, sec, from, to, false, sh, func(counts []byte, _ sketches) error {
			var rows []int32
			err := eachRow(counts, func(_ int, val []byte, c *Counts) error {
				if f != nil && string(val) != f.Value {
					rows = append(rows, -1)
					return nil
				}
				rows = append(rows, t.add(val, c))
				return nil
			})
			t.rows = append(t.rows, rows)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	counts := map[string]*Counts{}
	total := func(val string) *Counts {
		c, ok := counts[val]
		if !ok {
			c = &Counts{}
			counts[val] = c
		}
		return c
	}
	if sh != nil {
		for _, m := range sh.list {
			for i, val := range m.vals {
				if f == nil || val == f.Value {
					total(val).add(&m.counts[i])
				}
			}
		}
	}
	for p := range parts {
		for i, val := range parts[p].vals {
			total(val).add(&parts[p].counts[i])
		}
	}
	vals := rank(d, counts, limit)

	// Second pass: the winners' sketches.
	var rows []result
	if d == DimExitPage {
		// An exit page's pageviews and visitors are the page's.
		if rows, err = v.byValue(ctx, dimSection(DimPage), vals, from, to); err != nil {
			return nil, err
		}
	} else if rows, err = v.winners(ctx, sh, sec, parts, vals, from, to); err != nil {
		return nil, err
	}
	out := make([]TopRow, 0, len(vals))
	for w, val := range vals {
		c := counts[val]
		tr := TopRow{Value: val, Pageviews: max(c.Pageviews, 0), Visitors: rows[w].uniques(),
			Events: max(c.Events, 0), Sessions: max(c.Sessions, 0)}
		if d == DimExitPage {
			tr.Pageviews = max(rows[w].Pageviews, 0)
		}
		out = append(out, tr)
	}
	return out, nil
}

// rank orders the values of d by its measure and keeps the first limit
// (all if limit is 0); values with nothing to rank by are left out.
func rank(d Dim, counts map[string]*Counts, limit int) []string {
	key := func(c *Counts) [2]int64 {
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
		if key(c) != ([2]int64{}) {
			vals = append(vals, val)
		}
	}
	sort.Slice(vals, func(i, j int) bool {
		ri, rj := key(counts[vals[i]]), key(counts[vals[j]])
		if ri != rj {
			return ri[0] > rj[0] || ri[0] == rj[0] && ri[1] > rj[1]
		}
		return vals[i] < vals[j]
	})
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
	}
	return vals
}

// winners reads the sketches of vals from section s, by the rows the first
// pass (parts) found them in; the records are read in the same order, and
// the shared buckets' by the rows they were merged from.
func (v *view) winners(ctx context.Context, sh *shared, s int, parts []topPart, vals []string, from, to int64) ([]result, error) {
	out := make([][]result, v.workers())
	err := v.parallel(ctx, func(w, p int) error {
		t := &parts[p]
		want := make([]int32, len(t.vals)) // value index → winner, or -1
		for i := range want {
			want[i] = -1
		}
		found := false
		for win, val := range vals {
			if i, ok := t.index[val]; ok {
				want[i], found = int32(win), true
			}
		}
		if out[w] == nil {
			out[w] = make([]result, len(vals))
		}
		rows := out[w]
		if !found {
			return nil
		}
		rec := 0
		return v.eachRecord(p, s, from, to, true, sh, func(_ []byte, sks sketches) error {
			if rec >= len(t.rows) {
				return fmt.Errorf("reading rollups: %w", errSection)
			}
			for i, vi := range t.rows[rec] {
				if vi < 0 || want[vi] < 0 {
					continue
				}
				b, err := sks.at(i)
				if err != nil {
					return err
				}
				if err := rows[want[vi]].add(&Counts{}, b); err != nil {
					return err
				}
			}
			rec++
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	res := mergeWinners(out, len(vals))
	return res, v.sharedVisitors(ctx, sh, s, vals, res)
}

// byValue merges the rows of the given values in section s, counts and
// sketches, finding them by value.
func (v *view) byValue(ctx context.Context, s int, vals []string, from, to int64) ([]result, error) {
	var out []result
	err := v.withShared(ctx, s, from, to, func(sh *shared) error {
		var err error
		out, err = v.byValueShared(ctx, sh, s, vals, from, to)
		return err
	})
	return out, err
}

func (v *view) byValueShared(ctx context.Context, sh *shared, s int, vals []string, from, to int64) ([]result, error) {
	index := make(map[string]int, len(vals))
	for i, val := range vals {
		index[val] = i
	}
	out := make([][]result, v.workers())
	err := v.parallel(ctx, func(w, p int) error {
		if out[w] == nil {
			out[w] = make([]result, len(vals))
		}
		rows := out[w]
		return v.eachRecord(p, s, from, to, true, sh, func(counts []byte, sks sketches) error {
			return eachRow(counts, func(i int, val []byte, c *Counts) error {
				win, ok := index[string(val)]
				if !ok {
					return nil
				}
				b, err := sks.at(i)
				if err != nil {
					return err
				}
				return rows[win].add(c, b)
			})
		})
	})
	if err != nil {
		return nil, err
	}
	res := mergeWinners(out, len(vals))
	for i, val := range vals {
		var c Counts
		sh.countsOf(val, &c)
		res[i].add(&c, nil)
	}
	return res, v.sharedVisitors(ctx, sh, s, vals, res)
}

// mergeWinners adds up the workers' rows of n values.
func mergeWinners(parts [][]result, n int) []result {
	rows := make([]result, n)
	for w := range rows {
		for _, p := range parts {
			if p != nil {
				rows[w].merge(&p[w])
			}
		}
	}
	return rows
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
	v, err := q.open(ctx, tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	from, to := secs(r.From), secs(r.To)
	total, err := v.row(ctx, secTotal, nil, from, to)
	if err != nil {
		return nil, err
	}
	rows, err := v.byValue(ctx, dimSection(dimGoal), goals, from, to)
	if err != nil {
		return nil, err
	}
	all := total.uniques()
	out := make([]GoalRow, 0, len(goals))
	for i, g := range goals {
		row := rows[i]
		gr := GoalRow{Goal: g, Conversions: row.Events, Visitors: row.uniques()}
		if all > 0 {
			// Two sketches' estimates: the part must not exceed the whole.
			gr.Visitors = min(gr.Visitors, all)
			gr.Rate = float64(gr.Visitors) / float64(all)
		}
		out = append(out, gr)
	}
	return out, nil
}
