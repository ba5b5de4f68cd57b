package report

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Tx is the view of a shard's state the rollups need; *shard.Tx
// implements it. Get sees the writes made earlier in the same log message.
type Tx interface {
	Get(key []byte) ([]byte, error)
	Set(key, value []byte)
	Delete(key []byte)
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
// hits are encoded in memory (Add, which reads nothing) and written by
// Flush to the hit log, from where they are folded into bucket records
// (hitlog.go); compactions merge records. It belongs to one shard and is
// used by one goroutine; call Reset whenever the shard restarts from its
// stored position.
type Rollup struct {
	keys   keys
	policy func(tenant string) Policy
	// msg holds the current log message's hits per tenant; entries are
	// kept and reused.
	msg map[string]*msgHits
	// pend is what each tenant has in the stored hit log; pendLoaded says
	// it was read since the last Reset.
	pend       map[string]*pending
	pendLoaded bool
	// delta holds the counts being folded in the current message.
	delta map[bucketID]*Bucket
	// records counts the records written per open minute since it was
	// last consolidated (as far as this run knows).
	records map[bucketID]int
	marks   map[string]*marks // loaded tenants
	// listed says marks holds every tenant of the partition.
	listed bool
	now    int64 // the partition's clock, Unix seconds
	nowSet bool
	// settled is the minute of the clock the last settle ran at;
	// recordsRead says records holds what the run before left (see
	// settle).
	settled     int64
	recordsRead bool
	hit         Hit // decoding buffer
}
type bucketID struct {
	tenant string
	res    byte
	start  int64
}

// marks are a tenant's compaction marks in one partition: every hour
// before hourDone, every day before dayDone and every week before weekDone
// is compacted.
type marks struct {
	hourDone, dayDone, weekDone int64
	// hitFrom is the sequence the tenant's hit log starts at: everything
	// before was folded. Reads start there rather than step over what
	// the folds deleted.
	hitFrom uint64
	dirty   bool
}

// encode returns the stored form of m: hourDone, dayDone, weekDone and
// hitFrom as eight bytes big-endian each.
func (m *marks) encode() []byte {
	v := make([]byte, 0, 32)
	for _, x := range [...]uint64{uint64(m.hourDone), uint64(m.dayDone), uint64(m.weekDone), m.hitFrom} {
		v = binary.BigEndian.AppendUint64(v, x)
	}
	return v
}

// decodeMarks reads stored marks; nil if v holds none.
func decodeMarks(v []byte) *marks {
	if len(v) != 32 {
		return nil
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(v[8*i:]) }
	return &marks{hourDone: int64(u(0)), dayDone: int64(u(1)), weekDone: int64(u(2)), hitFrom: u(3)}
}

// NewRollup returns the rollups of partition p; policy gives each tenant's
// settings.
func NewRollup(p int, policy func(tenant string) Policy) *Rollup {
	return &Rollup{
		keys: newKeys(p), policy: policy, msg: map[string]*msgHits{}, pend: map[string]*pending{},
		delta: map[bucketID]*Bucket{}, records: map[bucketID]int{}, marks: map[string]*marks{},
	}
}

// Reset drops everything held in memory.
func (r *Rollup) Reset() {
	for _, m := range r.msg {
		m.buf, m.n = m.buf[:0], 0
	}
	clear(r.pend)
	r.pendLoaded = false
	clear(r.delta)
	clear(r.records)
	clear(r.marks)
	r.listed, r.nowSet, r.recordsRead = false, false, false
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

// due says whether an hour, a day and a week are due to be compacted. A
// day is compacted from hours compacted by earlier messages, a week from
// days: the records this one writes are not visible to its reads.
func (m *marks) due(now int64, loc *time.Location) (hour, day, week bool) {
	dayEnd, weekEnd := nextDay(m.dayDone, loc), nextWeek(m.weekDone, loc)
	return m.hourDone+3600+compactGrace <= now, dayEnd <= m.hourDone && dayEnd+compactGrace <= now,
		weekEnd <= m.dayDone && weekEnd+compactGrace <= now
}

// tenantMarks returns a tenant's marks, starting them at sec's hour and day
// for a tenant new to the partition.
func (r *Rollup) tenantMarks(tx Tx, tenant string, sec int64, pol Policy) (*marks, error) {
	m, err := r.storedMarks(tx, tenant)
	if err != nil || m != nil {
		return m, err
	}
	m = &marks{hourDone: floorHour(sec), dayDone: dayStart(sec, pol.loc()), weekDone: weekStart(sec, pol.loc()), dirty: true}
	tx.Set(r.keys.tenant(tenant), nil)
	r.marks[tenant] = m
	return m, nil
}

// Add counts h for tenant. It only encodes h: Flush writes it.
func (r *Rollup) Add(tx Tx, tenant string, h *Hit) error {
	now, err := r.clock(tx)
	if err != nil {
		return err
	}
	if h.Received > now {
		r.now = h.Received
	}
	if !h.Bot && !h.Pageview && h.Event == "" && !h.NewSession {
		return nil // identify, alias, group: nothing to count
	}
	m, ok := r.msg[tenant]
	if !ok {
		m = &msgHits{}
		r.msg[tenant] = m
	}
	m.buf = appendHit(m.buf, h)
	m.n++
	return nil
}

// place counts h for tenant: in its minute bucket, and in its hour and day
// buckets when those were compacted already (a late event). now is the
// partition's clock when h was logged: retention applies as of then, and
// a compaction that is due since counts h in (it merges r.delta).
func (r *Rollup) place(tx Tx, tenant string, h *Hit, now int64, pol Policy) error {
	m, err := r.tenantMarks(tx, tenant, h.Time, pol)
	if err != nil {
		return err
	}
	if h.Time >= now-int64(pol.MinuteRetention.Seconds()) {
		r.bucket(bucketID{tenant, resMinute, floorMinute(h.Time)}).add(h)
	}
	if h.Time < m.hourDone && h.Time >= now-int64(pol.HourRetention.Seconds()) {
		r.bucket(bucketID{tenant, resHour, floorHour(h.Time)}).add(h)
	}
	if h.Time < m.dayDone && h.Time >= now-int64(pol.Retention.Seconds()) {
		r.bucket(bucketID{tenant, resDay, dayStart(h.Time, pol.loc())}).add(h)
	}
	if h.Time < m.weekDone && h.Time >= now-int64(pol.Retention.Seconds()) {
		r.bucket(bucketID{tenant, resWeek, weekStart(h.Time, pol.loc())}).add(h)
	}
	return nil
}

// add counts h into b.
func (b *Bucket) add(h *Hit) { b.addSections(h, allSections) }

// allSections is the mask of every section.
const allSections = 1<<numSecs - 1

// addSections counts h into the sections of b in mask (bit s: section s),
// for a query that reads one.
func (b *Bucket) addSections(h *Hit, mask uint32) {
	if h.Bot {
		if mask&(1<<secTotal) != 0 {
			b.Total.Bots++
			b.dirty |= 1 << secTotal
		}
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
	if mask&(1<<secTotal) != 0 {
		b.Total.Counts.add(&c)
		b.dirty |= 1 << secTotal
		if active {
			b.Total.addVisitor(h.Visitor)
		}
	}
	if h.Pageview && h.Values[DimPage] != "" && mask&(1<<dimSection(DimPage)) != 0 {
		row := b.row(DimPage, h.Values[DimPage])
		row.Pageviews++
		row.addVisitor(h.Visitor)
		b.dirty |= 1 << dimSection(DimPage)
	}
	for d := DimEntryPage; d < dimGoal; d++ {
		v := h.Values[d]
		if v == "" || !sessionDim(d) || mask&(1<<dimSection(d)) == 0 {
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
	if h.Event != "" && mask&(1<<dimSection(DimEvent)) != 0 {
		row := b.row(DimEvent, h.Event)
		row.Events++
		row.addVisitor(h.Visitor)
		b.dirty |= 1 << dimSection(DimEvent)
	}
	if mask&(1<<dimSection(DimExitPage)) != 0 {
		if h.ExitFrom != "" {
			b.row(DimExitPage, h.ExitFrom).Sessions--
			b.dirty |= 1 << dimSection(DimExitPage)
		}
		if h.Exit && h.Values[DimPage] != "" {
			b.row(DimExitPage, h.Values[DimPage]).Sessions++
			b.dirty |= 1 << dimSection(DimExitPage)
		}
	}
	if mask&(1<<dimSection(dimGoal)) != 0 {
		for _, g := range h.Goals {
			row := b.row(dimGoal, g)
			row.Events++
			row.addVisitor(h.Visitor)
			b.dirty |= 1 << dimSection(dimGoal)
		}
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

// Flush writes the current message's hits to the hit log or folds them,
// runs due compactions and writes the folded counts. The shard calls it
// at the end of every log message, before the commit; seq is the
// message's stream sequence, which names its records.
func (r *Rollup) Flush(tx Tx, seq uint64) error { return r.flush(tx, seq, false) }

// FlushReplayed is Flush for the events of one tenant replayed from
// PARKED. seq is then shared by every tenant parked from the same log
// message, so it folds only the hit logs of the tenants with hits in this
// message, never another's by age: that would write the other tenant's
// records under a seq a later replay may use again.
func (r *Rollup) FlushReplayed(tx Tx, seq uint64) error { return r.flush(tx, seq, true) }

func (r *Rollup) flush(tx Tx, seq uint64, onlyMsg bool) error {
	if err := r.logHits(tx, seq, onlyMsg); err != nil {
		return err
	}
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
	if !onlyMsg {
		if err := r.settle(tx); err != nil {
			return err
		}
	}
	for t, m := range r.marks {
		if m.dirty {
			tx.Set(r.keys.marks(t), m.encode())
			m.dirty = false
		}
	}
	if r.nowSet {
		tx.Set(r.keys.clock(), binary.BigEndian.AppendUint64(nil, uint64(r.now)))
	}
	return nil
}

// minuteSettle is how long after a minute closes its fold records are
// merged into one (settle), for a query of the last hour to read one
// record per minute. Late events add records again.
const minuteSettle = 60

// settle merges the records of the minutes this run wrote more than one
// record to, once they have closed and settled, and forgets the others:
// without it, a minute keeps a record per fold (one every foldAfter
// seconds) until its hour is compacted. It runs once a minute of the
// partition's clock.
func (r *Rollup) settle(tx Tx) error {
	if !r.nowSet || floorMinute(r.now) == r.settled {
		return nil
	}
	r.settled = floorMinute(r.now)
	if !r.recordsRead {
		if err := r.readRecords(tx); err != nil {
			return err
		}
		r.recordsRead = true
	}
	ids := make([]bucketID, 0, len(r.records))
	for id, n := range r.records {
		if id.start+60+minuteSettle > r.now {
			continue
		}
		if n < 2 {
			delete(r.records, id)
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return lessID(ids[i], ids[j]) })
	for _, id := range ids {
		if err := r.consolidate(tx, id, &Bucket{}); err != nil {
			return err
		}
	}
	return nil
}

// readRecords counts, after a restart, the records of every tenant's
// minutes of the last two hours of the clock: a run that stopped left
// the fold records of the minutes it had not settled yet. Compaction has
// listed the partition's tenants by then. The counts replace those of
// this run so far, which the scan sees too.
func (r *Rollup) readRecords(tx Tx) error {
	clear(r.records)
	lo := floorHour(r.now) - 3600
	for t := range r.marks {
		err := tx.Scan(r.keys.section(t, secTotal, resMinute, lo), r.keys.section(t, secTotal, resMinute, r.now+1), func(k, _ []byte) bool {
			r.records[bucketID{t, resMinute, int64(binary.BigEndian.Uint64(k[len(k)-16:]))}]++
			return true
		})
		if err != nil {
			return fmt.Errorf("counting the minute records of %s: %w", t, err)
		}
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
		counts, sks, err := b.appendSection(s)
		if err != nil {
			return err
		}
		tx.Set(r.keys.record(id.tenant, s, id.res, id.start, seq), counts)
		tx.Set(r.keys.sketchRecord(id.tenant, s, id.res, id.start, seq), sks)
	}
	b.dirty = 0
	return nil
}

// load merges the stored records of a tenant's buckets of resolution res
// starting in [from, to) into dst (nil: none), and deletes them if del.
// Records are deleted one by one: a range deletion per consolidation
// would make every later read of the memtable fragment them all again.
func (r *Rollup) load(tx Tx, dst *Bucket, tenant string, res byte, from, to int64, del bool) error {
	for s := 0; s < numSecs; s++ {
		// A section's sketch records pair with its counts records in key
		// order.
		var sks []sketches
		err := tx.Scan(r.keys.sketchSection(tenant, s, res, from), r.keys.sketchSection(tenant, s, res, to), func(k, v []byte) bool {
			if del {
				tx.Delete(k)
			}
			if dst != nil {
				sks = append(sks, bytes.Clone(v))
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("reading rollups of %s: %w", tenant, err)
		}
		j := 0
		serr := tx.Scan(r.keys.section(tenant, s, res, from), r.keys.section(tenant, s, res, to), func(k, v []byte) bool {
			if del {
				tx.Delete(k)
			}
			if dst == nil {
				return true
			}
			if j >= len(sks) {
				err = errSection
				return false
			}
			sk := sks[j]
			j++
			err = eachRow(v, func(i int, val []byte, c *Counts) error {
				var row *Row
				if s == secTotal {
					row = &dst.Total
				} else {
					row = dst.row(Dim(s-1), string(val))
				}
				b, err := sk.at(i)
				if err != nil {
					return err
				}
				return mergeRaw(row, c, b)
			})
			return err == nil
		})
		if err == nil {
			err = serr
		}
		if err == nil && dst != nil && j != len(sks) {
			err = errSection
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
	if err := r.load(tx, all, id.tenant, id.res, id.start, id.start+1, true); err != nil {
		return err
	}
	if err := all.merge(b); err != nil {
		return err
	}
	delete(r.records, id)
	all.dirty = 1<<numSecs - 1
	return r.write(tx, id, all, 0)
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
			// A tenant whose hits are all in its hit log has no marks
			// yet: its first fold starts them at its first hit's hour.
			if _, err := r.storedMarks(tx, t); err != nil {
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
	hourDue, dayDue, weekDue := m.due(now, loc)
	dayEnd, weekEnd := nextDay(m.dayDone, loc), nextWeek(m.weekDone, loc)
	if hourDue {
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
	if weekDue {
		w := m.weekDone
		if err := r.merge(tx, bucketID{tenant, resWeek, w}, resDay, w, weekEnd, pol.RowLimit); err != nil {
			return err
		}
		m.weekDone, m.dirty = weekEnd, true
		r.expire(tx, tenant, resWeek, now-int64(pol.Retention.Seconds()))
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
	if err := r.load(tx, dst, into.tenant, res, from, to, false); err != nil {
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
	// Records of the bucket itself, if any, were merged by no one: drop
	// them (a compacted bucket is not compacted again).
	if err := r.load(tx, nil, into.tenant, into.res, into.start, into.start+1, true); err != nil {
		return err
	}
	dst.dirty = 1<<numSecs - 1
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
		tx.DeleteRange(r.keys.sketchSection(tenant, s, res, 0), r.keys.sketchSection(tenant, s, res, cutoff))
	}
	for id := range r.delta {
		if id.tenant == tenant && id.res == res && id.start < cutoff {
			delete(r.delta, id)
		}
	}
	for id := range r.records {
		if id.tenant == tenant && id.res == res && id.start < cutoff {
			delete(r.records, id) // nothing left to settle
		}
	}
}
