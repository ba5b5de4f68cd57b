package loadgen

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// latencyBounds are the bounds of internal/metrics.LatencyBuckets, as the
// server exposes them.
var latencyBounds = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	// A node with shards, with two tenants, a second stream whose series
	// must be left out, and a lag.
	const handWritten = `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE contrail_collect_events_accepted_total counter
contrail_collect_events_accepted_total{tenant="tn_a"} 1000
contrail_collect_events_accepted_total{tenant="tn_b"} 30
# TYPE contrail_shard_events_processed_total counter
contrail_shard_events_processed_total{stream="EVENTS",tenant="tn_a"} 900
contrail_shard_events_processed_total{stream="EVENTS",tenant="tn_b"} 25
contrail_shard_events_processed_total{stream="LEADS",tenant="tn_a"} 77
# TYPE contrail_shard_events_dead_total counter
contrail_shard_events_dead_total{stream="EVENTS",tenant="tn_a"} 3
# TYPE contrail_shard_lag_messages gauge
contrail_shard_lag_messages{partition="0",stream="EVENTS"} 4
contrail_shard_lag_messages{partition="1",stream="EVENTS"} 6
contrail_shard_lag_messages{partition="0",stream="LEADS"} 100
# TYPE contrail_shard_ingest_to_processed_seconds histogram
contrail_shard_ingest_to_processed_seconds_bucket{stream="EVENTS",le="0.01"} 10
contrail_shard_ingest_to_processed_seconds_bucket{stream="EVENTS",le="0.1"} 18
contrail_shard_ingest_to_processed_seconds_bucket{stream="EVENTS",le="+Inf"} 20
contrail_shard_ingest_to_processed_seconds_sum{stream="EVENTS"} 2.5
contrail_shard_ingest_to_processed_seconds_count{stream="EVENTS"} 20
contrail_shard_ingest_to_processed_seconds_bucket{stream="LEADS",le="0.01"} 1000
contrail_shard_ingest_to_processed_seconds_bucket{stream="LEADS",le="0.1"} 1000
contrail_shard_ingest_to_processed_seconds_bucket{stream="LEADS",le="+Inf"} 1000
contrail_shard_ingest_to_processed_seconds_sum{stream="LEADS"} 1
contrail_shard_ingest_to_processed_seconds_count{stream="LEADS"} 1000
`
	// Without a +Inf bucket, it is rebuilt from _count.
	const noInfBucket = `process_cpu_seconds_total 1
# TYPE contrail_shard_ingest_to_processed_seconds histogram
contrail_shard_ingest_to_processed_seconds_bucket{stream="EVENTS",le="0.5"} 2
contrail_shard_ingest_to_processed_seconds_sum{stream="EVENTS"} 3
contrail_shard_ingest_to_processed_seconds_count{stream="EVENTS"} 5
`
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		return string(b)
	}
	for _, tc := range []struct {
		name      string
		text      string
		cpu       float64
		shards    bool
		accepted  map[string]float64
		processed map[string]float64
		dead      map[string]float64
		lag       float64
		latency   buckets
		sum       float64
		err       string
	}{
		{
			name: "captured from serve", text: read("metrics-processing.txt"),
			cpu: 1.89, shards: true,
			accepted:  map[string]float64{"tn_t3ludhabfoxw": 15000},
			processed: map[string]float64{"tn_t3ludhabfoxw": 15000},
			dead:      map[string]float64{},
			latency: buckets{
				bounds: latencyBounds,
				counts: []float64{0, 0, 0, 23, 292, 885, 1780, 2145, 2294, 2372, 2372, 2372, 2372, 2372, 2372, 2372, 2372},
			},
			sum: 24.540166447000004,
		},
		{
			name: "captured from serve --process=false", text: read("metrics-collector-only.txt"),
			cpu: 0.24, accepted: map[string]float64{"tn_glhkpa3ajtad": 2000},
			processed: map[string]float64{}, dead: map[string]float64{},
		},
		{
			name: "two tenants, two streams", text: handWritten,
			cpu: 12.5, shards: true,
			accepted:  map[string]float64{"tn_a": 1000, "tn_b": 30},
			processed: map[string]float64{"tn_a": 900, "tn_b": 25},
			dead:      map[string]float64{"tn_a": 3},
			lag:       10,
			latency:   buckets{bounds: []float64{0.01, 0.1, math.Inf(1)}, counts: []float64{10, 18, 20}},
			sum:       2.5,
		},
		{
			name: "no +Inf bucket", text: noInfBucket, cpu: 1, shards: true,
			accepted: map[string]float64{}, processed: map[string]float64{}, dead: map[string]float64{},
			latency: buckets{bounds: []float64{0.5, math.Inf(1)}, counts: []float64{2, 5}}, sum: 3,
		},
		{
			name: "only a shard gauge", text: "process_cpu_seconds_total 2\ncontrail_shard_restarts_total{stream=\"EVENTS\"} 1\n",
			cpu: 2, shards: true,
			accepted: map[string]float64{}, processed: map[string]float64{}, dead: map[string]float64{},
		},
		{name: "no cpu", text: "contrail_shard_lag_messages{stream=\"EVENTS\"} 1\n", err: "no process_cpu_seconds_total series"},
		{name: "malformed", text: "process_cpu_seconds_total 1\ncontrail_shard_lag_messages{stream=\"EVENTS\" 1\n", err: "parsing metrics"},
		{
			name: "descending buckets",
			text: "process_cpu_seconds_total 1\n# TYPE contrail_shard_ingest_to_processed_seconds histogram\n" +
				"contrail_shard_ingest_to_processed_seconds_bucket{stream=\"EVENTS\",le=\"1\"} 5\n" +
				"contrail_shard_ingest_to_processed_seconds_bucket{stream=\"EVENTS\",le=\"2\"} 4\n" +
				"contrail_shard_ingest_to_processed_seconds_count{stream=\"EVENTS\"} 5\n",
			err: "must ascend",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := parseMetrics(strings.NewReader(tc.text))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.cpu, m.cpu, 1e-9)
			require.Equal(t, tc.shards, m.shards)
			require.Equal(t, tc.accepted, m.accepted)
			require.Equal(t, tc.processed, m.processed)
			require.Equal(t, tc.dead, m.dead)
			require.InDelta(t, tc.lag, m.lag, 1e-9)
			require.Equal(t, tc.latency, m.latency)
			require.InDelta(t, tc.sum, m.latencySum, 1e-9)
		})
	}
}

func TestBucketQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	f := func(q float64, bounds, counts []float64, want float64, wantAbove, wantOK bool) {
		t.Helper()
		got, above, ok := buckets{bounds: bounds, counts: counts}.quantile(q)
		require.Equal(t, wantOK, ok, "ok")
		require.Equal(t, wantAbove, above, "above")
		require.InDelta(t, want, got, 1e-12)
	}
	// No observations.
	f(0.5, nil, nil, 0, false, false)
	f(0.5, []float64{1, inf}, []float64{0, 0}, 0, false, false)
	// Everything in the first bucket: interpolated up from 0.
	f(0.5, []float64{1, 2, inf}, []float64{10, 10, 10}, 0.5, false, true)
	f(0.99, []float64{1, 2, inf}, []float64{10, 10, 10}, 0.99, false, true)
	// Rank 50 of 100 is the 40th of the 60 in (1, 2].
	f(0.5, []float64{1, 2, inf}, []float64{10, 70, 100}, 1+40.0/60, false, true)
	// Rank 99 falls in +Inf: the largest finite bound, and above it.
	f(0.99, []float64{1, 2, inf}, []float64{10, 70, 100}, 2, true, true)
	// A rank on a bucket's cumulative count is that bucket's upper bound,
	// not the next bucket's start.
	f(0.5, []float64{1, 2, inf}, []float64{50, 100, 100}, 1, false, true)
	// Empty buckets in between are skipped.
	f(0.9, []float64{1, 2, 4, 8, inf}, []float64{10, 10, 10, 20, 20}, 4+4*8.0/10, false, true)
	// One observation: every quantile is in its bucket.
	f(0.001, []float64{0.001, 0.01, inf}, []float64{0, 1, 1}, 0.001+0.009*0.001, false, true)
	// The server's buckets: the p99.9 of 2372 messages of the capture.
	capture := []float64{0, 0, 0, 23, 292, 885, 1780, 2145, 2294, 2372, 2372, 2372, 2372, 2372, 2372, 2372, 2372}
	f(0.5, latencyBounds, capture, 0.005+0.005*(1186-885)/(1780-885.0), false, true)
	f(0.999, latencyBounds, capture, 0.05+0.05*(0.999*2372-2294)/(2372-2294), false, true)
}

func TestBucketsSince(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	b := func(bounds []float64, counts ...float64) buckets { return buckets{bounds: bounds, counts: counts} }
	two := []float64{1, inf}
	for _, tc := range []struct {
		name      string
		prev, cur buckets
		want      buckets
	}{
		{"growth", b(two, 5, 8), b(two, 7, 12), b(two, 2, 4)},
		{"nothing new", b(two, 5, 8), b(two, 5, 8), b(two, 0, 0)},
		{"no series before", buckets{}, b(two, 7, 12), b(two, 7, 12)},
		{"restarted: a count went down", b(two, 5, 8), b(two, 1, 9), b(two, 1, 9)},
		{"other buckets", b([]float64{2, inf}, 5, 8), b(two, 7, 12), b(two, 7, 12)},
	} {
		require.Equal(t, tc.want, tc.cur.since(tc.prev), tc.name)
	}
}

func TestBucketsResolution(t *testing.T) {
	t.Parallel()
	low, high, ratio := buckets{bounds: latencyBounds}.resolution()
	require.InDelta(t, 0.0001, low, 1e-15)
	require.InDelta(t, 10.0, high, 1e-15)
	require.InDelta(t, 2.5, ratio, 1e-9)
	low, high, ratio = buckets{}.resolution()
	require.Zero(t, low+high+ratio)
}

func TestIncrease(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 5.0, increase(10, 15), 0)
	require.InDelta(t, 0.0, increase(10, 10), 0)
	require.InDelta(t, 3.0, increase(10, 3), 0, "a reset counts from zero")
}
