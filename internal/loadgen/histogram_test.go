package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	require.Less(t, bucketOf(math.MaxInt64), histBuckets)
	require.Equal(t, histBuckets-1, bucketOf(math.MaxInt64))
	for i := range histBuckets - 1 {
		high := bucketHigh(i)
		if bucketOf(high) != i || bucketOf(high+1) != i+1 {
			t.Fatalf("bucket %d ends at %d, which is in bucket %d, followed by bucket %d", i, high, bucketOf(high), bucketOf(high+1))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := rng.Uint64() >> (1 + rng.IntN(63)) // durations are below 2^63
		high := bucketHigh(bucketOf(v))
		if high < v || float64(high-v) >= float64(v)/128+1 {
			t.Fatalf("%d is in a bucket ending at %d", v, high)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	// Two histograms merged, with a log-normal spread from microseconds to
	// seconds, like request latencies with a tail.
	var a, b histogram
	var all []time.Duration
	for i := range 50000 {
		d := time.Duration(math.Exp(rng.NormFloat64()*1.5+math.Log(2e6)) + 1)
		all = append(all, d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	slices.Sort(all)
	require.Equal(t, uint64(len(all)), a.n)
	require.Equal(t, all[len(all)-1], a.max)
	for _, q := range []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(math.Ceil(q*float64(len(all)))), 1)
		want := all[rank-1]
		got := a.quantile(q)
		require.InEpsilon(t, float64(want), float64(got), 0.01, "q=%v", q)
		require.GreaterOrEqual(t, got, want, "q=%v", q)
	}
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	require.Equal(t, sum/time.Duration(len(all)), a.mean())
}

func TestHistogramSmall(t *testing.T) {
	t.Parallel()
	var h histogram
	require.Zero(t, h.quantile(0.5))
	require.Zero(t, h.mean())
	for _, d := range []time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, -time.Second} {
		h.record(d)
	}
	require.Equal(t, time.Duration(0), h.quantile(0.25))
	require.InEpsilon(t, float64(time.Millisecond), float64(h.quantile(0.5)), 0.01)
	require.InEpsilon(t, float64(3*time.Millisecond), float64(h.quantile(0.75)), 0.01)
	require.Equal(t, 5*time.Millisecond, h.quantile(0.99))
}
