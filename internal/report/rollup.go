package report

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
)

// Tx is the view of a shard's state the rollups need; *shard.Tx
// implements it. Get sees the writes made earlier in the same log message.
type Tx interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte)
	DeleteRange(start, end []byte)
	Scan(lower, upper []byte, fn func(key, value []byte) bool) error
}

// Hit is what one event adds to the rollups. The visitor shard fills it in
// from the event and the visitor's session.
type Hit struct {
	// Time is the event's time and Received when it was received, both
	// Unix seconds; Received drives the partition's clock.
	Time, Received int64
	// Visitor is a hash of the visitor key.
	Visitor uint64
	// Bot events are counted as bots and nowhere else.
	Bot bool
	// Pageview is a page or screen call; Event, a track call's name.
	Pageview bool
	Event    string
	// NewSession: the event started a session.
	NewSession bool
	// Bounce is +1 on a session's first page view, -1 on its second.
	Bounce int64
	// DurationMs is how much longer the session lasted with this event.
	DurationMs int64
	// Known has bit d set when this event made the session's value of
	// dimension d known (its entry page on the first page view, its
	// source on the first event that has one). The session is then counted
	// under that value with what it holds so far: SessionBounce (1 while it
	// has one page view) and SessionMs (how long it lasted).
	Known                    uint32
	SessionBounce, SessionMs int64
	// Values holds the event's page and its session's entry page,
	// referrer, channel, UTM, country, device, browser and OS ("": none).
	Values [numDims]string
	// ExitFrom is the page the session's exit moves away from, "" if none;
	// Exit says the session's exit is now Values[DimPage].
	ExitFrom string
	Exit     bool
	// Goals names the goals the event converts.
	Goals []string
}

// Rollup counts a partition's events into its buckets. A log message's
// counts are gathered in memory (Add, which reads nothing) and written by
// Flush as one record per bucket section they changed; compactions merge
// records. It belongs to one shard and is used by one goroutine; call
// Reset whenever the shard restarts from its stored position.
type Rollup struct {
	keys   keys
	policy func(tenant string) Policy
	// delta holds the counts of the current log message.
	delta map[bucketID]*Bucket
	// records counts the records written per open minute since it was
	// last consolidated (as far as this run knows).
	records map[bucketID]int
	marks   map[string]*marks // loaded tenants
	// listed says marks holds every tenant of the partition.
	listed bool
	now    int64 // the partition's clock, Unix seconds
	nowSet bool
}

type bucketID struct {
	tenant string
	res    byte
	start  int64
}

// marks are a tenant's compaction marks in one partition: every hour
// before hourDone and every day before dayDone is compacted.
type marks struct {
	hourDone, dayDone int64
	dirty             bool
}

// NewRollup returns the rollups of partition p; policy gives each tenant's
// settings.
func NewRollup(p int, policy func(tenant string) Policy) *Rollup {
	return &Rollup{keys: newKeys(p), policy: policy, delta: map[bucketID]*Bucket{}, records: map[bucketID]int{}, marks: map[string]*marks{}}
}

// Reset drops everything held in memory.
func (r *Rollup) Reset() {
	clear(r.delta)
	clear(r.records)
	clear(r.marks)
	r.listed, r.nowSet = false, false
}

func (r *Rollup) clock(tx Tx) (int64, error) {
	if !r.nowSet {
		v, err := tx.Get(r.keys.clock())
		if err != nil {
			return 0, fmt.Errorf("reading the rollup clock: %w", err)
		}
		r.now = 0
		if len(v) == 8 {
			r.now = int64(binary.BigEndian.Uint64(v))
		}
		r.nowSet = true
	}
	return r.now, nil
}

// tenantMarks returns a tenant's marks, starting them at sec's hour and day
// for a tenant new to the partition.
func (r *Rollup) tenantMarks(tx Tx, tenant string, sec int64, pol Policy) (*marks, error) {
	if m, ok := r.marks[tenant]; ok {
		return m, nil
	}
	v, err := tx.Get(r.keys.marks(tenant))
	if err != nil {
		return nil, fmt.Errorf("reading rollup marks: %w", err)
	}
	m := &marks{}
	if len(v) == 16 {
		m.hourDone = int64(binary.BigEndian.Uint64(v))
		m.dayDone = int64(binary.BigEndian.Uint64(v[8:]))
	} else {
		m.hourDone, m.dayDone, m.dirty = floorHour(sec), dayStart(sec, pol.loc()), true
		tx.Set(r.keys.tenant(tenant), nil)
	}
	r.marks[tenant] = m
	return m, nil
}

// Add counts h for tenant: in its minute bucket, and in its hour and day
// buckets when those were compacted already (a late event).
func (r *Rollup) Add(tx Tx, tenant string, h *Hit) error {
	now, err := r.clock(tx)
	if err != nil {
		return err
	}
	if h.Received > now {
		r.now, now = h.Received, h.Received
	}
	if !h.Bot && !h.Pageview && h.Event == "" && !h.NewSession {
		return nil // identify, alias, group: nothing to count
	}
	pol := r.policy(tenant)
	m, err := r.tenantMarks(tx, tenant, h.Time, pol)
	if err != nil {
		return err
	}
	var targets [3]*Bucket
	n := 0
	for _, id := range [...]struct {
		ok bool
		id bucketID
	}{
		{h.Time >= now-int64(pol.MinuteRetention.Seconds()), bucketID{tenant, resMinute, floorMinute(h.Time)}},
		{h.Time < m.hourDone && h.Time >= now-int64(pol.HourRetention.Seconds()), bucketID{tenant, resHour, floorHour(h.Time)}},
		{h.Time < m.dayDone && h.Time >= now-int64(pol.Retention.Seconds()), bucketID{tenant, resDay, dayStart(h.Time, pol.loc())}},
	} {
		if !id.ok {
			continue
		}
		targets[n] = r.bucket(id.id)
		n++
	}
	for _, b := range targets[:n] {
		b.add(h)
	}
	return nil
}

// add counts h into b.
func (b *Bucket) add(h *Hit) {
	if h.Bot {
		b.Total.Bots++
		b.dirty |= 1 << secTotal
		return
	}
	var c Counts
	active := h.Pageview || h.Event != ""
	if h.Pageview {
		c.Pageviews = 1
	}
	if h.Event != "" {
		c.Events = 1
	}
	if h.NewSession {
		c.Sessions = 1
	}
	c.Bounces, c.DurationMs = h.Bounce, h.DurationMs
	b.Total.Counts.add(&c)
	b.dirty |= 1 << secTotal
	if active {
		b.Total.addVisitor(h.Visitor)
	}
	if h.Pageview && h.Values[DimPage] != "" {
		row := b.row(DimPage, h.Values[DimPage])
		row.Pageviews++
		row.addVisitor(h.Visitor)
		b.dirty |= 1 << dimSection(DimPage)
	}
	for d := DimEntryPage; d < dimGoal; d++ {
		v := h.Values[d]
		if v == "" || !sessionDim(d) {
			continue
		}
		row := b.row(d, v)
		switch {
		case d == DimDevice || d == DimBrowser || d == DimOS:
			row.Counts.add(&c) // the device's: known from the start
		case h.Known&(1<<d) != 0:
			row.Pageviews += c.Pageviews
			row.Events += c.Events
			row.Sessions++
			row.Bounces += h.SessionBounce
			row.DurationMs += h.SessionMs
		default:
			row.Pageviews += c.Pageviews
			row.Events += c.Events
			row.Bounces += c.Bounces
			row.DurationMs += c.DurationMs
		}
		if active {
			row.addVisitor(h.Visitor)
		}
		b.dirty |= 1 << dimSection(d)
	}
	if h.Event != "" {
		row := b.row(DimEvent, h.Event)
		row.Events++
		row.addVisitor(h.Visitor)
		b.dirty |= 1 << dimSection(DimEvent)
	}
	if h.ExitFrom != "" {
		b.row(DimExitPage, h.ExitFrom).Sessions--
		b.dirty |= 1 << dimSection(DimExitPage)
	}
	if h.Exit && h.Values[DimPage] != "" {
		b.row(DimExitPage, h.Values[DimPage]).Sessions++
		b.dirty |= 1 << dimSection(DimExitPage)
	}
	for _, g := range h.Goals {
		row := b.row(dimGoal, g)
		row.Events++
		row.addVisitor(h.Visitor)
		b.dirty |= 1 << dimSection(dimGoal)
	}
}

// bucket returns the current message's counts for a bucket.
func (r *Rollup) bucket(id bucketID) *Bucket {
	b, ok := r.delta[id]
	if !ok {
		b = &Bucket{}
		r.delta[id] = b
	}
	return b
}

// consolidateAfter is how many records an open minute may gather before
// Flush merges them into one, so that a query reads few records.
const consolidateAfter = 32

// Flush runs due compactions and writes the current message's counts. The
// shard calls it at the end of every log message, before the commit; seq
// is the message's stream sequence, which names its records.
func (r *Rollup) Flush(tx Tx, seq uint64) error {
	if err := r.compact(tx); err != nil {
		return err
	}
	ids := make([]bucketID, 0, len(r.delta))
	for id := range r.delta {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return lessID(ids[i], ids[j]) })
	for _, id := range ids {
		b := r.delta[id]
		if id.res == resMinute && (r.records[id]+1 >= consolidateAfter || id.start+60+compactGrace <= r.now) {
			// The minute gathered enough records, or closed: merge them
			// with this message's counts into one.
			if err := r.consolidate(tx, id, b); err != nil {
				return err
			}
			continue
		}
		if err := r.write(tx, id, b, seq); err != nil {
			return err
		}
		if id.res == resMinute {
			r.records[id]++
		}
	}
	clear(r.delta)
	for t, m := range r.marks {
		if m.dirty {
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(m.hourDone))
			tx.Set(r.keys.marks(t), binary.BigEndian.AppendUint64(v, uint64(m.dayDone)))
			m.dirty = false
		}
	}
	if r.nowSet {
		tx.Set(r.keys.clock(), binary.BigEndian.AppendUint64(nil, uint64(r.now)))
	}
	return nil
}

func lessID(a, b bucketID) bool {
	if a.tenant != b.tenant {
		return a.tenant < b.tenant
	}
	if a.res != b.res {
		return a.res < b.res
	}
	return a.start < b.start
}

// write stores the changed sections of b as records seq of bucket id.
func (r *Rollup) write(tx Tx, id bucketID, b *Bucket, seq uint64) error {
	for s := 0; s < numSecs; s++ {
		if b.dirty&(1<<s) == 0 {
			continue
		}
		v, err := b.appendSection(nil, s)
		if err != nil {
			return err
		}
		tx.Set(r.keys.record(id.tenant, s, id.res, id.start, seq), v)
	}
	b.dirty = 0
	return nil
}

// load merges the stored records of a tenant's buckets of resolution res
// starting in [from, to) into dst.
func (r *Rollup) load(tx Tx, dst *Bucket, tenant string, res byte, from, to int64) error {
	for s := 0; s < numSecs; s++ {
		var err error
		serr := tx.Scan(r.keys.section(tenant, s, res, from), r.keys.section(tenant, s, res, to), func(_, v []byte) bool {
			err = eachRow(v, func(val []byte, c *Counts, sketch []byte) error {
				var row *Row
				if s == secTotal {
					row = &dst.Total
				} else {
					row = dst.row(Dim(s-1), string(val))
				}
				return mergeRaw(row, c, sketch)
			})
			return err == nil
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("reading rollups of %s: %w", tenant, err)
		}
	}
	return nil
}

// consolidate replaces the records of minute id by one, adding b.
func (r *Rollup) consolidate(tx Tx, id bucketID, b *Bucket) error {
	all := &Bucket{}
	if err := r.load(tx, all, id.tenant, id.res, id.start, id.start+1); err != nil {
		return err
	}
	if err := all.merge(b); err != nil {
		return err
	}
	r.replace(tx, id, all)
	delete(r.records, id)
	return r.write(tx, id, all, 0)
}

// replace deletes every record of bucket id, and marks all of b's sections
// to be written.
func (r *Rollup) replace(tx Tx, id bucketID, b *Bucket) {
	for s := 0; s < numSecs; s++ {
		tx.DeleteRange(r.keys.section(id.tenant, s, id.res, id.start), r.keys.section(id.tenant, s, id.res, id.start+1))
	}
	b.dirty = 1<<numSecs - 1
}

// compact compacts, for every tenant of the partition, at most one hour and
// one day that closed, and drops buckets past their retention.
func (r *Rollup) compact(tx Tx) error {
	if !r.nowSet || r.now == 0 {
		return nil
	}
	if !r.listed {
		var tenants []string
		lo := r.keys.tenantIndex()
		hi := append(slices.Clone(lo), 0xff)
		if err := tx.Scan(lo, hi, func(k, _ []byte) bool {
			tenants = append(tenants, string(k[len(lo):]))
			return true
		}); err != nil {
			return fmt.Errorf("listing rollup tenants: %w", err)
		}
		for _, t := range tenants {
			if _, err := r.tenantMarks(tx, t, r.now, r.policy(t)); err != nil {
				return err
			}
		}
		r.listed = true
	}
	tenants := make([]string, 0, len(r.marks))
	for t := range r.marks {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		if err := r.compactTenant(tx, t, r.marks[t], r.policy(t)); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rollup) compactTenant(tx Tx, tenant string, m *marks, pol Policy) error {
	now := r.now
	loc := pol.loc()
	// A day is compacted from hours compacted by earlier messages: the
	// records this one writes are not visible to its reads.
	dayEnd := nextDay(m.dayDone, loc)
	dayDue := dayEnd <= m.hourDone && dayEnd+compactGrace <= now
	if m.hourDone+3600+compactGrace <= now {
		h := m.hourDone
		next, err := r.nextMinute(tx, tenant, h)
		if err != nil {
			return err
		}
		if next >= h+3600 {
			// Nothing in this hour: skip to the next hour with data (or to
			// the last closed one).
			m.hourDone = min(floorHour(next), floorHour(now-compactGrace))
			m.dirty = true
		} else {
			if err := r.merge(tx, bucketID{tenant, resHour, h}, resMinute, h, h+3600, pol.RowLimit); err != nil {
				return err
			}
			m.hourDone, m.dirty = h+3600, true
		}
		// Minutes go only once their hour is compacted.
		r.expire(tx, tenant, resMinute, min(now-int64(pol.MinuteRetention.Seconds()), m.hourDone))
	}
	if dayDue {
		d := m.dayDone
		if err := r.merge(tx, bucketID{tenant, resDay, d}, resHour, d, dayEnd, pol.RowLimit); err != nil {
			return err
		}
		m.dayDone, m.dirty = dayEnd, true
		r.expire(tx, tenant, resHour, min(now-int64(pol.HourRetention.Seconds()), m.dayDone))
		r.expire(tx, tenant, resDay, now-int64(pol.Retention.Seconds()))
	}
	return nil
}

// nextMinute returns the start of the first minute bucket of tenant at or
// after from, in this message or stored; MaxInt64 if there is none.
func (r *Rollup) nextMinute(tx Tx, tenant string, from int64) (int64, error) {
	next := int64(1<<63 - 1)
	for id := range r.delta {
		if id.tenant == tenant && id.res == resMinute && id.start >= from && id.start < next {
			next = id.start
		}
	}
	lo := r.keys.section(tenant, secTotal, resMinute, from)
	hi := r.keys.section(tenant, secTotal, resMinute, next)
	err := tx.Scan(lo, hi, func(k, _ []byte) bool {
		next = int64(binary.BigEndian.Uint64(k[len(k)-16:]))
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("finding rollup buckets: %w", err)
	}
	return next, nil
}

// merge builds the bucket into from every record of resolution res in
// [from, to), stored or in this message. Nothing is written when there is
// none.
func (r *Rollup) merge(tx Tx, into bucketID, res byte, from, to int64, rowLimit int) error {
	dst := &Bucket{}
	if err := r.load(tx, dst, into.tenant, res, from, to); err != nil {
		return err
	}
	for id, b := range r.delta {
		if id.tenant == into.tenant && id.res == res && id.start >= from && id.start < to {
			if err := dst.merge(b); err != nil {
				return fmt.Errorf("compacting rollups of %s: %w", into.tenant, err)
			}
		}
	}
	if dst.Total.zero() && dst.Total.Visitors == nil && len(dst.Dims[DimPage]) == 0 {
		return nil
	}
	if rowLimit > 0 {
		if err := dst.limitRows(rowLimit); err != nil {
			return err
		}
	}
	if prev, ok := r.delta[into]; ok {
		// Late events of this message already counted into the bucket.
		if err := dst.merge(prev); err != nil {
			return err
		}
		delete(r.delta, into)
	}
	r.replace(tx, into, dst)
	return r.write(tx, into, dst, 0)
}

// expire drops a tenant's buckets of resolution res that started before
// cutoff.
func (r *Rollup) expire(tx Tx, tenant string, res byte, cutoff int64) {
	if cutoff <= 0 {
		return
	}
	for s := 0; s < numSecs; s++ {
		tx.DeleteRange(r.keys.section(tenant, s, res, 0), r.keys.section(tenant, s, res, cutoff))
	}
	for id := range r.delta {
		if id.tenant == tenant && id.res == res && id.start < cutoff {
			delete(r.delta, id)
		}
	}
}
