package loadgen

import (
	"context"
	"math"
	"net/http"
	"time"
)

// DefaultDrain is how long `contrail bench ingest` waits after the load for
// the shards to process what the collector accepted.
const DefaultDrain = 30 * time.Second

// KeptUpWithin is how soon after the load the shards must have caught up
// for processing to count as having kept pace with ingest. What they still
// have to do then is the events in flight, not a queue that grew.
const KeptUpWithin = time.Second

const (
	// lagSampleEvery is how often the lag is read while the load lasts.
	lagSampleEvery = time.Second
	// drainPollEvery is how often the counters are read after the load,
	// and so the resolution of Processing.Drain.
	drainPollEvery = 100 * time.Millisecond
)

// Processing is what the node's visitor shards did with the events, as the
// node's /metrics tells it: the EVENTS stream's processed counter, lag
// gauges and ingest-to-processed histogram, read before the load, every
// second during it, and after it until the shards have caught up.
type Processing struct {
	// Measured reports whether the figures were read: Options.MetricsURL
	// was set and could be read after the load.
	Measured bool
	// Running reports whether the node runs shards. It is false on a
	// collector-only node (serve --process=false), and then the other
	// figures are zero. It is told from the contrail_shard_ series, which
	// appear once a shard has applied its first message: a node whose
	// shards applied nothing since the node started looks collector-only.
	Running bool
	// Tenant is the tenant label whose events are counted: Options.Tenant
	// when the server's counters know it, otherwise empty, meaning all
	// tenants together.
	Tenant string
	// Accepted counts the events that the server's collector stored for
	// Tenant over the run (contrail_collect_events_accepted_total), or
	// Report.Accepted if the server does not expose that counter.
	// Processing had to get through these and BacklogStart.
	Accepted int64
	// Processed and Dead count the events of Tenant that the EVENTS shards
	// applied or sent to DEAD, from the scrape before the load to the last
	// one.
	Processed, Dead int64
	// Elapsed runs from the scrape before the load to the last scrape:
	// when processing caught up, or when Run gave up waiting.
	Elapsed time.Duration
	// ProcessedPerSec is Processed+Dead over Elapsed. When processing fell
	// behind it was busy all along, and this is its sustained throughput;
	// when it kept up, it is about the ingest rate.
	ProcessedPerSec float64
	// LoadProcessedPerSec is the same rate until the scrape just after the
	// load.
	LoadProcessedPerSec float64
	// Latency is the time from the collector receiving an event to its
	// shard committing it.
	Latency ProcessingLatency
	// BacklogStart counts the events accepted but not processed before the
	// load, from the counters' totals (low after a server restart).
	// Processing has to get through them too, and they count in Processed
	// and Remaining: a run is best started with none.
	BacklogStart int64
	// Backlog counts the events accepted but not processed yet, from the
	// counters, just after the load; BacklogMax is the most seen, sampled
	// every second. They are the lag in events, and what a run shows
	// processing falling behind by.
	Backlog, BacklogMax int64
	// LagStart, LagEnd and LagMax sum the contrail_shard_lag_messages
	// gauges of the EVENTS partitions, in log messages (a message holds a
	// group commit of events): before the load, just after it, and the
	// most seen. A shard sets its gauge, when it applies a message, to the
	// messages the server had not delivered to it yet: the gauges leave out
	// what the shard's consumer has fetched ahead, and a stalled shard's
	// gauge stands still. Under load they can read near 0 with thousands
	// of messages waiting; Backlog is the figure to trust.
	LagStart, LagEnd, LagMax int64
	// DrainLimit is how long Run would wait after the load for processing
	// to catch up: Options.Drain, or 0 when it did not wait (no Drain, or
	// the run was interrupted).
	DrainLimit time.Duration
	// CaughtUp reports whether Processed+Dead reached BacklogStart+Accepted
	// by the last scrape.
	CaughtUp bool
	// Drain is how long after the load's last answer processing caught up:
	// the time back to real time, to within drainPollEvery (100ms). Without
	// CaughtUp, it is how long Run waited in vain.
	Drain time.Duration
	// Remaining counts the events left unprocessed at the last scrape.
	Remaining int64
	// KeptUp reports whether processing kept pace with ingest: it caught up
	// within KeptUpWithin of the end of the load.
	KeptUp bool
	// CPUSeconds is the growth of the server's process_cpu_seconds_total
	// from before the load to the last scrape, so including the drain, and
	// CPUSecondsPerMillion is per million events processed (with Dead).
	CPUSeconds, CPUSecondsPerMillion float64
	// Error describes why the drain could not read the metrics, if it
	// could not.
	Error string
}

// ProcessingLatency summarises a latency histogram of the server over the
// run: contrail_shard_ingest_to_processed_seconds for Processing, which
// the shards observe once per log message, from the receivedAt of the
// message's last event, for every tenant (it counts log messages, not
// events), and the campaign histograms for Campaigns. Its quantiles are
// interpolated within the histogram's buckets, so each is only known to
// lie in its bucket.
type ProcessingLatency struct {
	// Count is the number of observations.
	Count int64
	// Mean is their average, exact from the histogram's sum.
	Mean time.Duration
	// P50, P99 and P999 are the median, 99th and 99.9th percentiles.
	P50, P99, P999 Estimate
	// Low and High are the smallest and largest finite bucket bounds, and
	// Ratio the largest ratio between neighbouring bounds.
	Low, High time.Duration
	Ratio     float64
}

// Estimate is a quantile interpolated within histogram buckets.
type Estimate struct {
	// Value is the estimate.
	Value time.Duration
	// Above reports that the quantile fell beyond the largest finite
	// bucket bound, which Value then is: the truth is larger.
	Above bool
}

// String returns the estimate as "~12.3ms", or ">10s" when Above.
func (e Estimate) String() string {
	if e.Above {
		return ">" + round(e.Value).String()
	}
	return "~" + round(e.Value).String()
}

// probe follows the server's processing through a run. sample runs in its
// own goroutine during the load; follow runs after it has returned.
type probe struct {
	client  *http.Client
	url     string
	timeout time.Duration
	tenant  string

	// progress, when set, is told the backlog about once a second during
	// the drain, and settling about once a second while the campaigns
	// settle after it.
	progress func(backlog int64, at time.Time)
	settling func(at time.Time)

	// before is the scrape before the load, and last the last one follow
	// read.
	before, last serverMetrics
	peak         peak
}

// peak is the most a run's samples showed.
type peak struct {
	shards bool
	lag    float64
	// backlog and backlogAll are the events accepted but not processed,
	// of the probe's tenant and of all tenants: which one the report
	// counts is known only at the end.
	backlog, backlogAll float64
}

// read scrapes the server's metrics within the probe's timeout.
func (p *probe) read(ctx context.Context) (serverMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return scrape(ctx, p.client, p.url)
}

// sample reads the lag every lagSampleEvery until stop is done. A failed
// read is skipped: the samples only feed the peaks.
func (p *probe) sample(stop context.Context) {
	t := time.NewTicker(lagSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		if m, err := p.read(stop); err == nil {
			p.observe(m)
		}
	}
}

// observe adds a scrape to the peaks.
func (p *probe) observe(m serverMetrics) {
	p.peak.shards = p.peak.shards || m.shards
	p.peak.lag = max(p.peak.lag, m.lag)
	p.peak.backlog = max(p.peak.backlog, counts{before: p.before, tenant: p.tenant}.backlog(m))
	p.peak.backlogAll = max(p.peak.backlogAll, counts{before: p.before}.backlog(m))
}

// follow completes the figures once the load is over: after is the scrape
// just after it, loadEnd the load's last answer, accepted the client's
// count. With drain > 0 it keeps reading the metrics until the shards
// have processed what the collector accepted or drain has passed since
// loadEnd.
func (p *probe) follow(ctx context.Context, after serverMetrics, loadEnd time.Time, accepted int64, drain time.Duration) Processing {
	p.observe(p.before)
	p.observe(after)
	p.last = after
	pr := Processing{Measured: true, Running: p.peak.shards}
	if !pr.Running {
		return pr
	}
	pr.Tenant = p.tenant
	if !after.knows(pr.Tenant) && !p.before.knows(pr.Tenant) {
		pr.Tenant = ""
	}
	c := counts{before: p.before, tenant: pr.Tenant, clientAccepted: accepted}
	pr.BacklogStart = int64(c.startBacklog())
	pr.Backlog = int64(c.backlog(after))
	last := after
	pr.DrainLimit = drain
	if pr.CaughtUp = c.caughtUp(after); !pr.CaughtUp && drain > 0 {
		last, pr.Error = p.drain(ctx, c, after, loadEnd.Add(drain))
		pr.CaughtUp = c.caughtUp(last)
		if !pr.CaughtUp && ctx.Err() != nil {
			pr.Error = "interrupted"
		}
	}
	p.observe(last)
	p.last = last

	pr.Accepted = int64(c.accepted(last))
	pr.Processed = int64(c.processed(last))
	pr.Dead = int64(c.dead(last))
	pr.Remaining = int64(c.backlog(last))
	pr.BacklogMax = int64(cond(pr.Tenant == "", p.peak.backlogAll, p.peak.backlog))
	pr.Elapsed = last.at.Sub(p.before.at)
	pr.ProcessedPerSec = perSec(float64(pr.Processed+pr.Dead), pr.Elapsed)
	pr.LoadProcessedPerSec = perSec(c.processed(after)+c.dead(after), after.at.Sub(p.before.at))
	pr.Drain = max(last.at.Sub(loadEnd), 0)
	pr.KeptUp = pr.CaughtUp && pr.Drain <= KeptUpWithin
	pr.LagStart, pr.LagEnd, pr.LagMax = int64(p.before.lag), int64(after.lag), int64(p.peak.lag)
	pr.Latency = latencyOf(last.latency.since(p.before.latency), increase(p.before.latencySum, last.latencySum))
	pr.CPUSeconds = last.cpu - p.before.cpu
	if n := pr.Processed + pr.Dead; n > 0 {
		pr.CPUSecondsPerMillion = pr.CPUSeconds / float64(n) * 1e6
	}
	return pr
}

// drain reads the metrics every drainPollEvery until c.caughtUp or the
// deadline, and returns the last successful scrape, with the last error
// if the final reads failed.
func (p *probe) drain(ctx context.Context, c counts, last serverMetrics, deadline time.Time) (serverMetrics, string) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	timer := time.NewTimer(drainPollEvery)
	defer timer.Stop()
	var failure string
	told := time.Now()
	for {
		select {
		case <-ctx.Done():
			return last, failure
		case <-timer.C:
		}
		m, err := p.read(ctx)
		switch {
		case err == nil:
			last, failure = m, ""
			p.observe(m)
			if c.caughtUp(m) {
				return last, ""
			}
			if p.progress != nil && m.at.Sub(told) >= time.Second {
				told = m.at
				p.progress(int64(c.backlog(m)), m.at)
			}
		case ctx.Err() == nil:
			failure = err.Error()
		}
		timer.Reset(drainPollEvery)
	}
}

// knows reports whether the collector or the shards have counted events
// of tenant.
func (m serverMetrics) knows(tenant string) bool {
	if tenant == "" {
		return false
	}
	_, a := m.accepted[tenant]
	_, p := m.processed[tenant]
	_, d := m.dead[tenant]
	return a || p || d
}

// counts computes a run's event counts from a scrape, relative to the one
// before the load.
type counts struct {
	before         serverMetrics
	tenant         string // empty for all tenants
	clientAccepted int64  // when the server has no accepted counter
}

func (c counts) accepted(m serverMetrics) float64 {
	if len(m.accepted) == 0 {
		return float64(c.clientAccepted)
	}
	return increase(ofTenant(c.before.accepted, c.tenant), ofTenant(m.accepted, c.tenant))
}

func (c counts) processed(m serverMetrics) float64 {
	return increase(ofTenant(c.before.processed, c.tenant), ofTenant(m.processed, c.tenant))
}

func (c counts) dead(m serverMetrics) float64 {
	return increase(ofTenant(c.before.dead, c.tenant), ofTenant(m.dead, c.tenant))
}

// startBacklog returns the events accepted but not processed before the
// run, from the counters' totals. The totals count from the server's
// start, so after a restart, when the shards process again what was
// accepted before it, this comes out low, at worst 0.
func (c counts) startBacklog() float64 {
	b := c.before
	return max(ofTenant(b.accepted, c.tenant)-ofTenant(b.processed, c.tenant)-ofTenant(b.dead, c.tenant), 0)
}

// backlog returns the events accepted but not processed by m, those
// waiting before the run included.
func (c counts) backlog(m serverMetrics) float64 {
	return max(c.startBacklog()+c.accepted(m)-c.processed(m)-c.dead(m), 0)
}

// caughtUp reports whether, by m, the shards had processed (or sent to
// DEAD) every event the collector accepted.
func (c counts) caughtUp(m serverMetrics) bool {
	return c.backlog(m) < 0.5
}

// ofTenant returns the counter of tenant, or the sum of all tenants'.
func ofTenant(byTenant map[string]float64, tenant string) float64 {
	if tenant != "" {
		return byTenant[tenant]
	}
	var sum float64
	for _, v := range byTenant {
		sum += v
	}
	return sum
}

// increase returns how much a counter grew from prev to cur. A counter
// that went down was reset by a restart, and cur is what it counted since.
func increase(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// latencyOf summarises the observations in b, whose values summed to sum
// seconds.
func latencyOf(b buckets, sum float64) ProcessingLatency {
	n := b.total()
	if n <= 0 {
		return ProcessingLatency{}
	}
	est := func(q float64) Estimate {
		v, above, _ := b.quantile(q)
		return Estimate{Value: seconds(v), Above: above}
	}
	low, high, ratio := b.resolution()
	return ProcessingLatency{
		Count: int64(n), Mean: seconds(max(sum, 0) / n),
		P50: est(0.5), P99: est(0.99), P999: est(0.999),
		Low: seconds(low), High: seconds(high), Ratio: ratio,
	}
}

// seconds converts a metric's seconds to a Duration.
func seconds(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0
	}
	return time.Duration(math.Round(s * float64(time.Second)))
}
