package report

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sync/errgroup"

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
	cache      *bucketCache
	hits       hitCache
	seed       maphash.Seed // of recordSum
	// cores holds a token for each goroutine reading for a query, across
	// all the node's queries: reports are read on at most cap(cores)
	// cores at once (Limit), and the rest stay for the shards and the
	// collector.
	cores chan struct{}
}

// NewQuerier returns a querier over partitions 0..partitions-1, with a
// cache of merged buckets of at most cacheBytes (none if 0; see cache.go).
// Queries read on every core; Limit bounds them.
func NewQuerier(s *store.Store, partitions int, policy func(tenant string) Policy, cacheBytes int64) *Querier {
	return &Querier{store: s, partitions: partitions, policy: policy, cache: newBucketCache(cacheBytes), seed: maphash.MakeSeed(),
		cores: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// Limit lets all the node's report queries together read on at most
// cores goroutines at once (at least 1). Call it before the first query.
func (q *Querier) Limit(cores int) { q.cores = make(chan struct{}, max(cores, 1)) }

// onCore runs fn once it holds one of the querier's cores. Only work that
// starts no other such work runs under it (no holding while waiting).
func (q *Querier) onCore(ctx context.Context, fn func() error) error {
	select {
	case q.cores <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-q.cores }()
	if err := ctx.Err(); err != nil {
		return err // both were ready
	}
	return fn()
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
	// hits holds, per partition, the hits not yet folded into buckets, per
	// hit-log record (shared with other queries: read only).
	hits [][][]Hit
	// pending holds, per partition, the sections its hits make, by range
	// and section, built on first use (a breakdown reads its section
	// twice). A partition's map is used only by the goroutine reading the
	// partition.
	pending []map[pendingKey][2][]byte
}

type pendingKey struct {
	from, to int64
	s        int
}

func (q *Querier) open(ctx context.Context, tenant string) (*view, error) {
	v := &view{q: q, snap: q.store.NewSnapshot(), tenant: tenant, pol: q.policy(tenant),
		marks: make([]*marks, q.partitions), hits: make([][][]Hit, q.partitions),
		pending: make([]map[pendingKey][2][]byte, q.partitions)}
	// The partitions' marks and unfolded hits, read on every core: decoding
	// a live tenant's hit logs is much of a short report's time.
	err := v.parallel(ctx, func(_, p int) error {
		b, err := store.Get(v.snap, newKeys(p).marks(tenant))
		if err != nil {
			return fmt.Errorf("reading rollup marks: %w", err)
		}
		m := decodeMarks(b)
		v.marks[p] = m
		from := uint64(0)
		if m != nil {
			from = m.hitFrom
		}
		v.hits[p], err = v.readHits(p, from)
		return err
	})
	if err != nil {
		_ = v.snap.Close()
		return nil, err
	}
	return v, nil
}

// readHits returns the records of partition p's hit log from seq from on,
// decoded: those decoded by an earlier query from q's cache (a record is
// written once, as one log message's hits, and only ever deleted), the
// others now. The partition's entry in the cache is replaced by what the
// log holds now.
func (v *view) readHits(p int, from uint64) ([][]Hit, error) {
	ck := hitKey{v.tenant, p}
	known := v.q.hits.get(ck)
	next := make(map[string][]Hit, len(known))
	var out [][]Hit
	var err error
	k := newKeys(p)
	serr := v.scan(k.hitRecord(v.tenant, from), k.hitLogEnd(v.tenant), func(key, val []byte) bool {
		hits, ok := known[string(key)]
		if !ok {
			var b []byte
			if _, _, b, err = hitRecordHeader(val); err != nil {
				return false
			}
			// The hits' strings point into the record's copy.
			err = decodeHits(bytes.Clone(b), func(h *Hit) {
				c := *h
				c.Goals = slices.Clone(h.Goals)
				hits = append(hits, c)
			})
			if err != nil {
				return false
			}
		}
		next[string(key)] = hits
		out = append(out, hits)
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("reading the rollup hit log of %s: %w", v.tenant, err)
	}
	v.q.hits.put(ck, next)
	return out, nil
}

// hitKey names a tenant's hit log in a partition.
type hitKey struct {
	tenant string
	p      int
}

// hitCache holds the decoded records of the hit logs that queries read
// last, per tenant and partition. Its maps are never changed once stored.
type hitCache struct {
	mu   sync.Mutex
	logs map[hitKey]map[string][]Hit
}

// maxHitLogs bounds the hit logs the cache holds; past it, it starts over.
const maxHitLogs = 4096

func (c *hitCache) get(k hitKey) map[string][]Hit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs[k]
}

func (c *hitCache) put(k hitKey, recs map[string][]Hit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logs == nil || len(c.logs) >= maxHitLogs {
		c.logs = map[hitKey]map[string][]Hit{}
	}
	if len(recs) == 0 {
		delete(c.logs, k)
		return
	}
	c.logs[k] = recs
}

// pendingSection encodes section s of the bucket that partition p's
// unfolded hits in [from, to) make; nil if there are none.
func (v *view) pendingSection(p, s int, from, to int64) (counts []byte, sks sketches, err error) {
	if len(v.hits[p]) == 0 {
		return nil, nil, nil
	}
	if v.pending[p] == nil {
		v.pending[p] = map[pendingKey][2][]byte{}
	}
	key := pendingKey{from, to, s}
	if enc, ok := v.pending[p][key]; ok {
		return enc[0], enc[1], nil
	}
	var b *Bucket
	for _, rec := range v.hits[p] {
		for i := range rec {
			h := &rec[i]
			if h.Time < from || h.Time >= to {
				continue
			}
			if b == nil {
				b = &Bucket{}
			}
			b.addSections(h, 1<<s) // only the section read
		}
	}
	if b != nil {
		if counts, sks, err = b.appendSection(s); err != nil {
			return nil, nil, err
		}
	}
	v.pending[p][key] = [2][]byte{counts, sks}
	return counts, sks, nil
}

func (v *view) close() { _ = v.snap.Close() }

// workers is how many goroutines a query reads partitions on: as many as
// the querier's cores, or partitions if fewer.
func (v *view) workers() int { return max(1, min(cap(v.q.cores), len(v.marks))) }

// parallel runs fn for every partition p on v.workers() goroutines, worker
// w reading partitions w, w+workers, ... in turn, so that fn can merge into
// one result per worker rather than one per partition.
func (v *view) parallel(ctx context.Context, fn func(w, p int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	n := v.workers()
	for w := range n {
		g.Go(func() error {
			for p := w; p < len(v.marks); p += n {
				if err := v.q.onCore(ctx, func() error { return fn(w, p) }); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// scan calls fn with the keys of [lo, hi) in the snapshot.
func (v *view) scan(lo, hi []byte, fn func(k, val []byte) bool) error {
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("reading rollups: %w", err)
	}
	for it.First(); it.Valid() && fn(it.Key(), it.Value()); it.Next() {
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading rollups: %w", err)
	}
	return nil
}

type span struct {
	res    byte
	lo, hi int64
}

// plan covers [from, to) with the coarsest buckets a partition has: whole
// weeks already compacted, then whole days, then whole hours, then minutes.
func plan(from, to int64, m *marks, loc *time.Location) []span {
	return planLevels(from, to, []level{
		{resWeek, func(s int64) int64 { return weekStart(s, loc) }, func(s int64) int64 { return nextWeek(s, loc) }, m.weekDone},
		{resDay, func(s int64) int64 { return dayStart(s, loc) }, func(s int64) int64 { return nextDay(s, loc) }, m.dayDone},
		{resHour, floorHour, func(s int64) int64 { return s + 3600 }, m.hourDone},
	})
}

// level is a resolution of compacted buckets: how its buckets start and
// end, and where compaction is.
type level struct {
	res         byte
	floor, next func(int64) int64
	done        int64
}

func planLevels(from, to int64, levels []level) []span {
	if from >= to {
		return nil
	}
	if len(levels) == 0 {
		return []span{{resMinute, from, to}}
	}
	l := levels[0]
	s0 := l.floor(from)
	if s0 < from {
		s0 = l.next(s0)
	}
	end := s0
	for n := l.next(end); n <= to && n <= l.done; n = l.next(end) {
		end = n
	}
	if end <= s0 {
		return planLevels(from, to, levels[1:])
	}
	out := planLevels(from, s0, levels[1:])
	out = append(out, span{l.res, s0, end})
	return append(out, planLevels(end, to, levels[1:])...)
}

// eachRecord calls fn with partition p's records of section s in
// [from, to): the unfolded hits' first, then the stored ones, but for the
// consolidated records of the buckets in sh, which it checks against sh
// instead (errStale). The order is the same on every call, so that a query
// can rank rows from their counts and come back for the sketches of a few.
// sks is nil unless withSketches.
func (v *view) eachRecord(p, s int, from, to int64, withSketches bool, sh *shared, fn func(counts []byte, sks sketches) error) error {
	counts, sks, err := v.pendingSection(p, s, from, to)
	if err != nil {
		return err
	}
	if counts != nil {
		if err := fn(counts, sks); err != nil {
			return err
		}
	}
	m := v.marks[p]
	if m == nil {
		if sh != nil && sh.expect[p] != 0 {
			return errStale // the partition's rollups were dropped since
		}
		return nil
	}
	k := newKeys(p)
	seen := 0
	for _, sp := range plan(from, to, m, v.pol.loc()) {
		if sp.lo >= sp.hi {
			continue
		}
		if err := v.eachSpan(k, p, s, sp, withSketches, sh, &seen, fn); err != nil {
			return err
		}
	}
	if sh != nil && seen != sh.expect[p] {
		return errStale
	}
	return nil
}

// eachSpan reads the records of one span, their sketches alongside, and
// counts in seen the records of sh's buckets it skips.
func (v *view) eachSpan(k keys, p, s int, sp span, withSketches bool, sh *shared, seen *int, fn func(counts []byte, sks sketches) error) (err error) {
	it, err := v.snap.NewIter(&pebble.IterOptions{
		LowerBound: k.section(v.tenant, s, sp.res, sp.lo),
		UpperBound: k.section(v.tenant, s, sp.res, sp.hi),
	})
	if err != nil {
		return fmt.Errorf("reading rollups: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("reading rollups: %w", cerr)
		}
	}()
	var sit *pebble.Iterator
	if withSketches {
		if sit, err = v.snap.NewIter(&pebble.IterOptions{
			LowerBound: k.sketchSection(v.tenant, s, sp.res, sp.lo),
			UpperBound: k.sketchSection(v.tenant, s, sp.res, sp.hi),
		}); err != nil {
			return fmt.Errorf("reading rollups: %w", err)
		}
		defer func() {
			if cerr := sit.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("reading rollups: %w", cerr)
			}
		}()
		sit.First()
	}
	for it.First(); it.Valid(); it.Next() {
		if sh != nil {
			key := it.Key()
			if binary.BigEndian.Uint64(key[len(key)-8:]) == 0 {
				ref := bucketRef{sp.res, int64(binary.BigEndian.Uint64(key[len(key)-16:]))}
				// A record the bucket was merged without (the partition
				// had none then: it settled, or its first events came
				// late) is read as any other.
				if m := sh.buckets[ref]; m != nil && m.lens[p] >= 0 {
					if !m.matches(v.q, p, it.Value()) {
						return errStale
					}
					*seen++
					if sit != nil {
						sit.Next()
					}
					continue
				}
			}
		}
		var sks sketches
		if sit != nil {
			// The two records differ only in the section's letter.
			if !sit.Valid() || !bytes.Equal(sit.Key()[len(sit.Key())-16:], it.Key()[len(it.Key())-16:]) {
				return fmt.Errorf("reading rollups: %w", errSection)
			}
			sks = sit.Value()
		}
		if err := fn(it.Value(), sks); err != nil {
			return err
		}
		if sit != nil {
			sit.Next() // only now: the value is valid until the iterator moves
		}
	}
	return nil
}

// row merges the rows of value in section s (or the total) over [from, to).
// With value nil every row of the section is merged.
func (v *view) row(ctx context.Context, s int, value *string, from, to int64) (result, error) {
	if value != nil {
		// One value of a breakdown: a few rows of many.
		rows, err := v.byValue(ctx, s, []string{*value}, from, to)
		if err != nil {
			return result{}, err
		}
		return rows[0], nil
	}
	parts := make([]result, v.workers())
	err := v.parallel(ctx, func(w, p int) error {
		return v.eachRecord(p, s, from, to, true, nil, func(counts []byte, sks sketches) error {
			return eachRow(counts, func(i int, _ []byte, c *Counts) error {
				b, err := sks.at(i)
				if err != nil {
					return err
				}
				return parts[w].add(c, b)
			})
		})
	})
	if err != nil {
		return result{}, err
	}
	return mergeResults(parts), nil
}

// withShared runs a query's reads of section s over [from, to) with the
// merged buckets that fit them; if one is found stale, it drops them and
// runs the reads again without.
func (v *view) withShared(ctx context.Context, s int, from, to int64, fn func(sh *shared) error) error {
	sh, err := v.share(ctx, s, from, to)
	if err != nil {
		return err
	}
	err = fn(sh)
	if sh != nil && errors.Is(err, errStale) {
		v.q.cache.drop(sh.list)
		return fn(nil)
	}
	return err
}

// mergeResults adds up the workers' results.
func mergeResults(parts []result) result {
	var out result
	for i := range parts {
		out.merge(&parts[i])
	}
	return out
}

func secs(t time.Time) int64 { return t.Unix() }

// Summary returns the headline numbers of tenant over r.
func (q *Querier) Summary(ctx context.Context, tenant string, r Range, f *Filter) (Summary, error) {
	v, err := q.open(ctx, tenant)
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
		Pageviews: max(row.Pageviews, 0), Visitors: row.uniques(), Events: max(row.Events, 0),
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
// and last steps are clipped to r. Each worker reads its partitions' steps
// in turn, into one result per step.
func (q *Querier) Timeseries(ctx context.Context, tenant string, metric Metric, interval Interval, r Range, loc *time.Location) ([]Point, error) {
	switch metric {
	case MetricPageviews, MetricVisitors, MetricSessions, MetricEvents:
	default:
		return nil, fmt.Errorf("unknown metric %q", metric)
	}
	v, err := q.open(ctx, tenant)
	if err != nil {
		return nil, err
	}
	defer v.close()
	steps := Steps(r, interval, loc)
	bounds := make([][2]int64, len(steps))
	for i, t := range steps {
		bounds[i] = [2]int64{max(secs(t), secs(r.From)), min(secs(step(t, interval)), secs(r.To))}
	}
	parts := make([][]result, v.workers())
	for w := range parts {
		parts[w] = make([]result, len(steps))
	}
	err = v.parallel(ctx, func(w, p int) error {
		for i, b := range bounds {
			err := v.eachRecord(p, secTotal, b[0], b[1], metric == MetricVisitors, nil, func(counts []byte, sks sketches) error {
				return eachRow(counts, func(j int, _ []byte, c *Counts) error {
					var sk []byte
					if sks != nil {
						var err error
						if sk, err = sks.at(j); err != nil {
							return err
						}
					}
					return parts[w][i].add(c, sk)
				})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Point, 0, len(steps))
	for i, t := range steps {
		row := parts[0][i]
		for w := 1; w < len(parts); w++ {
			row.merge(&parts[w][i])
		}
		var n int64
		switch metric {
		case MetricPageviews:
			n = row.Pageviews
		case MetricVisitors:
			n = row.uniques()
		case MetricSessions:
			n = row.Sessions
		case MetricEvents:
			n = row.Events
		}
		out = append(out, Point{T: t, Value: max(n, 0)})
	}
	return out, nil
}
