package report

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sync/errgroup"
)

// A breakdown over a month reads every partition's compacted buckets in
// full: some 2,000 rows per record, for 16 partitions and 25 buckets, to
// rank a handful. The consolidated record (seq 0) of a compacted hour, day
// or week is written once, when the bucket is compacted, and never
// changed: late events add records of their own, and retention deletes it.
// So a query merges it once for all partitions and keeps the result in the
// Querier's cache, a merged bucket; a later query that reads the bucket
// in every partition takes the counts from there, and reads per partition
// only the records written since, and the winners' sketches.
//
// A minute's consolidated record is not written once: a late event of a
// settled minute makes the next fold merge it into the record again. But
// a minute is small, and a report of the last hour reads 60 of them in
// every partition on every refresh; so settled minutes are merged too,
// and checked by a hash of their records rather than their length.
//
// A merged bucket is checked against every query's snapshot: each
// partition must hold exactly the consolidated records it was merged
// from, of the same lengths (and, for a minute, the same hash). A record
// rewritten by a late event or deleted by retention fails the query's
// check: the query drops the merged buckets it used and reads again
// without them. A record the bucket was merged without (the partition had
// none then: a minute settled since, or a partition's first events came
// late) is read as the records written since are.

// DefaultCacheBytes is the default bound of a Querier's merged buckets.
const DefaultCacheBytes = 128 << 20

// errStale: a merged bucket does not match the records of a snapshot.
var errStale = errors.New("merged rollup bucket is stale")

// bucketRef names a bucket of a section.
type bucketRef struct {
	res   byte
	start int64
}

type cacheKey struct {
	tenant string
	s      int
	bucketRef
}

// merged is one compacted bucket's section, its consolidated records of
// every partition merged.
type merged struct {
	key cacheKey
	tally
	// rows holds per partition, per value, the value's row in the
	// partition's record (-1: none); nil if the partition has no record.
	rows [][]int32
	// lens holds per partition the length of its record (-1: none), and
	// sums, for a minute, its hash.
	lens  []int
	sums  []uint64
	bytes int64

	// mu guards visitors: the merged registers of the values queries
	// asked for (nil: the value has no visitors), merged on first ask.
	mu       sync.Mutex
	visitors map[int32]*registers
}

// CacheStats describes a Querier's cache of merged buckets.
type CacheStats struct {
	Hits, Misses, Stale, Evicted uint64
	Entries                      int
	Bytes                        int64
}

// bucketCache holds merged buckets, least recently used first out.
type bucketCache struct {
	mu      sync.Mutex
	max     int64
	lru     list.List // of *merged, most recent first
	entries map[cacheKey]*list.Element
	stats   CacheStats
}

func newBucketCache(maxBytes int64) *bucketCache {
	return &bucketCache{max: maxBytes, entries: map[cacheKey]*list.Element{}}
}

func (c *bucketCache) get(k cacheKey) *merged {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		c.stats.Misses++
		return nil
	}
	c.stats.Hits++
	c.lru.MoveToFront(e)
	return e.Value.(*merged)
}

func (c *bucketCache) put(m *merged) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.bytes > c.max {
		return
	}
	if e, ok := c.entries[m.key]; ok {
		c.stats.Bytes -= e.Value.(*merged).bytes
		c.lru.Remove(e)
	}
	c.entries[m.key] = c.lru.PushFront(m)
	c.stats.Bytes += m.bytes
	c.evict()
}

// evict drops the least recently used merged buckets until the cache
// fits.
func (c *bucketCache) evict() {
	for c.stats.Bytes > c.max && c.lru.Len() > 0 {
		e := c.lru.Back()
		old := e.Value.(*merged)
		c.lru.Remove(e)
		delete(c.entries, old.key)
		c.stats.Bytes -= old.bytes
		c.stats.Evicted++
	}
}

// grow accounts n more bytes to m, if it is still held.
func (c *bucketCache) grow(m *merged, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[m.key]
	if !ok || e.Value.(*merged) != m {
		return
	}
	m.bytes += n
	c.stats.Bytes += n
	c.evict()
}

// drop removes the given merged buckets, found stale.
func (c *bucketCache) drop(ms []*merged) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range ms {
		if e, ok := c.entries[m.key]; ok && e.Value.(*merged) == m {
			c.lru.Remove(e)
			delete(c.entries, m.key)
			c.stats.Bytes -= m.bytes
		}
		c.stats.Stale++
	}
}

func (c *bucketCache) snapshot() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.entries)
	return s
}

// CacheStats returns the state of q's cache of merged buckets.
func (q *Querier) CacheStats() CacheStats { return q.cache.snapshot() }

// shared is the compacted buckets of section s that every partition of a
// query reads whole, merged.
type shared struct {
	buckets map[bucketRef]*merged
	list    []*merged
	// expect holds per partition how many of the buckets it has a record
	// of.
	expect []int
}

// countsOf adds the merged counts of val to c.
func (sh *shared) countsOf(val string, c *Counts) {
	if sh == nil {
		return
	}
	for _, m := range sh.list {
		if i, ok := m.index[val]; ok {
			c.add(&m.counts[i])
		}
	}
}

// sharedVisitors merges into out[i] the visitors of vals[i] in the
// shared buckets: each bucket's merged registers of the value, merged
// from every partition's record on first ask (in one pass for all the
// buckets and values missing).
func (v *view) sharedVisitors(ctx context.Context, sh *shared, s int, vals []string, out []result) error {
	if sh == nil {
		return nil
	}
	type ask struct {
		m    *merged
		idx  []int32  // the values' indexes in m
		vals []string // and the values
	}
	var asks []ask
	for _, m := range sh.list {
		a := ask{m: m}
		m.mu.Lock()
		for _, val := range vals {
			i, ok := m.index[val]
			if !ok {
				continue
			}
			if _, done := m.visitors[i]; !done {
				a.idx, a.vals = append(a.idx, i), append(a.vals, val)
			}
		}
		m.mu.Unlock()
		if len(a.idx) > 0 {
			asks = append(asks, a)
		}
	}
	if len(asks) > 0 {
		parts := make([][][]result, v.workers()) // per worker, per ask, per value
		err := v.parallel(ctx, func(w, p int) error {
			if v.marks[p] == nil {
				return nil
			}
			if parts[w] == nil {
				parts[w] = make([][]result, len(asks))
			}
			k := newKeys(p)
			for i, a := range asks {
				if parts[w][i] == nil {
					parts[w][i] = make([]result, len(a.vals))
				}
				key := k.sketchRecord(v.tenant, s, a.m.key.res, a.m.key.start, 0)
				if err := v.sketchesIn(a.m, key, p, a.vals, parts[w][i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, a := range asks {
			byWorker := make([][]result, 0, len(parts))
			for _, pw := range parts {
				if pw != nil {
					byWorker = append(byWorker, pw[i])
				}
			}
			rows := mergeWinners(byWorker, len(a.vals))
			var grown int64
			a.m.mu.Lock()
			if a.m.visitors == nil {
				a.m.visitors = map[int32]*registers{}
			}
			for j, idx := range a.idx {
				if _, done := a.m.visitors[idx]; !done {
					a.m.visitors[idx] = rows[j].visitors
					grown += 16
					if rows[j].visitors != nil {
						grown += int64(len(rows[j].visitors))
					}
				}
			}
			a.m.mu.Unlock()
			v.q.cache.grow(a.m, grown)
		}
	}
	for _, m := range sh.list {
		m.mu.Lock()
		for w, val := range vals {
			i, ok := m.index[val]
			if !ok {
				continue
			}
			if regs := m.visitors[i]; regs != nil {
				if out[w].visitors == nil {
					out[w].visitors = new(registers)
				}
				out[w].visitors.merge(regs)
			}
		}
		m.mu.Unlock()
	}
	return nil
}

// sketchesIn merges the sketches of vals from partition p's record key of
// bucket m, read in place.
func (v *view) sketchesIn(m *merged, key []byte, p int, vals []string, out []result) (err error) {
	rows := m.rows[p]
	if rows == nil {
		return nil
	}
	var sks sketches
	for w, val := range vals {
		i, ok := m.index[val]
		if !ok || rows[i] < 0 {
			continue
		}
		if sks == nil {
			b, closer, err := v.snap.Get(key)
			if errors.Is(err, pebble.ErrNotFound) {
				return errStale
			}
			if err != nil {
				return fmt.Errorf("reading rollups: %w", err)
			}
			defer func() {
				if cerr := closer.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("reading rollups: %w", cerr)
				}
			}()
			sks = b
		}
		b, err := sks.at(int(rows[i]))
		if err != nil {
			return err
		}
		if err := out[w].add(&Counts{}, b); err != nil {
			return err
		}
	}
	return nil
}

// share finds the compacted buckets of section s in [from, to) that every
// partition with rollups reads whole, and returns them merged: from q's
// cache, or merged now and cached. It returns nil if there are none.
func (v *view) share(ctx context.Context, s int, from, to int64) (*shared, error) {
	if v.q.cache == nil || v.q.cache.max <= 0 {
		return nil, nil
	}
	loc := v.pol.loc()
	// A bucket is shared if every partition with rollups reads it; the
	// first such partition's plan lists them in order.
	var refs []bucketRef
	count := map[bucketRef]int{}
	with := 0
	for _, m := range v.marks {
		if m == nil {
			continue
		}
		with++
		for _, sp := range plan(from, to, m, loc) {
			lo := sp.lo
			if sp.res == resMinute {
				// A span's minutes are those starting in it.
				lo = floorMinute(lo + 59)
			}
			for t := lo; t < sp.hi; t = nextStart(sp.res, t, loc) {
				ref := bucketRef{sp.res, t}
				if with == 1 {
					refs = append(refs, ref)
				}
				count[ref]++
			}
		}
	}
	sh := &shared{buckets: map[bucketRef]*merged{}, expect: make([]int, len(v.marks))}
	var missing []bucketRef
	for _, ref := range refs {
		if count[ref] != with {
			continue
		}
		m := v.q.cache.get(cacheKey{v.tenant, s, ref})
		if m == nil || len(m.lens) != len(v.marks) {
			missing = append(missing, ref)
			continue
		}
		sh.buckets[ref] = m
	}
	if len(missing) > 0 {
		built, err := v.merge(ctx, s, missing)
		if err != nil {
			return nil, err
		}
		for _, m := range built {
			sh.buckets[m.key.bucketRef] = m
			v.q.cache.put(m)
		}
	}
	if len(sh.buckets) == 0 {
		return nil, nil
	}
	for _, ref := range refs {
		m := sh.buckets[ref]
		if m == nil {
			continue
		}
		sh.list = append(sh.list, m)
		for p, l := range m.lens {
			if l >= 0 {
				sh.expect[p]++
			}
		}
	}
	return sh, nil
}

// nextStart returns the start of the bucket of resolution res after the
// one starting at t.
func nextStart(res byte, t int64, loc *time.Location) int64 {
	switch res {
	case resHour:
		return t + 3600
	case resDay:
		return nextDay(t, loc)
	case resWeek:
		return nextWeek(t, loc)
	}
	return t + 60
}

// merge reads the consolidated records of section s of the given buckets
// in every partition and merges them, a bucket per goroutine.
func (v *view) merge(ctx context.Context, s int, refs []bucketRef) ([]*merged, error) {
	out := make([]*merged, len(refs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(cap(v.q.cores))
	for i, ref := range refs {
		g.Go(func() error {
			return v.q.onCore(ctx, func() error {
				m, err := v.mergeBucket(s, ref)
				out[i] = m
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// mergeBucket merges the consolidated records of section s of bucket ref.
func (v *view) mergeBucket(s int, ref bucketRef) (*merged, error) {
	n := len(v.marks)
	m := &merged{key: cacheKey{v.tenant, s, ref}, tally: tally{index: map[string]int32{}},
		rows: make([][]int32, n), lens: make([]int, n)}
	if ref.res == resMinute {
		m.sums = make([]uint64, n)
	}
	byRow := make([][]int32, n) // per partition, per row: the value's index
	for p := range n {
		m.lens[p] = -1
		if v.marks[p] == nil {
			continue
		}
		b, closer, err := v.snap.Get(newKeys(p).record(v.tenant, s, ref.res, ref.start, 0))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading rollups: %w", err)
		}
		m.lens[p] = len(b)
		if ref.res == resMinute {
			m.sums[p] = v.q.recordSum(b)
		}
		err = eachRow(b, func(_ int, val []byte, c *Counts) error {
			byRow[p] = append(byRow[p], m.add(val, c))
			return nil
		})
		if cerr := closer.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("reading rollups: %w", cerr)
		}
		if err != nil {
			return nil, err
		}
	}
	for p := range n {
		if m.lens[p] < 0 {
			continue
		}
		rows := make([]int32, len(m.vals))
		for j := range rows {
			rows[j] = -1
		}
		for row, i := range byRow[p] {
			rows[i] = int32(row)
		}
		m.rows[p] = rows
	}
	m.bytes = m.size()
	return m, nil
}

// size estimates the memory m holds.
func (m *merged) size() int64 {
	n := int64(unsafe.Sizeof(*m)) + int64(len(m.key.tenant))
	for _, val := range m.vals {
		// The string, its header in vals, and the index's entry.
		n += int64(2*len(val)) + 16 + 48
	}
	n += int64(len(m.counts)) * int64(unsafe.Sizeof(Counts{}))
	for _, r := range m.rows {
		n += 24 + 4*int64(len(r))
	}
	return n + 8*int64(len(m.lens)+len(m.sums))
}

// recordSum is the hash that checks a minute's merged record.
func (q *Querier) recordSum(b []byte) uint64 { return maphash.Bytes(q.seed, b) }

// matches reports whether partition p's consolidated record val is the one
// m was merged from.
func (m *merged) matches(q *Querier, p int, val []byte) bool {
	if m.lens[p] != len(val) {
		return false
	}
	return m.sums == nil || m.sums[p] == q.recordSum(val)
}
