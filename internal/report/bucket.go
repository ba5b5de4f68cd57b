package report

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/axiomhq/hyperloglog"
)

// Counts are a row's counters. Bounces and exits are kept as changes (a
// session's second page view takes its bounce back), so one bucket can hold
// a negative value; a range holding whole sessions never does.
type Counts struct {
	Pageviews int64
	Events    int64
	// Sessions counts sessions started; in the exit_page rows, exits.
	Sessions int64
	Bounces  int64
	// DurationMs is the time sessions lasted, added as it passes.
	DurationMs int64
	// Bots counts bot events (the total row only); they are in no other
	// count.
	Bots int64
}

func (c *Counts) add(o *Counts) {
	c.Pageviews += o.Pageviews
	c.Events += o.Events
	c.Sessions += o.Sessions
	c.Bounces += o.Bounces
	c.DurationMs += o.DurationMs
	c.Bots += o.Bots
}

func (c *Counts) zero() bool { return *c == Counts{} }

// Row is the counts of one value of a dimension (or the bucket's total) and
// the sketch of its unique visitors.
type Row struct {
	Counts
	Visitors *hyperloglog.Sketch // nil until a visitor is counted
}

func (r *Row) addVisitor(h uint64) {
	if r.Visitors == nil {
		r.Visitors = newSketch()
	}
	r.Visitors.InsertHash(h)
}

// merge adds o to r.
func (r *Row) merge(o *Row) error {
	r.Counts.add(&o.Counts)
	if o.Visitors == nil {
		return nil
	}
	if r.Visitors == nil {
		r.Visitors = o.Visitors.Clone()
		return nil
	}
	return r.Visitors.Merge(o.Visitors)
}

// newSketch is every sketch's configuration: precision 14 (0.81% standard
// error), sparse while small, so one visitor costs a few bytes.
func newSketch() *hyperloglog.Sketch { return hyperloglog.New14() }

// Bucket is one tenant's counts over one time bucket in one partition.
type Bucket struct {
	Total Row
	Dims  [numDims]map[string]*Row
	// dirty has bit s set when section s changed since it was written.
	dirty uint32
}

// The sections of a bucket, each stored under its own key: the total, then
// one per dimension.
const (
	secTotal = 0
	numSecs  = 1 + int(numDims)
)

func dimSection(d Dim) int { return 1 + int(d) }

// row returns the row of value v in dimension d, creating it.
func (b *Bucket) row(d Dim, v string) *Row {
	m := b.Dims[d]
	if m == nil {
		m = make(map[string]*Row)
		b.Dims[d] = m
	}
	r, ok := m[v]
	if !ok {
		r = &Row{}
		m[v] = r
	}
	return r
}

// merge adds o to b.
func (b *Bucket) merge(o *Bucket) error {
	if err := b.Total.merge(&o.Total); err != nil {
		return err
	}
	for d, rows := range o.Dims {
		for v, r := range rows {
			if err := b.row(Dim(d), v).merge(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// Other is the value rows beyond a compacted bucket's row limit are folded into.
const Other = "(other)"

// limitRows keeps at most n rows per dimension, the busiest, and folds the
// rest into Other, so that a compacted bucket's size is bounded.
func (b *Bucket) limitRows(n int) error {
	for _, rows := range b.Dims {
		if len(rows) <= n {
			continue
		}
		vals := make([]string, 0, len(rows))
		for v := range rows {
			vals = append(vals, v)
		}
		weight := func(r *Row) int64 { return r.Pageviews + r.Events + r.Sessions }
		sort.Slice(vals, func(i, j int) bool {
			wi, wj := weight(rows[vals[i]]), weight(rows[vals[j]])
			if wi != wj {
				return wi > wj
			}
			return vals[i] < vals[j]
		})
		other := &Row{}
		for _, v := range vals[n-1:] {
			if err := other.merge(rows[v]); err != nil {
				return err
			}
			delete(rows, v)
		}
		if prev, ok := rows[Other]; ok {
			if err := other.merge(prev); err != nil {
				return err
			}
		}
		rows[Other] = other
	}
	return nil
}

const sectionVersion = 1

var errSection = errors.New("corrupt rollup section")

// appendSection encodes section s of b:
//
//	version:byte rows:uvarint { value:len+bytes counts:6×varint sketch:len+bytes }
//
// The total section holds one row with an empty value. Rows are written in
// value order, so that equal buckets encode alike.
func (b *Bucket) appendSection(dst []byte, s int) ([]byte, error) {
	dst = append(dst, sectionVersion)
	if s == secTotal {
		dst = binary.AppendUvarint(dst, 1)
		return appendRow(dst, "", &b.Total)
	}
	rows := b.Dims[s-1]
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	vals := make([]string, 0, len(rows))
	for v := range rows {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	var err error
	for _, v := range vals {
		if dst, err = appendRow(dst, v, rows[v]); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

func appendRow(dst []byte, v string, r *Row) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	dst = append(dst, v...)
	for _, c := range [...]int64{r.Pageviews, r.Events, r.Sessions, r.Bounces, r.DurationMs, r.Bots} {
		dst = binary.AppendVarint(dst, c)
	}
	if r.Visitors == nil {
		return append(dst, 0), nil
	}
	// The sketch's length is not known before it is encoded: reserve the
	// longest uvarint a sketch can need (3 bytes) and fill it in after.
	at := len(dst)
	dst = append(dst, 0, 0, 0)
	dst, err := r.Visitors.AppendBinary(dst)
	if err != nil {
		return nil, fmt.Errorf("encoding a visitor sketch: %w", err)
	}
	n := len(dst) - at - 3
	if n >= 1<<21 {
		return nil, errors.New("encoding a visitor sketch: too large")
	}
	dst[at], dst[at+1], dst[at+2] = byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)
	return dst, nil
}

// eachRow calls fn for every row of an encoded section; value and sketch
// point into b.
func eachRow(b []byte, fn func(value []byte, c *Counts, sketch []byte) error) error {
	if len(b) == 0 || b[0] != sectionVersion {
		return errSection
	}
	b = b[1:]
	u := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	n, ok := u()
	if !ok {
		return errSection
	}
	var c Counts
	for ; n > 0; n-- {
		l, ok := u()
		if !ok || l > uint64(len(b)) {
			return errSection
		}
		value := b[:l]
		b = b[l:]
		for _, p := range [...]*int64{&c.Pageviews, &c.Events, &c.Sessions, &c.Bounces, &c.DurationMs, &c.Bots} {
			v, k := binary.Varint(b)
			if k <= 0 {
				return errSection
			}
			*p, b = v, b[k:]
		}
		l, ok = u()
		if !ok || l > uint64(len(b)) {
			return errSection
		}
		sketch := b[:l]
		b = b[l:]
		if err := fn(value, &c, sketch); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return errSection
	}
	return nil
}

func decodeSketch(b []byte) (*hyperloglog.Sketch, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := &hyperloglog.Sketch{}
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decoding a visitor sketch: %w", err)
	}
	return s, nil
}

// decodeSection reads an encoded section s into b.
func (b *Bucket) decodeSection(s int, data []byte) error {
	return eachRow(data, func(value []byte, c *Counts, sketch []byte) error {
		sk, err := decodeSketch(sketch)
		if err != nil {
			return err
		}
		r := &Row{Counts: *c, Visitors: sk}
		if s == secTotal {
			b.Total = *r
			return nil
		}
		if b.Dims[s-1] == nil {
			b.Dims[s-1] = make(map[string]*Row)
		}
		b.Dims[s-1][string(value)] = r
		return nil
	})
}
