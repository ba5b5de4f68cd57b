package metrics

import (
	"fmt"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// CumulativeBuckets returns the upper bounds and cumulative counts of a
// classic histogram, with a +Inf bucket last.
func CumulativeBuckets(h *dto.Histogram) (bounds, counts []float64, err error) {
	for _, bk := range h.GetBucket() {
		c := float64(bk.GetCumulativeCount())
		if bk.CumulativeCountFloat != nil {
			c = bk.GetCumulativeCountFloat()
		}
		if n := len(bounds); n > 0 && (bk.GetUpperBound() <= bounds[n-1] || c < counts[n-1]) {
			return nil, nil, fmt.Errorf("bucket le=%g after le=%g: bounds and counts must ascend", bk.GetUpperBound(), bounds[n-1])
		}
		bounds = append(bounds, bk.GetUpperBound())
		counts = append(counts, c)
	}
	if n := len(bounds); n == 0 || !math.IsInf(bounds[n-1], 1) {
		total := float64(h.GetSampleCount())
		if h.SampleCountFloat != nil {
			total = h.GetSampleCountFloat()
		}
		bounds = append(bounds, math.Inf(1))
		counts = append(counts, total)
	}
	return bounds, counts, nil
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the observations counted
// in cumulative buckets (the last one +Inf), as Prometheus's
// histogram_quantile does: it finds the bucket that holds the observation
// of rank q·total and interpolates linearly between the bucket's bounds,
// as if its observations were spread evenly (the first bucket starts at
// 0). When that bucket is the +Inf one, it returns the largest finite
// bound and above: the quantile is beyond it. ok is false without
// observations.
func Quantile(bounds, counts []float64, q float64) (v float64, above, ok bool) {
	if len(counts) == 0 || len(bounds) < 2 || counts[len(counts)-1] <= 0 {
		return 0, false, false
	}
	rank := q * counts[len(counts)-1]
	i, _ := slices.BinarySearch(counts, rank) // the first bucket whose cumulative count reaches rank
	i = min(i, len(counts)-1)
	if math.IsInf(bounds[i], 1) {
		return bounds[i-1], true, true
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = bounds[i-1], counts[i-1]
	}
	upper := bounds[i]
	if i == 0 && upper <= 0 {
		return upper, false, true // nothing to interpolate from
	}
	inBucket := counts[i] - below
	if inBucket <= 0 {
		return lower, false, true
	}
	return lower + (upper-lower)*(rank-below)/inBucket, false, true
}
