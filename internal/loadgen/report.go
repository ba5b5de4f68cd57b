package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	// URL is the endpoint the batches were posted to.
	URL string
	// Rate, Concurrency, BatchSize and Gzip are the options the run used,
	// defaults applied; Rate 0 was a closed loop.
	Rate        float64
	Concurrency int
	BatchSize   int
	Gzip        bool

	// Sent counts the events in every request sent, answered or not.
	Sent int64
	// Accepted and Rejected count events as the 200 answers reported them.
	Accepted, Rejected int64
	// Missed counts the events of requests that were due before the run
	// stopped but never sent because every worker was busy: the target Rate
	// was more than the server, or Concurrency, could sustain. Always 0 in
	// the closed loop.
	Missed int64
	// Requests counts the requests sent.
	Requests int64
	// Errors counts the requests answered with a status other than 200, by
	// status.
	Errors map[int]int
	// TransportErrors counts the requests that got no answer: refused
	// connections, timeouts, broken answers.
	TransportErrors int
	// FirstError describes one failed request (the status and the start of
	// the answer, or the transport error), to help diagnose a failing run.
	FirstError string
	// BodyBytes is the size of the request bodies as sent (compressed with
	// Gzip).
	BodyBytes int64

	// Elapsed runs from the start to the last answer.
	Elapsed time.Duration
	// AcceptedPerSec is Accepted over Elapsed.
	AcceptedPerSec float64
	// Latency is the acknowledgement latency of the requests answered 200.
	Latency Latency

	// CPUMeasured reports whether the server's CPU was read (MetricsURL).
	CPUMeasured bool
	// ServerCPUSeconds is the growth of the server's
	// process_cpu_seconds_total over the run.
	ServerCPUSeconds float64
	// CPUSecondsPerMillion is ServerCPUSeconds per million accepted events.
	CPUSecondsPerMillion float64

	// Processing is what the server's shards did with the events, read
	// from MetricsURL.
	Processing Processing
	// Campaigns is what the server's trigger campaigns did during the run,
	// read from MetricsURL on a node that runs shards.
	Campaigns Campaigns
}

// Latency summarises request latencies. In the open loop (Rate > 0) a
// request's latency counts from when it was due, not from when a worker got
// round to sending it. Quantiles are within 1% of the exact value.
type Latency struct {
	// Count is the number of requests measured.
	Count int64
	// Mean is their average.
	Mean time.Duration
	// P50, P99 and P999 are the median, 99th and 99.9th percentiles.
	P50, P99, P999 time.Duration
	// Max is the slowest.
	Max time.Duration
}

// String returns the table WriteText writes.
func (r Report) String() string {
	var b strings.Builder
	_ = r.WriteText(&b) // a strings.Builder does not fail
	return b.String()
}

// WriteText writes a readable summary of the report to w.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	mode := "closed loop"
	if r.Rate > 0 {
		mode = fmt.Sprintf("open loop at %s events/s", count(r.Rate))
	}
	enc := ""
	if r.Gzip {
		enc = ", gzip"
	}
	row("target", "%s", r.URL)
	row("load", "%s, %d workers, %d events per request%s", mode, r.Concurrency, r.BatchSize, enc)
	row("elapsed", "%s", round(r.Elapsed))
	row("requests", "%d (%s/s, %s per request)", r.Requests, count(perSec(float64(r.Requests), r.Elapsed)), bytesize(r.BodyBytes, r.Requests))
	row("events sent", "%d (%s/s)", r.Sent, count(perSec(float64(r.Sent), r.Elapsed)))
	row("accepted", "%d (%s/s)", r.Accepted, count(r.AcceptedPerSec))
	row("rejected", "%d", r.Rejected)
	if r.Rate > 0 {
		row("missed", "%d%s", r.Missed, cond(r.Missed > 0, " (the target rate was not sustained)", ""))
	}
	row("failed requests", "%s", r.failures())
	if r.FirstError != "" {
		row("first error", "%s", r.FirstError)
	}
	l := r.Latency
	row("ack latency", "p50 %s  p99 %s  p99.9 %s  max %s  mean %s  (%d requests)",
		round(l.P50), round(l.P99), round(l.P999), round(l.Max), round(l.Mean), l.Count)
	if r.CPUMeasured {
		row("server cpu", "%.2fs (%.2f s per million events)", r.ServerCPUSeconds, r.CPUSecondsPerMillion)
	}
	if r.Processing.Measured {
		r.Processing.writeRows(row)
	}
	if r.Campaigns.shown() {
		r.Campaigns.writeRows(row)
	}
	return tw.Flush()
}

// writeRows adds the processing figures to the table of WriteText.
func (p Processing) writeRows(row func(name, format string, args ...any)) {
	if !p.Running {
		row("processing", "not running on this node (no contrail_shard_ series in its metrics)")
		return
	}
	lag := fmt.Sprintf("%d events behind at the end of the load, at most %d; lag gauges %s from %d to %d log messages, at most %d",
		p.Backlog, p.BacklogMax, cond(p.LagEnd > p.LagStart, "grew", "went"), p.LagStart, p.LagEnd, p.LagMax)
	if p.BacklogStart > 0 {
		lag = fmt.Sprintf("%d events were waiting before the load; ", p.BacklogStart) + lag
	}
	switch {
	case p.KeptUp:
		row("processing", "kept up: yes (%s)", lag)
	case p.CaughtUp || p.DrainLimit > 0:
		row("processing", "kept up: no (%s)", lag)
	default:
		row("processing", "kept up: not known without waiting for the drain (%s)", lag)
	}
	who := "all tenants"
	if p.Tenant != "" {
		who = "tenant " + p.Tenant
	}
	dead := ""
	if p.Dead > 0 {
		dead = fmt.Sprintf(" + %d sent to DEAD", p.Dead)
	}
	row("processed", "%d%s of %d accepted events of %s (%s/s over %s; %s/s during the load)",
		p.Processed, dead, p.Accepted, who, count(p.ProcessedPerSec), round(p.Elapsed), count(p.LoadProcessedPerSec))
	if l := p.Latency; l.Count > 0 {
		row("ingest→processed", "p50 %s  p99 %s  p99.9 %s  mean %s  (%d log messages of all tenants; bucket-interpolated, buckets %s to %s, up to %.1f× apart)",
			l.P50, l.P99, l.P999, round(l.Mean), l.Count, round(l.Low), round(l.High), l.Ratio)
	} else {
		row("ingest→processed", "no log message processed")
	}
	failure := ""
	if p.Error != "" {
		failure = " (" + p.Error + ")"
	}
	switch {
	case p.CaughtUp:
		row("drain", "back to real time %s after the load", round(p.Drain))
	case p.DrainLimit > 0:
		row("drain", "%d events still unprocessed after waiting %s%s", p.Remaining, round(p.Drain), failure)
	default:
		row("drain", "not waited for")
	}
	if p.DrainLimit > 0 {
		row("cpu with drain", "%.2fs (%.2f s per million processed events)", p.CPUSeconds, p.CPUSecondsPerMillion)
	}
}

// failures lists failed requests by status, then transport errors.
func (r Report) failures() string {
	codes := make([]int, 0, len(r.Errors))
	for c := range r.Errors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", r.Errors[c], c))
	}
	if r.TransportErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d transport", r.TransportErrors))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func perSec(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// count formats a rate with three significant digits and a k or M suffix.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

func bytesize(total, n int64) string {
	if n == 0 {
		return "0 B"
	}
	avg := float64(total) / float64(n)
	switch {
	case avg >= 1<<20:
		return fmt.Sprintf("%.1f MiB", avg/(1<<20))
	case avg >= 1<<10:
		return fmt.Sprintf("%.1f KiB", avg/(1<<10))
	}
	return fmt.Sprintf("%.0f B", avg)
}

// round keeps three significant digits of d, which is all a latency needs.
func round(d time.Duration) time.Duration {
	for unit := time.Nanosecond; unit < time.Hour; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit)
		}
	}
	return d.Round(time.Second)
}

func cond[T any](b bool, yes, no T) T {
	if b {
		return yes
	}
	return no
}
