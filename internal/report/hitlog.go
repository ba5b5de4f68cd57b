package report

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// The hit log. Counting an event into a dozen rows with visitor sketches
// costs microseconds, and writing the rows a log message changed costs a
// record per bucket section, most of it sketch headers when a message
// holds a handful of events. So a message's hits are first written as one
// compact record per tenant, and folded into bucket records once a tenant
// has gathered foldHits of them or the oldest is foldAfter old (by the
// partition's clock), or before its buckets are compacted. The hit log is
// part of the shard's state like the buckets: it is written in the
// message's batch, and queries count the hits still in it, so reports stay
// fresh to the last committed message.
const (
	foldHits  = 1024
	foldAfter = 5 // seconds
)

const hitLogVersion = 1

var errHitLog = errors.New("corrupt rollup hit log")

// Flags of an encoded hit.
const (
	hitBot = 1 << iota
	hitPageview
	hitNewSession
	hitExit
)

// msgHits is one tenant's hits in the current log message, encoded.
type msgHits struct {
	buf []byte
	n   int
}

// pending is what a tenant has in the stored hit log.
type pending struct {
	hits  int
	since int64  // the partition's clock when the oldest record was written
	first uint64 // the oldest record's sequence
}

// appendHit encodes h:
//
//	flags:byte time:varint visitor:8 bounce durationMs:varint known:uvarint
//	sessionBounce sessionMs:varint event values[numDims] exitFrom:string
//	goals:uvarint {string}
//
// with strings as uvarint length and bytes.
func appendHit(dst []byte, h *Hit) []byte {
	var f byte
	if h.Bot {
		f |= hitBot
	}
	if h.Pageview {
		f |= hitPageview
	}
	if h.NewSession {
		f |= hitNewSession
	}
	if h.Exit {
		f |= hitExit
	}
	dst = append(dst, f)
	dst = binary.AppendVarint(dst, h.Time)
	dst = binary.LittleEndian.AppendUint64(dst, h.Visitor)
	dst = binary.AppendVarint(dst, h.Bounce)
	dst = binary.AppendVarint(dst, h.DurationMs)
	dst = binary.AppendUvarint(dst, uint64(h.Known))
	dst = binary.AppendVarint(dst, h.SessionBounce)
	dst = binary.AppendVarint(dst, h.SessionMs)
	dst = appendString(dst, h.Event)
	for _, v := range &h.Values {
		dst = appendString(dst, v)
	}
	dst = appendString(dst, h.ExitFrom)
	dst = binary.AppendUvarint(dst, uint64(len(h.Goals)))
	for _, g := range h.Goals {
		dst = appendString(dst, g)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendHitRecord encodes a stored hit-log record: a version, the clock
// when it was written, the number of hits, then the hits.
func appendHitRecord(dst []byte, now int64, m *msgHits) []byte {
	dst = append(dst, hitLogVersion)
	dst = binary.AppendVarint(dst, now)
	dst = binary.AppendUvarint(dst, uint64(m.n))
	return append(dst, m.buf...)
}

// hitRecordHeader returns a record's clock and hit count, and its hits.
func hitRecordHeader(b []byte) (now int64, n int, hits []byte, err error) {
	if len(b) == 0 || b[0] != hitLogVersion {
		return 0, 0, nil, errHitLog
	}
	b = b[1:]
	now, k := binary.Varint(b)
	if k <= 0 {
		return 0, 0, nil, errHitLog
	}
	b = b[k:]
	c, k := binary.Uvarint(b)
	if k <= 0 || c > uint64(len(b)) {
		return 0, 0, nil, errHitLog
	}
	return now, int(c), b[k:], nil
}

// hitDecoder reads encoded hits. The strings of the hits it returns point
// into its data, which must not change while they are in use.
type hitDecoder struct {
	b   []byte
	err error
}

// next decodes the next hit into h; it returns false at the end or on an
// error (in d.err). h.Goals is reused.
func (d *hitDecoder) next(h *Hit) bool {
	if len(d.b) == 0 || d.err != nil {
		return false
	}
	goals := h.Goals[:0]
	*h = Hit{}
	f := d.b[0]
	d.b = d.b[1:]
	h.Bot, h.Pageview, h.NewSession, h.Exit = f&hitBot != 0, f&hitPageview != 0, f&hitNewSession != 0, f&hitExit != 0
	h.Time = d.varint()
	if len(d.b) < 8 {
		d.err = errHitLog
		return false
	}
	h.Visitor = binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	h.Bounce, h.DurationMs = d.varint(), d.varint()
	h.Known = uint32(d.uvarint())
	h.SessionBounce, h.SessionMs = d.varint(), d.varint()
	h.Event = d.string()
	for i := range h.Values {
		h.Values[i] = d.string()
	}
	h.ExitFrom = d.string()
	for n := d.uvarint(); n > 0 && d.err == nil; n-- {
		goals = append(goals, d.string())
	}
	h.Goals = goals
	return d.err == nil
}

func (d *hitDecoder) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errHitLog
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *hitDecoder) uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errHitLog
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *hitDecoder) string() string {
	l := d.uvarint()
	if d.err != nil || l > uint64(len(d.b)) {
		d.err = errHitLog
		return ""
	}
	if l == 0 {
		return ""
	}
	s := unsafe.String(&d.b[0], int(l)) // d.b is not changed while hits are in use
	d.b = d.b[l:]
	return s
}

// eachHit calls fn with every hit of the stored records of tenant's hit
// log from sequence from on, and the clock when it was logged, and record
// (if not nil) with every record's key. The hits' strings stay valid after
// the call: each record is copied.
func eachHit(scan func(lower, upper []byte, fn func(key, value []byte) bool) error, k keys, tenant string, from uint64,
	record func(key []byte), fn func(h *Hit, now int64)) error {
	lo, hi := k.hitRecord(tenant, from), k.hitLogEnd(tenant)
	var err error
	serr := scan(lo, hi, func(key, v []byte) bool {
		if record != nil {
			record(key)
		}
		now, _, hits, e := hitRecordHeader(v)
		if e != nil {
			err = e
			return false
		}
		err = decodeHits(bytes.Clone(hits), func(h *Hit) { fn(h, now) })
		return err == nil
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("reading the rollup hit log of %s: %w", tenant, err)
	}
	return nil
}

// decodeHits calls fn with every hit encoded in b; their strings point into b.
func decodeHits(b []byte, fn func(h *Hit)) error {
	d := hitDecoder{b: b}
	var h Hit
	for d.next(&h) {
		fn(&h)
	}
	return d.err
}

// loadPending reads what every tenant has in the stored hit log, once
// after a Reset.
func (r *Rollup) loadPending(tx Tx) error {
	if r.pendLoaded {
		return nil
	}
	lo, hi := r.keys.hitLogs()
	var err error
	serr := tx.Scan(lo, hi, func(k, v []byte) bool {
		rest := k[len(lo):]
		i := bytes.IndexByte(rest, '/')
		if i < 0 || len(rest) != i+9 {
			err = errHitLog
			return false
		}
		now, n, _, e := hitRecordHeader(v)
		if e != nil {
			err = e
			return false
		}
		p := r.pending(string(rest[:i]))
		if p.hits == 0 {
			p.since, p.first = now, binary.BigEndian.Uint64(rest[i+1:])
		}
		p.hits += n
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("reading the rollup hit log: %w", err)
	}
	r.pendLoaded = true
	return nil
}

func (r *Rollup) pending(tenant string) *pending {
	p, ok := r.pend[tenant]
	if !ok {
		p = &pending{}
		r.pend[tenant] = p
	}
	return p
}

// logHits writes the message's hits of every tenant to its hit log, or
// folds the tenant's hit log with them into r.delta when it is due: by
// size, by age, or because the tenant's buckets are due to be compacted.
// With onlyMsg, tenants without hits in the message are left alone.
func (r *Rollup) logHits(tx Tx, seq uint64, onlyMsg bool) error {
	if err := r.loadPending(tx); err != nil {
		return err
	}
	tenants := make([]string, 0, len(r.msg)+len(r.pend))
	for t, m := range r.msg {
		if m.n > 0 {
			tenants = append(tenants, t)
		}
	}
	for t, p := range r.pend {
		if !onlyMsg && p.hits > 0 && (r.msg[t] == nil || r.msg[t].n == 0) {
			tenants = append(tenants, t)
		}
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		m, p := r.msg[t], r.pending(t)
		n := p.hits
		if m != nil {
			n += m.n
		}
		due := n >= foldHits || p.hits > 0 && r.now >= p.since+foldAfter
		if !due {
			var err error
			if due, err = r.compactionDue(tx, t); err != nil {
				return err
			}
		}
		switch {
		case due:
			if err := r.fold(tx, t, m, seq); err != nil {
				return err
			}
		case m != nil && m.n > 0:
			tx.Set(r.keys.hitRecord(t, seq), appendHitRecord(nil, r.now, m))
			// A tenant's events replayed from PARKED come after other
			// tenants' messages with higher sequences, which may have
			// folded its hit log: reads must start at this record.
			if mk := r.marks[t]; mk != nil && mk.hitFrom > seq {
				mk.hitFrom, mk.dirty = seq, true
			}
			if p.hits == 0 {
				p.since, p.first = r.now, seq
				// The index lists every tenant with hits in the
				// partition, folded or not: when a fold comes depends
				// on the order the hits came in (a replay from PARKED
				// logs them late), the index must not.
				tx.Set(r.keys.tenant(t), nil)
			}
			p.hits += m.n
		}
		if m != nil {
			m.buf, m.n = m.buf[:0], 0
		}
	}
	return nil
}

// storedMarks returns a tenant's marks, loaded if stored; nil for a
// tenant none of whose hits was folded yet.
func (r *Rollup) storedMarks(tx Tx, tenant string) (*marks, error) {
	if m, ok := r.marks[tenant]; ok {
		return m, nil
	}
	v, err := tx.Get(r.keys.marks(tenant))
	if err != nil {
		return nil, fmt.Errorf("reading rollup marks: %w", err)
	}
	m := decodeMarks(v)
	if m != nil {
		r.marks[tenant] = m
	}
	return m, nil
}

// compactionDue says whether tenant has buckets due to be compacted.
func (r *Rollup) compactionDue(tx Tx, tenant string) (bool, error) {
	m, ok := r.marks[tenant]
	if !ok {
		v, err := tx.Get(r.keys.marks(tenant))
		if err != nil {
			return false, fmt.Errorf("reading rollup marks: %w", err)
		}
		if v == nil {
			return false, nil // a tenant new to the partition
		}
		pol := r.policy(tenant)
		if m, err = r.tenantMarks(tx, tenant, r.now, pol); err != nil {
			return false, err
		}
	}
	hour, day, week := m.due(r.now, r.policy(tenant).loc())
	return hour || day || week, nil
}

// fold counts tenant's stored hit log and the hits m of message seq (nil:
// none) into r.delta, and deletes the hit log.
func (r *Rollup) fold(tx Tx, tenant string, m *msgHits, seq uint64) error {
	pol := r.policy(tenant)
	var err error
	place := func(h *Hit, now int64) {
		if err == nil {
			err = r.place(tx, tenant, h, now, pol)
		}
	}
	p := r.pending(tenant)
	if p.hits > 0 {
		// Records are deleted one by one, like bucket records (load).
		if e := eachHit(tx.Scan, r.keys, tenant, p.first, tx.Delete, place); e != nil {
			return e
		}
		p.hits, p.since, p.first = 0, 0, 0
	}
	if m != nil && m.n > 0 {
		if e := decodeHits(bytes.Clone(m.buf), func(h *Hit) { place(h, r.now) }); e != nil {
			return fmt.Errorf("folding rollup hits of %s: %w", tenant, e)
		}
	}
	if err != nil {
		return err
	}
	// Placing a hit loaded the tenant's marks.
	if mk := r.marks[tenant]; mk != nil {
		mk.hitFrom, mk.dirty = seq+1, true
	}
	return nil
}
