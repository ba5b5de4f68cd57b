package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The tenant of the captures metrics-campaigns*.txt, taken from `contrail
// serve` before and after `bench ingest --campaign` sent 3000 events at
// 1000/s.
const captureTenant = "tn_bmloy6wksk2b"

func readTestdata(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(tb, err)
	return string(b)
}

func TestParseCampaignMetrics(t *testing.T) {
	t.Parallel()
	// Two tenants, webhooks and emails, two outbox streams, and the EVENTS
	// series that the lead figures must leave out.
	const handWritten = `process_cpu_seconds_total 1
# TYPE contrail_campaign_ingest_to_trigger_seconds histogram
contrail_campaign_ingest_to_trigger_seconds_bucket{le="0.01"} 6
contrail_campaign_ingest_to_trigger_seconds_bucket{le="0.1"} 9
contrail_campaign_ingest_to_trigger_seconds_bucket{le="+Inf"} 10
contrail_campaign_ingest_to_trigger_seconds_sum 1.5
contrail_campaign_ingest_to_trigger_seconds_count 10
# TYPE contrail_campaign_trigger_tests_total counter
contrail_campaign_trigger_tests_total{tenant="tn_a"} 20
contrail_campaign_trigger_tests_total{tenant="tn_b"} 4
# TYPE contrail_campaign_runs_total counter
contrail_campaign_runs_total{status="entered",tenant="tn_a"} 10
contrail_campaign_runs_total{status="completed",tenant="tn_a"} 7
contrail_campaign_runs_total{status="failed",tenant="tn_a"} 1
contrail_campaign_runs_total{status="removed",tenant="tn_a"} 1
contrail_campaign_runs_total{status="entered",tenant="tn_b"} 3
contrail_campaign_runs_total{status="sideways",tenant="tn_b"} 3
# TYPE contrail_campaign_steps_total counter
contrail_campaign_steps_total{tenant="tn_a",type="change_score"} 10
contrail_campaign_steps_total{tenant="tn_a",type="call_webhook"} 9
contrail_campaign_steps_total{tenant="tn_b",type="send_email"} 3
# TYPE contrail_deliver_ingest_to_delivered_seconds histogram
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="webhook",le="0.01"} 2
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="webhook",le="0.1"} 8
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="webhook",le="+Inf"} 8
contrail_deliver_ingest_to_delivered_seconds_sum{kind="webhook"} 0.4
contrail_deliver_ingest_to_delivered_seconds_count{kind="webhook"} 8
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="email",le="0.01"} 0
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="email",le="0.1"} 0
contrail_deliver_ingest_to_delivered_seconds_bucket{kind="email",le="+Inf"} 3
contrail_deliver_ingest_to_delivered_seconds_sum{kind="email"} 30
contrail_deliver_ingest_to_delivered_seconds_count{kind="email"} 3
# TYPE contrail_deliver_attempts_total counter
contrail_deliver_attempts_total{kind="webhook",outcome="ok",tenant="tn_a"} 8
contrail_deliver_attempts_total{kind="webhook",outcome="retry",tenant="tn_a"} 5
contrail_deliver_attempts_total{kind="email",outcome="ok",tenant="tn_b"} 3
# TYPE contrail_deliver_failed_total counter
contrail_deliver_failed_total{kind="webhook",tenant="tn_a"} 1
contrail_deliver_failed_total{kind="email",tenant="tn_b"} 2
# TYPE contrail_deliver_inflight gauge
contrail_deliver_inflight 4
# TYPE contrail_outbox_writes_total counter
contrail_outbox_writes_total{stream="LEADS"} 6
contrail_outbox_writes_total{stream="EVENTS"} 1
# TYPE contrail_shard_events_processed_total counter
contrail_shard_events_processed_total{stream="EVENTS",tenant="tn_a"} 900
contrail_shard_events_processed_total{stream="LEADS",tenant="tn_a"} 40
contrail_shard_events_processed_total{stream="LEADS",tenant="tn_b"} 2
# TYPE contrail_shard_lag_messages gauge
contrail_shard_lag_messages{partition="0",stream="EVENTS"} 50
contrail_shard_lag_messages{partition="0",stream="LEADS"} 2
contrail_shard_lag_messages{partition="1",stream="LEADS"} 3
`
	empty := newCampaignMetrics()
	zeroBuckets := buckets{bounds: latencyBounds, counts: make([]float64, len(latencyBounds))}
	before := empty
	before.trigger = zeroBuckets
	tenant := func(v float64) map[string]float64 { return map[string]float64{captureTenant: v} }
	for _, tc := range []struct {
		name string
		text string
		want campaignMetrics
		err  string
	}{
		{
			name: "captured after bench ingest --campaign", text: readTestdata(t, "metrics-campaigns.txt"),
			want: campaignMetrics{
				trigger: buckets{
					bounds: latencyBounds,
					counts: []float64{0, 0, 0, 0, 1, 11, 32, 119, 188, 212, 214, 214, 214, 214, 214, 214, 214},
				},
				triggerSum: 5.858337960000002, tested: 214,
				entered: tenant(214), completed: tenant(214), failed: map[string]float64{}, removed: map[string]float64{},
				steps: tenant(856), external: tenant(214),
				delivered: buckets{
					bounds: latencyBounds,
					counts: []float64{0, 0, 0, 0, 0, 2, 16, 111, 185, 212, 214, 214, 214, 214, 214, 214, 214},
				},
				deliveredSum: 6.341358222000003,
				webhooksOK:   tenant(214), webhooksFailed: map[string]float64{},
				leadsProcessed: 311,
			},
		},
		{name: "captured before, with the campaign engine idle", text: readTestdata(t, "metrics-campaigns-before.txt"), want: before},
		{name: "captured before campaigns existed", text: readTestdata(t, "metrics-processing.txt"), want: empty},
		{
			name: "two tenants, webhooks and emails", text: handWritten,
			want: campaignMetrics{
				trigger:    buckets{bounds: []float64{0.01, 0.1, math.Inf(1)}, counts: []float64{6, 9, 10}},
				triggerSum: 1.5, tested: 24,
				entered:   map[string]float64{"tn_a": 10, "tn_b": 3},
				completed: map[string]float64{"tn_a": 7}, failed: map[string]float64{"tn_a": 1}, removed: map[string]float64{"tn_a": 1},
				steps:     map[string]float64{"tn_a": 19, "tn_b": 3},
				external:  map[string]float64{"tn_a": 9, "tn_b": 3},
				delivered: buckets{bounds: []float64{0.01, 0.1, math.Inf(1)}, counts: []float64{2, 8, 8}}, deliveredSum: 0.4,
				webhooksOK: map[string]float64{"tn_a": 8}, webhooksFailed: map[string]float64{"tn_a": 1},
				inflight: 4, outboxWrites: 7, leadsProcessed: 42, leadsLag: 5,
			},
		},
		{
			name: "descending trigger buckets",
			text: "process_cpu_seconds_total 1\n# TYPE contrail_campaign_ingest_to_trigger_seconds histogram\n" +
				"contrail_campaign_ingest_to_trigger_seconds_bucket{le=\"1\"} 5\n" +
				"contrail_campaign_ingest_to_trigger_seconds_bucket{le=\"2\"} 4\n" +
				"contrail_campaign_ingest_to_trigger_seconds_count 5\n",
			err: "reading contrail_campaign_ingest_to_trigger_seconds: bucket le=2 after le=1",
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
			got := m.campaigns
			require.InDelta(t, tc.want.triggerSum, got.triggerSum, 1e-9)
			require.InDelta(t, tc.want.deliveredSum, got.deliveredSum, 1e-9)
			got.triggerSum, got.deliveredSum = tc.want.triggerSum, tc.want.deliveredSum
			require.Equal(t, tc.want, got)
		})
	}
}

// TestCampaignsFromCaptures computes the figures of a run from the two
// captures, as Run does from its first and last scrape.
func TestCampaignsFromCaptures(t *testing.T) {
	t.Parallel()
	parse := func(name string, at time.Duration) serverMetrics {
		m, err := parseMetrics(strings.NewReader(readTestdata(t, name)))
		require.NoError(t, err)
		m.at = time.Unix(0, 0).Add(at)
		return m
	}
	before, after := parse("metrics-campaigns-before.txt", 0), parse("metrics-campaigns.txt", 3*time.Second)
	last := after
	last.at = after.at.Add(time.Second)
	p := &probe{before: before, last: last}
	c := p.campaigns(t.Context(), captureTenant, after, after.at, 0, nil)
	require.True(t, c.Active)
	require.True(t, c.shown())
	require.Equal(t, captureTenant, c.Tenant)
	require.Equal(t, [4]int64{214, 214, 0, 0}, [4]int64{c.Entered, c.Completed, c.Failed, c.Removed})
	require.Equal(t, int64(856), c.Steps)
	require.Equal(t, int64(214), c.External)
	require.Equal(t, 4*time.Second, c.Elapsed)
	require.InDelta(t, 856.0/4, c.StepsPerSec, 1e-9)
	require.InDelta(t, 856.0/3, c.LoadStepsPerSec, 1e-9)
	require.Equal(t, int64(214), c.WebhooksDelivered)
	require.Zero(t, c.WebhooksFailed+c.Inflight+c.OutboxWrites)
	require.Zero(t, c.OutboxWritesPerMin+c.OutboxShare)
	require.False(t, c.Settled, "without a drain, nothing is waited for")
	require.Zero(t, c.SettleLimit)
	require.Nil(t, c.Receiver)

	// Rank 107 of 214 is the 75th of the 87 runs in (10ms, 25ms].
	require.Equal(t, int64(214), c.Trigger.Count)
	require.InDelta(t, 0.010+0.015*75/87, c.Trigger.P50.Value.Seconds(), 1e-9)
	require.InDelta(t, 5.858337960000002/214, c.Trigger.Mean.Seconds(), 1e-9)
	require.False(t, c.Trigger.P999.Above)
	// Rank 107 of 214 is the 91st of the 95 webhooks in (10ms, 25ms].
	require.Equal(t, int64(214), c.Delivered.Count)
	require.InDelta(t, 0.010+0.015*91/95, c.Delivered.P50.Value.Seconds(), 1e-9)

	// Another tenant's runs are not this one's; the histograms have no
	// tenant label.
	c = p.campaigns(t.Context(), "tn_other", after, after.at, 0, nil)
	require.True(t, c.Active)
	require.Zero(t, c.Entered+c.Steps+c.WebhooksDelivered)
	require.Equal(t, int64(214), c.Trigger.Count)

	// A run that triggered nothing shows nothing.
	p = &probe{before: after, last: last}
	c = p.campaigns(t.Context(), captureTenant, after, after.at, time.Minute, nil)
	require.Equal(t, Campaigns{Tenant: captureTenant}, c)
	require.NotContains(t, Report{Campaigns: c}.String(), "campaign")
}

// fakeCampaigns adds to the metrics of its shards a campaign that every
// tenth event processed triggers, run by lead shards that are behind the
// visitor shards by leadsBehind: each run takes four steps, one of them a
// webhook delivered at once. Half of the runs start 10ms after ingest, the
// other half 50ms after it; webhooks are delivered 20ms after ingest.
type fakeCampaigns struct {
	shards      *fakeShards
	leadsBehind time.Duration

	// history holds what the shards had processed, by scrape.
	history []processedAt
}

type processedAt struct {
	at        time.Time
	processed float64
}

func (c *fakeCampaigns) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	c.shards.ServeHTTP(rec, r)
	c.shards.mu.Lock()
	now, processed := c.shards.last, c.shards.processed
	c.shards.mu.Unlock()
	c.history = append(c.history, processedAt{now, processed})
	var leads float64 // what the lead shards have caught up to
	for _, h := range c.history {
		if !h.at.After(now.Add(-c.leadsBehind)) {
			leads = h.processed
		}
	}
	runs := math.Floor(leads / 10)
	fast := math.Floor(runs / 2)
	// The lead shards' series go into the families of the visitor
	// shards': the text format keeps a family together.
	shardSeries := strings.NewReplacer(
		"contrail_shard_events_processed_total{stream=\"EVENTS\",tenant=\"tn_other\"} 500\n",
		"contrail_shard_events_processed_total{stream=\"EVENTS\",tenant=\"tn_other\"} 500\n"+
			fmt.Sprintf("contrail_shard_events_processed_total{stream=\"LEADS\",tenant=\"tn_bench\"} %g\n", runs),
		"contrail_shard_lag_messages{partition=\"1\",stream=\"EVENTS\"} 0\n",
		"contrail_shard_lag_messages{partition=\"1\",stream=\"EVENTS\"} 0\n"+
			fmt.Sprintf("contrail_shard_lag_messages{partition=\"0\",stream=\"LEADS\"} %g\n", math.Floor(processed/10)-runs),
	)
	_, _ = shardSeries.WriteString(w, rec.Body.String())
	fmt.Fprintf(w, "# TYPE contrail_campaign_ingest_to_trigger_seconds histogram\n"+
		"contrail_campaign_ingest_to_trigger_seconds_bucket{le=\"0.01\"} %g\n"+
		"contrail_campaign_ingest_to_trigger_seconds_bucket{le=\"0.05\"} %g\n"+
		"contrail_campaign_ingest_to_trigger_seconds_bucket{le=\"+Inf\"} %g\n"+
		"contrail_campaign_ingest_to_trigger_seconds_sum %g\n"+
		"contrail_campaign_ingest_to_trigger_seconds_count %g\n",
		fast, runs, runs, fast*0.01+(runs-fast)*0.05, runs)
	fmt.Fprintf(w, "# TYPE contrail_campaign_runs_total counter\n"+
		"contrail_campaign_runs_total{status=\"entered\",tenant=\"tn_bench\"} %g\n"+
		"contrail_campaign_runs_total{status=\"completed\",tenant=\"tn_bench\"} %g\n", runs, runs)
	fmt.Fprintf(w, "# TYPE contrail_campaign_steps_total counter\n"+
		"contrail_campaign_steps_total{tenant=\"tn_bench\",type=\"change_score\"} %g\n"+
		"contrail_campaign_steps_total{tenant=\"tn_bench\",type=\"add_to_list\"} %g\n"+
		"contrail_campaign_steps_total{tenant=\"tn_bench\",type=\"call_webhook\"} %g\n"+
		"contrail_campaign_steps_total{tenant=\"tn_bench\",type=\"remove_from_list\"} %g\n", runs, runs, runs, runs)
	fmt.Fprintf(w, "# TYPE contrail_deliver_ingest_to_delivered_seconds histogram\n"+
		"contrail_deliver_ingest_to_delivered_seconds_bucket{kind=\"webhook\",le=\"0.02\"} %g\n"+
		"contrail_deliver_ingest_to_delivered_seconds_bucket{kind=\"webhook\",le=\"+Inf\"} %g\n"+
		"contrail_deliver_ingest_to_delivered_seconds_sum{kind=\"webhook\"} %g\n"+
		"contrail_deliver_ingest_to_delivered_seconds_count{kind=\"webhook\"} %g\n", runs, runs, runs*0.02, runs)
	fmt.Fprintf(w, "# TYPE contrail_deliver_attempts_total counter\n"+
		"contrail_deliver_attempts_total{kind=\"webhook\",outcome=\"ok\",tenant=\"tn_bench\"} %g\n", runs)
	fmt.Fprintf(w, "# TYPE contrail_deliver_inflight gauge\ncontrail_deliver_inflight 0\n")
	fmt.Fprintf(w, "# TYPE contrail_outbox_writes_total counter\ncontrail_outbox_writes_total{stream=\"LEADS\"} %g\n", math.Floor(runs/100))
}

// TestRunReportsCampaigns runs two seconds of load at 1000 events/s, in
// virtual time, against a node whose lead shards trail its visitor shards
// by 500ms, and checks that Run waits for them within the drain.
func TestRunReportsCampaigns(t *testing.T) {
	const leadsBehind = 500 * time.Millisecond
	for _, tc := range []struct {
		name    string
		drain   time.Duration
		settled bool
		text    []string
	}{
		{
			name: "settles within the drain", drain: 5 * time.Second, settled: true,
			text: []string{
				"campaign runs     180 entered, 180 completed, 0 failed, of tenant tn_bench\n",
				"ingest→trigger    p50 ~10ms  p99 ~49.2ms  p99.9 ~49.9ms  mean 30ms  (180 runs of all tenants; bucket-interpolated)\n",
				"actions           720 campaign steps, 180 of them external (",
				"ingest→delivered  p50 ~10ms  p99 ~19.8ms  p99.9 ~20ms  mean 20ms  (180 webhooks of all tenants; bucket-interpolated)\n",
				"webhooks          180 delivered, 0 failed for good, of tenant tn_bench; 0 effects still in the senders\n",
				"outbox writes     1 (",
				"campaigns         settled 500ms after the load\n",
			},
		},
		{
			name: "does not settle within the drain", drain: 200 * time.Millisecond,
			text: []string{"campaigns         not settled after waiting "},
		},
		{
			name: "no drain", text: []string{"campaigns         settling not waited for\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeCollector()
				shards := &fakeShards{f: f, rate: 5000}
				mux := http.NewServeMux()
				mux.Handle("POST /v1/batch", f)
				mux.Handle("GET /metrics", &fakeCampaigns{shards: shards, leadsBehind: leadsBehind})
				rep, err := Run(t.Context(), Options{
					URL: "http://collector.test", Rate: 1000, BatchSize: 10, Duration: 2 * time.Second,
					MetricsURL: "http://collector.test/metrics", Tenant: "tn_bench", Drain: tc.drain,
					HTTPClient: &http.Client{Transport: handlerTransport{mux}},
				})
				require.NoError(t, err)
				text := rep.String()
				for _, want := range tc.text {
					require.Contains(t, text, want)
				}
				c := rep.Campaigns
				require.True(t, rep.Processing.KeptUp)
				require.True(t, c.Active)
				require.Equal(t, tc.settled, c.Settled)
				require.Equal(t, tc.drain, c.SettleLimit)
				require.Equal(t, rep.Processing.Elapsed+c.Settle, c.Elapsed-cond(c.Settled, settleConfirm, 0),
					"the window runs to the last scrape")
				if !tc.settled {
					require.Less(t, c.Entered, rep.Accepted/10, "the lead shards were still behind")
					return
				}
				// Every tenth event the collector accepted ran the campaign.
				require.Equal(t, rep.Accepted/10, c.Entered)
				require.Equal(t, 4*c.Entered, c.Steps)
				// The lead shards caught up 500ms after the visitor shards,
				// which kept up: settled then, to within a poll, and
				// confirmed settleConfirm later.
				require.InDelta(t, float64(leadsBehind), float64(c.Settle), float64(drainPollEvery))
				require.InDelta(t, float64(c.Steps)/c.Elapsed.Seconds(), c.StepsPerSec, 1e-6)
				require.InDelta(t, 1/c.Elapsed.Minutes(), c.OutboxWritesPerMin, 1e-6)
				require.InDelta(t, 1/float64(c.External), c.OutboxShare, 1e-9)
			})
		})
	}
}

func TestRunReportsCampaignSettling(t *testing.T) {
	// Started outside the bubble: a goroutine blocked on the network would
	// keep virtual time from advancing.
	recv, err := StartReceiver("127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, recv.Close(context.Background())) }()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeCollector()
		mux := http.NewServeMux()
		mux.Handle("POST /v1/batch", f)
		mux.Handle("GET /metrics", &fakeCampaigns{shards: &fakeShards{f: f, rate: 5000}, leadsBehind: 3 * time.Second})
		var settling []Snapshot
		rep, err := Run(t.Context(), Options{
			URL: "http://collector.test", Rate: 1000, BatchSize: 10, Duration: time.Second,
			MetricsURL: "http://collector.test/metrics", Drain: time.Minute, Receiver: recv,
			HTTPClient: &http.Client{Transport: handlerTransport{mux}},
			Progress: func(s Snapshot) {
				if s.Settling {
					settling = append(settling, s)
				}
			},
		})
		require.NoError(t, err)
		// Nothing had entered by the end of the load, but with a receiver
		// Run waits for the campaigns all the same.
		require.True(t, rep.Campaigns.Settled)
		require.Equal(t, rep.Accepted/10, rep.Campaigns.Entered)
		require.Equal(t, &ReceiverCounts{}, rep.Campaigns.Receiver)
		// Settled 3s after the load: told about once a second until then.
		require.Len(t, settling, 3)
		for _, s := range settling {
			require.True(t, s.Draining)
			require.Equal(t, rep.Accepted, s.Accepted)
		}
	})
}

func TestReportTextCampaigns(t *testing.T) {
	t.Parallel()
	rep := Report{
		URL: "http://127.0.0.1:8080/v1/batch", Concurrency: 8, BatchSize: 100, Errors: map[int]int{},
		Processing: Processing{Measured: true, Running: true, Tenant: "tn_x"},
		Campaigns: Campaigns{
			Active: true, Tenant: "tn_x", Entered: 2100, Completed: 2090, Failed: 3, Removed: 2,
			Steps: 8400, External: 2100, StepsPerSec: 812.3, LoadStepsPerSec: 840,
			Trigger: ProcessingLatency{
				Count: 2100, Mean: 27400 * time.Microsecond,
				P50: Estimate{Value: 22912 * time.Microsecond}, P99: Estimate{Value: 99700 * time.Microsecond},
				P999: Estimate{Value: 10 * time.Second, Above: true},
			},
			Delivered: ProcessingLatency{
				Count: 2095, Mean: 29600 * time.Microsecond,
				P50: Estimate{Value: 24400 * time.Microsecond}, P99: Estimate{Value: 120 * time.Millisecond},
				P999: Estimate{Value: 250 * time.Millisecond},
			},
			WebhooksDelivered: 2095, WebhooksFailed: 1, Inflight: 4,
			OutboxWrites: 21, OutboxWritesPerMin: 121.9, OutboxShare: 0.01,
			Elapsed: 10340 * time.Millisecond, SettleLimit: 30 * time.Second, Settled: true, Settle: 1220 * time.Millisecond,
			Receiver: &ReceiverCounts{Requests: 2097, Keys: 2096},
		},
	}
	text := rep.String()
	for _, want := range []string{
		"campaign runs     2100 entered, 2090 completed, 3 failed, 2 removed, of tenant tn_x\n",
		"ingest→trigger    p50 ~22.9ms  p99 ~99.7ms  p99.9 >10s  mean 27.4ms  (2100 runs of all tenants; bucket-interpolated)\n",
		"actions           8400 campaign steps, 2100 of them external (812/s over 10.3s; 840/s during the load)\n",
		"ingest→delivered  p50 ~24.4ms  p99 ~120ms  p99.9 ~250ms  mean 29.6ms  (2095 webhooks of all tenants; bucket-interpolated)\n",
		"webhooks          2095 delivered, 1 failed for good, of tenant tn_x; 4 effects still in the senders\n",
		"webhook receiver  2097 requests, 2096 distinct idempotency keys\n",
		"outbox writes     21 (122/min over 10.3s; 1.00% of the external steps of all tenants)\n",
		"campaigns         settled 1.22s after the load\n",
	} {
		require.Contains(t, text, want)
	}

	c := &rep.Campaigns
	c.Settled, c.Settle = false, 30*time.Second
	require.Contains(t, rep.String(), "campaigns         not settled after waiting 30s (lead shards behind, or effects still in the senders)\n")
	c.SettleLimit = 0
	require.Contains(t, rep.String(), "campaigns         settling not waited for\n")
	c.Trigger, c.Delivered, c.Tenant = ProcessingLatency{}, ProcessingLatency{}, ""
	text = rep.String()
	require.Contains(t, text, "ingest→trigger    no run started\n")
	require.Contains(t, text, "ingest→delivered  no webhook delivered\n")
	require.Contains(t, text, "campaign runs     2100 entered, 2090 completed, 3 failed, 2 removed, of all tenants\n")

	// A run with a receiver reports on campaigns even when none ran.
	rep.Campaigns = Campaigns{Receiver: &ReceiverCounts{}}
	require.Contains(t, rep.String(), "webhook receiver  0 requests, 0 distinct idempotency keys\n")
	rep.Campaigns = Campaigns{}
	require.NotContains(t, rep.String(), "campaign")
}

func TestReceiver(t *testing.T) {
	t.Parallel()
	r, err := StartReceiver("127.0.0.1:0")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(r.URL(), "http://127.0.0.1:"), r.URL())
	post := func(key string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, r.URL()+"/hook", strings.NewReader(`{"lead":"ld_1"}`))
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	post("k1")
	post("k1") // a retry
	post("k2")
	post("")
	require.Equal(t, ReceiverCounts{Requests: 4, Keys: 3}, r.Counts())
	require.NoError(t, r.Close(t.Context()))
	fresh := &http.Client{Transport: &http.Transport{}}
	_, err = fresh.Post(r.URL(), "application/json", strings.NewReader("{}"))
	require.Error(t, err, "closed")
}
