package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/contrailhq/contrail/internal/metrics"
)

// The series Run reads from the server's /metrics. The shard series are
// created when a shard first applies a message, so a node that runs shards
// but has not processed anything yet shows none of them, just like a
// collector-only node.
const (
	cpuMetric       = "process_cpu_seconds_total"
	acceptedMetric  = "contrail_collect_events_accepted_total"     // {tenant}
	processedMetric = "contrail_shard_events_processed_total"      // {stream, tenant}
	deadMetric      = "contrail_shard_events_dead_total"           // {stream, tenant}
	lagMetric       = "contrail_shard_lag_messages"                // {stream, partition}
	latencyMetric   = "contrail_shard_ingest_to_processed_seconds" // {stream}
	shardPrefix     = "contrail_shard_"
	// eventsStream is the stream whose shards process what the collector
	// accepted; series of other streams are left out.
	eventsStream = "EVENTS"
)

// serverMetrics is one scrape of the server's /metrics, reduced to what a
// run reports.
type serverMetrics struct {
	// at is when the answer arrived.
	at time.Time
	// cpu sums the process_cpu_seconds_total series (one per process; a
	// federating endpoint may expose several).
	cpu float64
	// shards reports whether any contrail_shard_ series was exposed.
	shards bool
	// accepted, processed and dead are event counters by tenant label;
	// processed and dead of the EVENTS stream only.
	accepted, processed, dead map[string]float64
	// lag sums the lag gauges of the EVENTS partitions, in log messages.
	lag float64
	// latency is the ingest-to-processed histogram of the EVENTS stream,
	// and latencySum the sum of its observations in seconds.
	latency    buckets
	latencySum float64
	// campaigns are the campaign and delivery series.
	campaigns campaignMetrics
}

// buckets are the cumulative buckets of a Prometheus histogram.
type buckets struct {
	// bounds are the upper bounds in ascending order, the last +Inf.
	bounds []float64
	// counts are the cumulative counts, one per bound.
	counts []float64
}

// scrape fetches and parses the server's /metrics.
func scrape(ctx context.Context, client *http.Client, url string) (serverMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return serverMetrics{}, fmt.Errorf("building metrics request: %w", err)
	}
	// Ask for the text format only: the parser reads nothing else.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return serverMetrics{}, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return serverMetrics{}, fmt.Errorf("fetching %s: status %s", url, resp.Status)
	}
	m, err := parseMetrics(io.LimitReader(resp.Body, 64<<20))
	m.at = time.Now()
	return m, err
}

// parseMetrics reads a Prometheus text exposition. It fails when the text
// is malformed or has no process_cpu_seconds_total series; the shard and
// collector series are optional.
func parseMetrics(r io.Reader) (serverMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return serverMetrics{}, fmt.Errorf("parsing metrics: %w", err)
	}
	m := serverMetrics{
		accepted: map[string]float64{}, processed: map[string]float64{}, dead: map[string]float64{},
		campaigns: newCampaignMetrics(),
	}
	cpu, ok := fams[cpuMetric]
	if !ok {
		return serverMetrics{}, fmt.Errorf("reading metrics: no %s series", cpuMetric)
	}
	for _, s := range cpu.GetMetric() {
		m.cpu += value(s)
	}
	for name := range fams {
		if strings.HasPrefix(name, shardPrefix) {
			m.shards = true
			break
		}
	}
	for _, s := range fams[acceptedMetric].GetMetric() {
		m.accepted[label(s, "tenant")] += value(s)
	}
	for _, s := range fams[processedMetric].GetMetric() {
		if label(s, "stream") == eventsStream {
			m.processed[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[deadMetric].GetMetric() {
		if label(s, "stream") == eventsStream {
			m.dead[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[lagMetric].GetMetric() {
		if label(s, "stream") == eventsStream {
			m.lag += value(s)
		}
	}
	m.latency, m.latencySum, err = histogramOf(fams[latencyMetric], func(s *dto.Metric) bool { return label(s, "stream") == eventsStream })
	if err != nil {
		return serverMetrics{}, err
	}
	if err := m.campaigns.parse(fams); err != nil {
		return serverMetrics{}, err
	}
	return m, nil
}

// histogramOf sums the classic histograms of the series of fam that keep
// admits, and the sums of their observations. A nil fam has none.
func histogramOf(fam *dto.MetricFamily, keep func(*dto.Metric) bool) (buckets, float64, error) {
	var b buckets
	var sum float64
	for _, s := range fam.GetMetric() {
		if s.GetHistogram() == nil || !keep(s) {
			continue
		}
		h, err := histogramBuckets(s.GetHistogram())
		if err == nil {
			b, err = b.add(h)
		}
		if err != nil {
			return buckets{}, 0, fmt.Errorf("reading %s: %w", fam.GetName(), err)
		}
		sum += s.GetHistogram().GetSampleSum()
	}
	return b, sum, nil
}

// value returns the value of a counter, gauge or untyped sample.
func value(s *dto.Metric) float64 {
	switch {
	case s.GetCounter() != nil:
		return s.GetCounter().GetValue()
	case s.GetGauge() != nil:
		return s.GetGauge().GetValue()
	}
	return s.GetUntyped().GetValue()
}

// label returns the value of a sample's label, or "" without it.
func label(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// histogramBuckets returns the cumulative buckets of a classic histogram,
// with a +Inf bucket last.
func histogramBuckets(h *dto.Histogram) (buckets, error) {
	bounds, counts, err := metrics.CumulativeBuckets(h)
	return buckets{bounds: bounds, counts: counts}, err
}

// add returns the sum of two histograms with the same bounds; an empty b
// is the identity.
func (b buckets) add(o buckets) (buckets, error) {
	if len(b.bounds) == 0 {
		return o, nil
	}
	if !slices.Equal(b.bounds, o.bounds) {
		return buckets{}, fmt.Errorf("series have different buckets: %v and %v", b.bounds, o.bounds)
	}
	sum := buckets{bounds: b.bounds, counts: slices.Clone(b.counts)}
	for i, c := range o.counts {
		sum.counts[i] += c
	}
	return sum, nil
}

// since returns the observations b counted after prev did: the bucket
// counts' differences. If the bounds changed or a count went down, the
// server restarted in between and b, counted from the restart, is all
// there is.
func (b buckets) since(prev buckets) buckets {
	if !slices.Equal(b.bounds, prev.bounds) {
		return b
	}
	d := buckets{bounds: b.bounds, counts: make([]float64, len(b.counts))}
	for i, c := range b.counts {
		if c < prev.counts[i] {
			return b
		}
		d.counts[i] = c - prev.counts[i]
	}
	return d
}

// total returns the number of observations.
func (b buckets) total() float64 {
	if len(b.counts) == 0 {
		return 0
	}
	return b.counts[len(b.counts)-1]
}

// quantile returns the q-quantile of the observations (see
// metrics.Quantile).
func (b buckets) quantile(q float64) (v float64, above, ok bool) {
	return metrics.Quantile(b.bounds, b.counts, q)
}

// resolution describes how finely the finite bounds cut the range: the
// lowest and highest bound, and the largest ratio between neighbours.
func (b buckets) resolution() (low, high, ratio float64) {
	finite := b.bounds
	if n := len(finite); n > 0 && math.IsInf(finite[n-1], 1) {
		finite = finite[:n-1]
	}
	if len(finite) == 0 {
		return 0, 0, 0
	}
	for i := 1; i < len(finite); i++ {
		if finite[i-1] > 0 {
			ratio = max(ratio, finite[i]/finite[i-1])
		}
	}
	return finite[0], finite[len(finite)-1], ratio
}
