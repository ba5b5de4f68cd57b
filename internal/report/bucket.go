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
	// merged is how many visitors the sketches merged into Visitors held,
	// summed: once it passes denseAfter, Visitors is made dense.
	merged uint64
	dense  bool
}

// denseAfter is how many merged visitors make a sketch dense. A sparse
// sketch re-sorts its list on every merge, so merging many large ones (an
// hour's minutes, a month's days) is quadratic; a dense one takes the
// maximum per register. Sparse, 4096 visitors take about as many bytes as
// a dense sketch's 16 KiB.
const denseAfter = 4096

func (r *Row) addVisitor(h uint64) {
	if r.Visitors == nil {
		r.Visitors = newSketch()
	}
	r.Visitors.InsertHash(h)
}

// densify makes a sketch of more than denseAfter visitors dense: about
// as large as sparse, and much faster to decode and merge.
func (r *Row) densify() error {
	if r.dense || r.Visitors == nil || r.Visitors.Estimate() <= denseAfter {
		return nil
	}
	d := hyperloglog.NewNoSparse()
	if err := d.Merge(r.Visitors); err != nil {
		return err
	}
	r.Visitors, r.dense = d, true
	return nil
}

// merge adds o to r.
func (r *Row) merge(o *Row) error {
	r.Counts.add(&o.Counts)
	return r.mergeSketch(o.Visitors, true)
}

// mergeSketch adds sk's visitors to r's; with clone false, r may keep sk.
func (r *Row) mergeSketch(sk *hyperloglog.Sketch, clone bool) error {
	if sk == nil {
		return nil
	}
	if r.Visitors == nil {
		if clone {
			sk = sk.Clone()
		}
		r.Visitors, r.merged = sk, sk.Estimate()
		return nil
	}
	if !r.dense {
		r.merged += sk.Estimate()
		if r.merged > denseAfter {
			d := hyperloglog.NewNoSparse()
			if err := d.Merge(r.Visitors); err != nil {
				return err
			}
			r.Visitors, r.dense = d, true
		}
	}
	return r.Visitors.Merge(sk)
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

// mergeRaw adds a stored row, its counts and encoded sketch, to dst.
func mergeRaw(dst *Row, c *Counts, sketch []byte) error {
	dst.Counts.add(c)
	if len(sketch) == 0 {
		return nil
	}
	sk, err := decodeSketch(sketch)
	if err != nil {
		return err
	}
	return dst.mergeSketch(sk, false)
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

const sectionVersion = 2

var errSection = errors.New("corrupt rollup section")

// appendSection encodes section s of b as two records, so that ranking
// rows reads no sketches:
//
//	counts:   version:byte rows:uvarint { value:len+bytes counts:6×varint }
//	sketches: version:byte rows:uvarint offsets:(rows+1)×4 bytes { sketch }
//
// The offsets (little-endian, from the first sketch) locate row i's sketch
// at [offsets[i], offsets[i+1]); a row without visitors has an empty one.
// The total section holds one row with an empty value. Rows are written in
// value order, so that equal buckets encode alike.
func (b *Bucket) appendSection(s int) (counts, sketches []byte, err error) {
	var vals []string
	var rows []*Row
	if s == secTotal {
		vals, rows = []string{""}, []*Row{&b.Total}
	} else {
		m := b.Dims[s-1]
		vals = make([]string, 0, len(m))
		for v := range m {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		rows = make([]*Row, len(vals))
		for i, v := range vals {
			rows[i] = m[v]
		}
	}
	counts = binary.AppendUvarint([]byte{sectionVersion}, uint64(len(rows)))
	sketches = binary.AppendUvarint([]byte{sectionVersion}, uint64(len(rows)))
	offsets := len(sketches)
	sketches = append(sketches, make([]byte, 4*(len(rows)+1))...)
	data := len(sketches)
	for i, r := range rows {
		counts = binary.AppendUvarint(counts, uint64(len(vals[i])))
		counts = append(counts, vals[i]...)
		for _, c := range [...]int64{r.Pageviews, r.Events, r.Sessions, r.Bounces, r.DurationMs, r.Bots} {
			counts = binary.AppendVarint(counts, c)
		}
		if r.Visitors != nil {
			if err := r.densify(); err != nil {
				return nil, nil, err
			}
			if sketches, err = r.Visitors.AppendBinary(sketches); err != nil {
				return nil, nil, fmt.Errorf("encoding a visitor sketch: %w", err)
			}
		}
		binary.LittleEndian.PutUint32(sketches[offsets+4*(i+1):], uint32(len(sketches)-data))
	}
	return counts, sketches, nil
}

// eachRow calls fn for every row of an encoded counts record, with the
// row's index; value points into b.
func eachRow(b []byte, fn func(i int, value []byte, c *Counts) error) error {
	if len(b) == 0 || b[0] != sectionVersion {
		return errSection
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return errSection
	}
	b = b[k:]
	var c Counts
	for i := 0; uint64(i) < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return errSection
		}
		value := b[k : k+int(l)]
		b = b[k+int(l):]
		for _, p := range [...]*int64{&c.Pageviews, &c.Events, &c.Sessions, &c.Bounces, &c.DurationMs, &c.Bots} {
			v, k := binary.Varint(b)
			if k <= 0 {
				return errSection
			}
			*p, b = v, b[k:]
		}
		if err := fn(i, value, &c); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return errSection
	}
	return nil
}

// sketches is an encoded sketch record.
type sketches []byte

// rows returns the number of rows of the record and its offsets and data.
func (s sketches) rows() (int, []byte, error) {
	if len(s) == 0 || s[0] != sectionVersion {
		return 0, nil, errSection
	}
	n, k := binary.Uvarint(s[1:])
	if k <= 0 || n > uint64(len(s)) || 1+k+4*(int(n)+1) > len(s) {
		return 0, nil, errSection
	}
	return int(n), s[1+k:], nil
}

// at returns the encoded sketch of row i (empty if it has none).
func (s sketches) at(i int) ([]byte, error) {
	n, offs, err := s.rows()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= n {
		return nil, errSection
	}
	data := offs[4*(n+1):]
	lo, hi := binary.LittleEndian.Uint32(offs[4*i:]), binary.LittleEndian.Uint32(offs[4*(i+1):])
	if lo > hi || int(hi) > len(data) {
		return nil, errSection
	}
	return data[lo:hi], nil
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
