package report

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/axiomhq/hyperloglog"
)

// A query merges thousands of the rollups' visitor sketches (a 30-day
// breakdown: every row's sketch of every bucket of every partition) into a
// few results. Decoding each into a hyperloglog.Sketch to merge it cost
// more than everything else a query does: the sparse ones allocate a set
// and a list each. A query's result is therefore a bare register array,
// and the encoded sketches are merged into it as they are stored, in the
// library's documented format (version 2, see
// hyperloglog.Sketch.UnmarshalBinary), with the same validation. The
// library still inserts and encodes.

const (
	sketchP      = 14               // newSketch's precision
	sketchPP     = 25               // the library's sparse precision, pinned by version 2
	numRegisters = 1 << sketchP     // dense registers
	maxRho       = 64 - sketchP + 1 // the largest valid register value
	sparseLimit  = uint32(1) << 25  // a compressed list holds fewer entries
	encodedDense = 8 + numRegisters // the length of a dense version 2 sketch
	sketchHeader = "\x02\x0e\x00"   // version 2, precision 14, no bias
)

// registers are the dense HyperLogLog registers of a query's visitors.
type registers [numRegisters]uint8

// mergeEncoded merges an encoded sketch into r. Every stored sketch is
// of version 2 and precision 14 (the library has written no other since
// the rollups began); anything else is an error.
func (r *registers) mergeEncoded(b []byte) error {
	if len(b) < 8 || string(b[:3]) != sketchHeader {
		return fmt.Errorf("decoding a visitor sketch: not a version 2 sketch of precision %d: %w", sketchP, hyperloglog.ErrorInvalidData)
	}
	switch b[3] {
	case 0:
		if len(b) != encodedDense || binary.BigEndian.Uint32(b[4:8]) != numRegisters {
			return fmt.Errorf("decoding a visitor sketch: dense sketch of %d bytes: %w", len(b), hyperloglog.ErrorInvalidData)
		}
		if !r.mergeDense(b[8:]) {
			return fmt.Errorf("decoding a visitor sketch: register value above %d: %w", maxRho, hyperloglog.ErrorInvalidData)
		}
		return nil
	case 1:
		return r.mergeSparse(b[4:])
	default:
		return fmt.Errorf("decoding a visitor sketch: header byte 3 = %d: %w", b[3], hyperloglog.ErrorInvalidData)
	}
}

// mergeSparse merges a sparse payload: the tmp set's keys, then the
// compressed list of delta-encoded keys.
func (r *registers) mergeSparse(b []byte) error {
	bad := func(what string) error {
		return fmt.Errorf("decoding a visitor sketch: %s: %w", what, hyperloglog.ErrorInvalidData)
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n)*4 > uint64(len(b)) || n > numRegisters {
		return bad("tmp set size")
	}
	for i := range n {
		if !r.insertKey(binary.BigEndian.Uint32(b[4*i:])) {
			return bad("tmp set key")
		}
	}
	b = b[4*n:]
	if len(b) < 12 {
		return bad("compressed list header")
	}
	count, last, size := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if uint64(size) != uint64(len(b)) || count >= sparseLimit || size < count || uint64(size) > 5*uint64(count) {
		return bad("compressed list size")
	}
	var key uint32
	var entries uint32
	for i := 0; i < len(b); entries++ {
		d, next, ok := uvarint32(b, i)
		if !ok || entries > 0 && d == 0 || key+d < key {
			return bad("compressed list entry")
		}
		key += d
		if !r.insertKey(key) {
			return bad("compressed list key")
		}
		i = next
	}
	if entries != count || key != last {
		return bad("compressed list count")
	}
	return nil
}

// insertKey merges one sparse key; false if it decodes to an invalid
// register value.
func (r *registers) insertKey(k uint32) bool {
	var idx uint32
	var rho uint8
	if k&1 == 1 {
		idx = k >> (32 - sketchP) & (numRegisters - 1)
		rho = uint8(k>>1&0x3f) + sketchPP - sketchP
	} else {
		idx = k >> (sketchPP - sketchP + 1) & (numRegisters - 1)
		rho = uint8(bits.LeadingZeros32(k<<(32-sketchPP+sketchP-1))) + 1
	}
	if rho > maxRho {
		return false
	}
	r[idx] = max(r[idx], rho)
	return true
}

// uvarint32 decodes the minimally encoded varint of at most 5 bytes at
// b[i:], as the library writes them.
func uvarint32(b []byte, i int) (x uint32, next int, ok bool) {
	for j := i; j < len(b) && j-i < 5; j++ {
		x |= uint32(b[j]&0x7f) << (uint(j-i) * 7)
		if b[j]&0x80 == 0 {
			n := j - i + 1
			if n == 5 && b[j] > 0x0f || n > 1 && b[j] == 0 {
				return 0, 0, false
			}
			return x, j + 1, true
		}
	}
	return 0, 0, false
}

// Eight registers at a time: every valid register is below 0x80, so a
// byte-wise comparison of two words cannot borrow across bytes.
const (
	ones  = 0x0101010101010101
	highs = 0x80 * ones
)

// mergeDense takes the maximum of r's registers and the numRegisters
// register bytes of d; false if one of d's is invalid (r is then partly
// merged).
func (r *registers) mergeDense(d []byte) bool {
	d = d[:numRegisters]
	var bad uint64
	for i := 0; i < numRegisters; i += 8 {
		a, b := binary.LittleEndian.Uint64(r[i:]), binary.LittleEndian.Uint64(d[i:])
		bad |= b&highs | (b+(0x80-maxRho-1)*ones)&highs
		ge := ((a | highs) - (b &^ highs)) & highs // high bit set where a >= b
		m := (ge >> 7) * 0xff
		binary.LittleEndian.PutUint64(r[i:], a&m|b&^m)
	}
	return bad == 0
}

// merge adds o's visitors to r's.
func (r *registers) merge(o *registers) { r.mergeDense(o[:]) }

// estimate is the library's estimate of dense registers: LogLog-Beta
// (Qin et al., 2016) with its bias correction for precision 14. The
// library sums the registers with a math.Pow each, 16,384 per estimate,
// which cost a report more than merging its rows; here a histogram of the
// registers gives the same sum (every partial sum of powers of two between
// 2^14 and 2^-39 is exact, so the order does not matter).
// TestRegistersMergeAsTheLibrary holds the two to the same answers.
func (r *registers) estimate() int64 {
	var hist [maxRho + 1]int
	for _, v := range r {
		hist[v]++
	}
	var sum float64
	for v, n := range hist {
		sum += float64(n) * math.Ldexp(1, -v)
	}
	const m = float64(numRegisters)
	ez := float64(hist[0])
	alpha := 0.7213 / (1 + 1.079/m)
	return int64(alpha*m*(m-ez)/(sum+beta14(ez)) + 0.5)
}

// beta14 is LogLog-Beta's correction for precision 14: a polynomial in
// log(ez+1) of the number of zero registers, with the paper's
// coefficients.
func beta14(ez float64) float64 {
	zl := math.Log(ez + 1)
	coef := [...]float64{0.00978811941207509, 0.185796293324165, 0.203015527328432,
		-0.116710521803686, 0.0431106699492820, -0.00599583540511831, 0.000449704299509437}
	out := -0.371009760230692*ez + coef[0]*zl
	for i, c := range coef[1:] {
		out += c * math.Pow(zl, float64(i+2)) // as the library: the same rounding
	}
	return out
}

// result is a query's row: counts, and the registers of its visitors
// (nil while none are counted).
type result struct {
	Counts
	visitors *registers
}

// add adds a stored row: its counts and its encoded sketch.
func (r *result) add(c *Counts, sketch []byte) error {
	r.Counts.add(c)
	if len(sketch) == 0 {
		return nil
	}
	if r.visitors == nil {
		r.visitors = new(registers)
	}
	return r.visitors.mergeEncoded(sketch)
}

// merge adds o to r.
func (r *result) merge(o *result) {
	r.Counts.add(&o.Counts)
	if o.visitors == nil {
		return
	}
	if r.visitors == nil {
		r.visitors = new(registers)
	}
	r.visitors.merge(o.visitors)
}

// uniques estimates r's unique visitors.
func (r *result) uniques() int64 {
	if r.visitors == nil {
		return 0
	}
	return r.visitors.estimate()
}
