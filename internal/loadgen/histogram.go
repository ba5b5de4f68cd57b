package loadgen

import (
	"math/bits"
	"time"
)

// histogram records durations in a log-linear layout: values below 256ns
// exactly, larger ones in buckets whose width is at most 1/128 of their
// lower bound, so a quantile read from it is within 0.8% of the true value.
// It has a fixed size (7296 counters) whatever the number of samples.
//
// A histogram is not safe for concurrent use: each worker owns one, and
// they are merged after the workers have finished.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	// The largest value, 2^63-1, is shifted by 63-1-histSubBits and lands
	// in the last bucket of that shift.
	histBuckets = (63-1-histSubBits)*histSub + 2*histSub
)

// bucketOf returns the bucket of v: v itself below 2*histSub, then histSub
// buckets per power of two.
func bucketOf(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - histSubBits
	return shift*histSub + int(v>>uint(shift))
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	low := uint64(i-shift*histSub) << uint(shift)
	return low + (1 << uint(shift)) - 1
}

// record adds one observation; negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// merge adds the observations of o to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below or at which a fraction q of the
// observations fall (the nearest-rank definition), or 0 when empty. The
// result is the top of the bucket holding that observation, never more than
// the largest observation.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999) // ceil without float surprises on exact products
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}

// mean returns the average observation, or 0 when empty.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
