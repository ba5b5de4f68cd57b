package loadgen

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeShards serves /metrics for a node whose collector is f and whose
// shards process rate events per second, as a fluid: by each scrape they
// have done rate times the time since the previous one, but never more
// than f accepted, plus the waiting events it had accepted before the
// run. With rate 0 the node runs no shards. Every log message
// holds ten events; half of them took 5ms from ingest to processed, the
// other half 10ms. The server burns a CPU second per thousand events
// processed.
type fakeShards struct {
	f       *fakeCollector
	rate    float64
	waiting float64

	mu        sync.Mutex
	last      time.Time
	processed float64
}

func (s *fakeShards) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.f.mu.Lock()
	accepted := float64(s.f.accepted) + s.waiting
	s.f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.last.IsZero() {
		s.processed = min(accepted, s.processed+s.rate*now.Sub(s.last).Seconds())
	}
	s.last = now
	fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", 1+s.processed/1000)
	// Another tenant's counters stand still through the run.
	fmt.Fprintf(w, "# TYPE contrail_collect_events_accepted_total counter\n"+
		"contrail_collect_events_accepted_total{tenant=\"tn_bench\"} %g\n"+
		"contrail_collect_events_accepted_total{tenant=\"tn_other\"} 500\n", accepted)
	if s.rate == 0 {
		return
	}
	msgs := math.Floor(s.processed / 10)
	fmt.Fprintf(w, "# TYPE contrail_shard_events_processed_total counter\n"+
		"contrail_shard_events_processed_total{stream=\"EVENTS\",tenant=\"tn_bench\"} %g\n"+
		"contrail_shard_events_processed_total{stream=\"EVENTS\",tenant=\"tn_other\"} 500\n", s.processed)
	fmt.Fprintf(w, "# TYPE contrail_shard_lag_messages gauge\n"+
		"contrail_shard_lag_messages{partition=\"0\",stream=\"EVENTS\"} %g\n"+
		"contrail_shard_lag_messages{partition=\"1\",stream=\"EVENTS\"} 0\n", math.Ceil((accepted-s.processed)/10))
	fmt.Fprintf(w, "# TYPE contrail_shard_ingest_to_processed_seconds histogram\n"+
		"contrail_shard_ingest_to_processed_seconds_bucket{stream=\"EVENTS\",le=\"0.005\"} %g\n"+
		"contrail_shard_ingest_to_processed_seconds_bucket{stream=\"EVENTS\",le=\"0.01\"} %g\n"+
		"contrail_shard_ingest_to_processed_seconds_bucket{stream=\"EVENTS\",le=\"+Inf\"} %g\n"+
		"contrail_shard_ingest_to_processed_seconds_sum{stream=\"EVENTS\"} %g\n"+
		"contrail_shard_ingest_to_processed_seconds_count{stream=\"EVENTS\"} %g\n",
		math.Floor(msgs/2), msgs, msgs, math.Floor(msgs/2)*0.005+(msgs-math.Floor(msgs/2))*0.01, msgs)
}

// TestRunReportsProcessing runs a second of load at 1000 events/s against
// shards of several speeds, in virtual time, and checks what the report
// says about them.
func TestRunReportsProcessing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    float64 // events/s the shards process; 0: none
		waiting float64 // events accepted before the run, not yet processed
		drain   time.Duration
		tenant  string
		// wantTenant is the tenant the counts are for.
		wantTenant string
		// caughtUp, keptUp and the drain time, if caught up.
		caughtUp, keptUp bool
		text             []string
	}{
		{
			name: "collector only", rate: 0, drain: 5 * time.Second, tenant: "tn_bench",
			text: []string{"processing       not running on this node (no contrail_shard_ series in its metrics)\n"},
		},
		{
			name: "keeps up", rate: 5000, drain: 5 * time.Second, tenant: "tn_bench", wantTenant: "tn_bench",
			caughtUp: true, keptUp: true,
			text: []string{"processing        kept up: yes (0 events behind", "of tenant tn_bench", "drain             back to real time 0s after the load\n"},
		},
		{
			name: "catches up with events from before the run, then keeps up", rate: 5000, waiting: 1000,
			drain: 5 * time.Second, tenant: "tn_bench", wantTenant: "tn_bench", caughtUp: true, keptUp: true,
			text: []string{
				"processing        kept up: yes (1000 events were waiting before the load; 0 events behind",
				"processed         1900 of 900 accepted events of tenant tn_bench",
			},
		},
		{
			name: "falls behind and catches up", rate: 300, drain: 5 * time.Second, tenant: "tn_nobody", wantTenant: "",
			caughtUp: true, keptUp: false,
			text: []string{"processing        kept up: no (", "of all tenants", "drain             back to real time 2."},
		},
		{
			name: "falls behind for longer than the drain", rate: 300, drain: time.Second, tenant: "tn_bench", wantTenant: "tn_bench",
			text: []string{"processing        kept up: no (", "events still unprocessed after waiting 1s\n"},
		},
		{
			name: "falls behind, no drain", rate: 300, tenant: "tn_bench", wantTenant: "tn_bench",
			text: []string{"processing        kept up: not known without waiting for the drain", "drain             not waited for\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeCollector()
				shards := &fakeShards{f: f, rate: tc.rate, waiting: tc.waiting}
				mux := http.NewServeMux()
				mux.Handle("POST /v1/batch", f)
				mux.Handle("GET /metrics", shards)
				const perSecond, loadFor = 1000, time.Second
				rep, err := Run(t.Context(), Options{
					URL: "http://collector.test", Rate: perSecond, BatchSize: 10, Duration: loadFor,
					MetricsURL: "http://collector.test/metrics", Tenant: tc.tenant, Drain: tc.drain,
					HTTPClient: &http.Client{Transport: handlerTransport{mux}},
				})
				require.NoError(t, err)
				text := rep.String()
				for _, want := range tc.text {
					require.Contains(t, text, want)
				}
				require.NotContains(t, text, "campaign", "no campaign rows for a node without campaigns")
				require.Equal(t, Campaigns{Tenant: rep.Processing.Tenant}, rep.Campaigns)
				p := rep.Processing
				require.True(t, p.Measured)
				if tc.rate == 0 {
					require.Equal(t, Processing{Measured: true}, p)
					require.True(t, rep.CPUMeasured)
					return
				}
				require.True(t, p.Running)
				require.Equal(t, tc.wantTenant, p.Tenant)
				require.Equal(t, tc.caughtUp, p.CaughtUp)
				require.Equal(t, tc.keptUp, p.KeptUp)
				require.Equal(t, tc.drain, p.DrainLimit)
				require.Equal(t, rep.Accepted, p.Accepted, "the server's count of the run is the client's")
				require.Equal(t, int64(tc.waiting), p.BacklogStart)
				require.Equal(t, p.BacklogStart+p.Accepted, p.Processed+p.Remaining)
				require.Zero(t, p.Dead)

				// The load ends with its last answer, just after the last
				// request was due at 990ms.
				loadEnd := rep.Elapsed
				require.Equal(t, 990*time.Millisecond, loadEnd)
				wantBacklog := max(tc.waiting+float64(rep.Accepted)-tc.rate*loadEnd.Seconds(), 0)
				require.InDelta(t, wantBacklog, float64(p.Backlog), 1)
				require.Equal(t, int64(math.Ceil(wantBacklog/10)), p.LagEnd)
				require.Equal(t, int64(tc.waiting/10), p.LagStart)
				if tc.waiting == 0 {
					require.InDelta(t, wantBacklog, float64(p.BacklogMax), 1)
					require.Equal(t, p.LagEnd, p.LagMax, "the lag only grows while the shards are slower")
				} else {
					require.InDelta(t, tc.waiting, float64(p.BacklogMax), 1)
					require.Equal(t, p.LagStart, p.LagMax)
				}
				require.InDelta(t, min(tc.rate, perSecond*0.9)*p.Elapsed.Seconds(), float64(p.Processed)-tc.waiting, perSecond*0.1+1)
				require.InDelta(t, float64(p.Processed)/p.Elapsed.Seconds(), p.ProcessedPerSec, 1e-6)
				switch {
				case p.CaughtUp:
					// Caught up at the first scrape after the shards were done,
					// at most one poll late.
					done := time.Duration((tc.waiting + float64(rep.Accepted)) / tc.rate * float64(time.Second))
					require.GreaterOrEqual(t, p.Drain, done-loadEnd)
					require.LessOrEqual(t, p.Drain, max(done-loadEnd, 0)+drainPollEvery)
					require.Equal(t, loadEnd+p.Drain, p.Elapsed)
				case tc.drain > 0:
					require.InDelta(t, tc.drain, p.Drain, float64(drainPollEvery))
					require.Positive(t, p.Remaining)
				default:
					require.Zero(t, p.Drain)
					require.Equal(t, p.Backlog, p.Remaining)
				}
				msgs := float64(p.Processed / 10)
				require.InDelta(t, msgs, float64(p.Latency.Count), 1)
				require.InDelta(t, 0.005, p.Latency.P50.Value.Seconds(), 0.0002)
				require.InDelta(t, 0.005+0.005*0.98, p.Latency.P99.Value.Seconds(), 0.0002)
				require.False(t, p.Latency.P999.Above)
				require.InDelta(t, 0.0075, p.Latency.Mean.Seconds(), 0.0002)
				require.Equal(t, 5*time.Millisecond, p.Latency.Low)
				require.Equal(t, 10*time.Millisecond, p.Latency.High)
				require.InDelta(t, 2.0, p.Latency.Ratio, 1e-9)
				require.InDelta(t, 1000, p.CPUSecondsPerMillion, 1e-6, "a CPU second per thousand events")
				require.Contains(t, text, "bucket-interpolated")
			})
		})
	}
}

func TestRunReportsDrainProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeCollector()
		mux := http.NewServeMux()
		mux.Handle("POST /v1/batch", f)
		mux.Handle("GET /metrics", &fakeShards{f: f, rate: 200})
		var draining []Snapshot
		rep, err := Run(t.Context(), Options{
			URL: "http://collector.test", Rate: 1000, BatchSize: 10, Duration: time.Second,
			MetricsURL: "http://collector.test/metrics", Drain: time.Minute,
			HTTPClient: &http.Client{Transport: handlerTransport{mux}},
			Progress: func(s Snapshot) {
				if s.Draining {
					draining = append(draining, s)
				}
			},
		})
		require.NoError(t, err)
		require.True(t, rep.Processing.CaughtUp)
		// 900 events processed at 200/s: done at 4.5s, reported each second.
		require.Len(t, draining, 3)
		for i, s := range draining {
			require.Equal(t, rep.Accepted, s.Accepted)
			require.InDelta(t, float64(i+2)*float64(time.Second), float64(s.Elapsed), float64(drainPollEvery))
			require.InDelta(t, float64(rep.Accepted)-200*s.Elapsed.Seconds(), float64(s.Backlog), 1)
		}
	})
}

func TestReportTextProcessing(t *testing.T) {
	t.Parallel()
	rep := Report{
		URL: "http://127.0.0.1:8080/v1/batch", Concurrency: 8, BatchSize: 100, Errors: map[int]int{},
		CPUMeasured: true, ServerCPUSeconds: 5, CPUSecondsPerMillion: 40,
		Processing: Processing{
			Measured: true, Running: true, Tenant: "tn_x", Accepted: 128200, Processed: 128100, Dead: 100,
			Elapsed: 23300 * time.Millisecond, ProcessedPerSec: 5494, LoadProcessedPerSec: 3700,
			Latency: ProcessingLatency{
				Count: 7802, Mean: 10300 * time.Millisecond,
				P50: Estimate{Value: 8123456 * time.Microsecond}, P99: Estimate{Value: 10 * time.Second, Above: true},
				P999: Estimate{Value: 10 * time.Second, Above: true},
				Low:  100 * time.Microsecond, High: 10 * time.Second, Ratio: 2.5,
			},
			Backlog: 109603, BacklogMax: 109603, LagStart: 0, LagEnd: 3, LagMax: 8,
			DrainLimit: 30 * time.Second, CaughtUp: true, Drain: 18300 * time.Millisecond,
			CPUSeconds: 23.05, CPUSecondsPerMillion: 179.8,
		},
	}
	text := rep.String()
	for _, want := range []string{
		"server cpu        5.00s (40.00 s per million events)\n",
		"processing        kept up: no (109603 events behind at the end of the load, at most 109603; lag gauges grew from 0 to 3 log messages, at most 8)\n",
		"processed         128100 + 100 sent to DEAD of 128200 accepted events of tenant tn_x (5.49k/s over 23.3s; 3.7k/s during the load)\n",
		"ingest→processed  p50 ~8.12s  p99 >10s  p99.9 >10s  mean 10.3s  (7802 log messages of all tenants; bucket-interpolated, buckets 100µs to 10s, up to 2.5× apart)\n",
		"drain             back to real time 18.3s after the load\n",
		"cpu with drain    23.05s (179.80 s per million processed events)\n",
	} {
		require.Contains(t, text, want)
	}

	rep.Processing.CaughtUp, rep.Processing.Remaining, rep.Processing.Error = false, 4000, "interrupted"
	require.Contains(t, rep.String(), "drain             4000 events still unprocessed after waiting 18.3s (interrupted)\n")
	rep.Processing = Processing{Measured: true}
	require.Contains(t, rep.String(), "processing       not running on this node")
	require.False(t, strings.Contains(Report{}.String(), "processing"), "nothing without a metrics URL")
}
