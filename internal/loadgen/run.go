package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultConcurrency    = 8
	DefaultBatchSize      = 100
	DefaultRequestTimeout = 30 * time.Second
)

// maxAnswerBytes bounds how much of an answer is read.
const maxAnswerBytes = 4 << 20

// Options configures a load run. Only URL is required; zero fields take the
// documented defaults.
type Options struct {
	// URL is the collector's base URL, like http://127.0.0.1:8080; batches
	// are posted to URL + "/v1/batch".
	URL string
	// WriteKey is sent as the Basic auth user name with an empty password.
	// Empty sends no Authorization header.
	WriteKey string
	// Rate is the target in events per second. With Rate > 0 the run is
	// open-loop: request i is due at start + i*BatchSize/Rate whether or not
	// earlier requests were answered, and its latency counts from that due
	// time, so a server that falls behind shows as latency instead of
	// slowing the generator down (no coordinated omission). Zero sends as
	// fast as the workers can, each one back to back (closed loop).
	Rate float64
	// Duration bounds the run. Zero runs until ctx is cancelled.
	Duration time.Duration
	// Events, when positive, also bounds the run: it ends once requests
	// for that many events (rounded up to whole batches) were sent.
	Events int64
	// Concurrency is the number of requests in flight at most; 0 means
	// DefaultConcurrency.
	Concurrency int
	// BatchSize is the number of events per request; 0 means
	// DefaultBatchSize.
	BatchSize int
	// Visitors is the size of the visitor pool; 0 means DefaultVisitors.
	Visitors int
	// Seed selects the visitor pool and the events (see Model).
	Seed uint64
	// RunID prefixes every messageId. Empty means a random one, so that
	// runs never repeat each other's message ids.
	RunID string
	// Gzip compresses each body (at gzip.BestSpeed, to spare the client's
	// CPU) and sends it with Content-Encoding: gzip.
	Gzip bool
	// MetricsURL, when set, is the server's Prometheus endpoint: its
	// process_cpu_seconds_total is read before and after the run to report
	// the server's CPU cost per accepted event, and its shard series before,
	// every second during and after the run to report processing (see
	// Processing).
	MetricsURL string
	// Tenant is the tenant id, as the server's metrics label it, whose
	// events Processing counts. Empty, or unknown to the server, counts
	// every tenant's.
	Tenant string
	// Drain is how long Run waits after the load, with MetricsURL, for the
	// shards to process what the collector accepted, reading the metrics
	// every 100ms; zero does not wait. Run does not wait after a run
	// interrupted by ctx before its Duration, and the wait of a run without
	// Duration, which ctx ends, is not cut short by ctx.
	Drain time.Duration
	// Receiver, when set, is the webhook endpoint of the campaign the run
	// triggers: Run waits for the campaigns to settle after the load, as
	// long as Drain allows, and reports what the receiver was sent (see
	// Campaigns). Run does not close it.
	Receiver *Receiver
	// RequestTimeout bounds one request, answer included; 0 means
	// DefaultRequestTimeout. In-flight requests are not cut short when the
	// run stops, only by this timeout.
	RequestTimeout time.Duration
	// Progress, when set, is called about once per second, from one
	// goroutine at a time, while the run lasts, the drain included. It must
	// return quickly.
	Progress func(Snapshot)
	// HTTPClient sends the requests. Nil means a client of Run's own, with
	// one idle connection kept per worker.
	HTTPClient *http.Client
}

// withDefaults validates o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return o, fmt.Errorf("%w: parsing URL %q: %w", ErrInvalidOptions, o.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return o, fmt.Errorf("%w: URL %q is not an http(s) URL with a host", ErrInvalidOptions, o.URL)
	}
	switch {
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return o, fmt.Errorf("%w: rate %v is not a finite number of events per second", ErrInvalidOptions, o.Rate)
	case o.Duration < 0:
		return o, fmt.Errorf("%w: duration %v is negative", ErrInvalidOptions, o.Duration)
	case o.Concurrency < 0:
		return o, fmt.Errorf("%w: concurrency %d is negative", ErrInvalidOptions, o.Concurrency)
	case o.BatchSize < 0:
		return o, fmt.Errorf("%w: batch size %d is negative", ErrInvalidOptions, o.BatchSize)
	case o.Visitors < 0:
		return o, fmt.Errorf("%w: visitors %d is negative", ErrInvalidOptions, o.Visitors)
	case o.RequestTimeout < 0:
		return o, fmt.Errorf("%w: request timeout %v is negative", ErrInvalidOptions, o.RequestTimeout)
	case o.Drain < 0:
		return o, fmt.Errorf("%w: drain %v is negative", ErrInvalidOptions, o.Drain)
	case o.Events < 0:
		return o, fmt.Errorf("%w: events %d is negative", ErrInvalidOptions, o.Events)
	}
	if o.MetricsURL != "" {
		if m, err := url.Parse(o.MetricsURL); err != nil || m.Host == "" {
			return o, fmt.Errorf("%w: metrics URL %q is not an absolute URL", ErrInvalidOptions, o.MetricsURL)
		}
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Visitors == 0 {
		o.Visitors = DefaultVisitors
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.RunID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.RunID = "lg" + hex.EncodeToString(b[:])
	}
	return o, nil
}

// Snapshot is the progress of a run so far.
type Snapshot struct {
	// Elapsed is the time since the run started.
	Elapsed time.Duration
	// Sent, Accepted and Rejected count events so far.
	Sent, Accepted, Rejected int64
	// Requests counts requests sent so far.
	Requests int64
	// Failed counts requests answered with a status other than 200 or not
	// answered at all.
	Failed int64
	// AcceptedPerSec is the acceptance rate since the previous snapshot.
	AcceptedPerSec float64
	// Draining is set once the load is over, while Run waits for the
	// server to process what it accepted (Options.Drain); Backlog then
	// counts the events accepted but not processed yet.
	Draining bool
	Backlog  int64
	// Settling is set, with Draining, once processing has caught up,
	// while Run waits for the campaign runs and their deliveries to
	// finish.
	Settling bool
}

// Run drives the collector at opt.URL with batches from a Model until
// opt.Duration has passed or ctx is cancelled, waits for the requests in
// flight, and reports what happened.
//
// Cancelling ctx before opt.Duration stops the run early: Run returns the
// report of what was done with an error wrapping ctx's. With a zero
// Duration, cancelling ctx is the normal end and the error is nil. Run
// returns an error wrapping ErrInvalidOptions, and sends nothing, when opt
// is invalid. Failed requests are not errors of Run: they are counted in
// the report.
func Run(ctx context.Context, opt Options) (Report, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return Report{}, err
	}
	client := opt.HTTPClient
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = opt.Concurrency
		t.MaxIdleConnsPerHost = opt.Concurrency
		t.DisableCompression = true
		defer t.CloseIdleConnections()
		client = &http.Client{Transport: t}
	}
	r := &runner{
		opt:    opt,
		client: client,
		target: strings.TrimRight(opt.URL, "/") + "/v1/batch",
		bodies: &bodyPool{},
	}
	if opt.Rate > 0 {
		r.interval = float64(opt.BatchSize) / opt.Rate * float64(time.Second)
	}
	if opt.Events > 0 {
		r.maxRequests = (opt.Events + int64(opt.BatchSize) - 1) / int64(opt.BatchSize)
	}
	var pb *probe
	if opt.MetricsURL != "" {
		pb = &probe{client: client, url: opt.MetricsURL, timeout: opt.RequestTimeout, tenant: opt.Tenant}
		if pb.before, err = pb.read(ctx); err != nil {
			return Report{}, fmt.Errorf("reading server cpu before the run: %w", err)
		}
	}

	r.start = time.Now()
	var stop context.Context
	var cancel context.CancelFunc
	if opt.Duration > 0 {
		r.end = r.start.Add(opt.Duration)
		stop, cancel = context.WithDeadline(ctx, r.end)
	} else {
		stop, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	// Requests outlive the stop signal: only RequestTimeout cuts them.
	reqCtx := context.WithoutCancel(ctx)
	workers := make([]*worker, opt.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := r.newWorker(reqCtx, i)
		workers[i] = w
		wg.Go(func() { w.run(stop) })
	}
	var mon sync.WaitGroup
	done := make(chan struct{})
	mon.Go(func() { r.monitor(ctx, stop, done) })
	sampling, stopSampling := context.WithCancel(stop)
	defer stopSampling()
	if pb != nil {
		mon.Go(func() { pb.sample(sampling) })
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	stopSampling()
	close(done)
	mon.Wait()

	rep := r.report(workers, elapsed)
	var errs []error
	if r.interrupted && opt.Duration > 0 {
		errs = append(errs, fmt.Errorf("running load: stopped after %v of %v: %w", r.stoppedAt.Sub(r.start).Round(time.Millisecond), opt.Duration, ctx.Err()))
	}
	if pb != nil {
		after, err := pb.read(context.WithoutCancel(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("reading server cpu after the run: %w", err))
		} else {
			rep.CPUMeasured = true
			rep.ServerCPUSeconds = after.cpu - pb.before.cpu
			if rep.Accepted > 0 {
				rep.CPUSecondsPerMillion = rep.ServerCPUSeconds / float64(rep.Accepted) * 1e6
			}
			drain, dctx := opt.Drain, ctx
			switch {
			case r.interrupted && opt.Duration > 0:
				drain = 0
			case opt.Duration == 0:
				dctx = context.WithoutCancel(ctx) // cancelling ctx was the normal end of the load
			}
			if opt.Progress != nil {
				pb.progress = func(backlog int64, at time.Time) {
					opt.Progress(Snapshot{
						Elapsed: at.Sub(r.start), Sent: rep.Sent, Accepted: rep.Accepted, Rejected: rep.Rejected,
						Requests: rep.Requests, Failed: r.failed.Load(), Draining: true, Backlog: backlog,
					})
				}
				pb.settling = func(at time.Time) {
					opt.Progress(Snapshot{
						Elapsed: at.Sub(r.start), Sent: rep.Sent, Accepted: rep.Accepted, Rejected: rep.Rejected,
						Requests: rep.Requests, Failed: r.failed.Load(), Draining: true, Settling: true,
					})
				}
			}
			loadEnd := r.start.Add(elapsed)
			rep.Processing = pb.follow(dctx, after, loadEnd, rep.Accepted, drain)
			if rep.Processing.Running {
				rep.Campaigns = pb.campaigns(dctx, rep.Processing.Tenant, after, loadEnd, drain, opt.Receiver)
			}
		}
	}
	return rep, errors.Join(errs...)
}

// runner is the state shared by the workers of one run.
type runner struct {
	opt      Options
	client   *http.Client
	target   string
	bodies   *bodyPool
	interval float64 // nanoseconds between due times, open loop only

	start, end time.Time // end is zero without a Duration
	next       atomic.Int64
	// maxRequests bounds the requests of a run with Events (0: no bound).
	maxRequests int64
	// Written by monitor, read after it returned: when the stop signal
	// came, and whether it was ctx's rather than the end of Duration.
	stoppedAt   time.Time
	interrupted bool

	sent, accepted, rejected, requests, failed, bodyBytes atomic.Int64
}

// take claims the next request of the closed loop, false once a run
// bounded by Events has sent them all.
func (r *runner) take() bool {
	return r.maxRequests == 0 || r.next.Add(1) <= r.maxRequests
}

// due returns when request i is due in the open loop.
func (r *runner) due(i int64) time.Time {
	const never = 1 << 62 // 146 years: a tiny Rate must not overflow
	return r.start.Add(time.Duration(min(float64(i)*r.interval, never)))
}

// monitor reports progress and notes when and why the stop signal came,
// until done.
func (r *runner) monitor(ctx, stop context.Context, done <-chan struct{}) {
	var tick <-chan time.Time
	if r.opt.Progress != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	stopped := stop.Done()
	prevAt, prevAccepted := r.start, int64(0)
	for {
		select {
		case <-done:
			if stopped != nil && stop.Err() != nil { // both were ready
				r.stoppedAt, r.interrupted = time.Now(), ctx.Err() != nil
			}
			return
		case <-stopped:
			r.stoppedAt, r.interrupted = time.Now(), ctx.Err() != nil
			stopped = nil
		case now := <-tick:
			s := Snapshot{
				Elapsed:  now.Sub(r.start),
				Sent:     r.sent.Load(),
				Accepted: r.accepted.Load(),
				Rejected: r.rejected.Load(),
				Requests: r.requests.Load(),
				Failed:   r.failed.Load(),
			}
			if d := now.Sub(prevAt).Seconds(); d > 0 {
				s.AcceptedPerSec = float64(s.Accepted-prevAccepted) / d
			}
			prevAt, prevAccepted = now, s.Accepted
			r.opt.Progress(s)
		}
	}
}

// worker sends requests one at a time. Its statistics are its own until
// the run's WaitGroup says it has finished.
type worker struct {
	r      *runner
	ctx    context.Context // for requests: not cancelled by the stop signal
	model  *Model
	raw    []byte // uncompressed body when gzipping
	zw     *gzip.Writer
	zout   sliceWriter
	answer bytes.Buffer

	latency   histogram
	status    map[int]int
	transport int
	firstErr  string
}

func (r *runner) newWorker(ctx context.Context, i int) *worker {
	return &worker{
		r:      r,
		ctx:    ctx,
		model:  NewModel(ModelConfig{Visitors: r.opt.Visitors, Seed: r.opt.Seed, Stream: i, RunID: r.opt.RunID}),
		status: map[int]int{},
	}
}

// run sends requests until stop is done or, open loop, until the next due
// time is past the end of the run.
func (w *worker) run(stop context.Context) {
	r := w.r
	if r.interval == 0 {
		for stop.Err() == nil && r.take() {
			w.send(time.Now())
		}
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		i := r.next.Add(1) - 1
		if r.maxRequests > 0 && i >= r.maxRequests {
			return
		}
		at := r.due(i)
		if !r.end.IsZero() && !at.Before(r.end) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop.Done():
				return
			}
		}
		if stop.Err() != nil {
			return
		}
		w.send(at)
	}
}

// send posts one batch. Its latency counts from due: the due time in the
// open loop, the moment of sending in the closed loop.
func (w *worker) send(due time.Time) {
	r := w.r
	n := r.opt.BatchSize
	b := r.bodies.get()
	defer b.release()
	now := time.Now()
	if r.opt.Gzip {
		w.raw = w.model.AppendBatch(w.raw[:0], n, now)
		b.buf = w.compress(b.buf[:0], w.raw)
	} else {
		b.buf = w.model.AppendBatch(b.buf[:0], n, now)
	}
	r.sent.Add(int64(n))
	r.requests.Add(1)
	r.bodyBytes.Add(int64(len(b.buf)))

	ctx, cancel := context.WithTimeout(w.ctx, r.opt.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.target, nil)
	if err != nil {
		w.transportError(err)
		return
	}
	if req.Body, err = b.reader(); err != nil {
		w.transportError(err)
		return
	}
	req.GetBody = b.reader
	req.ContentLength = int64(len(b.buf))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "contrail-bench/"+LibraryVersion)
	if r.opt.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if r.opt.WriteKey != "" {
		req.SetBasicAuth(r.opt.WriteKey, "")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		w.transportError(err)
		return
	}
	w.answer.Reset()
	_, err = w.answer.ReadFrom(io.LimitReader(resp.Body, maxAnswerBytes))
	_ = resp.Body.Close()
	took := time.Since(due)
	if err != nil {
		w.transportError(fmt.Errorf("reading answer: %w", err))
		return
	}
	if resp.StatusCode != http.StatusOK {
		w.status[resp.StatusCode]++
		r.failed.Add(1)
		if w.firstErr == "" {
			w.firstErr = "HTTP " + strconv.Itoa(resp.StatusCode) + ": " + snippet(w.answer.Bytes())
		}
		return
	}
	// A Segment-compatible server may answer a bare {"success":true}: then
	// every event counts as accepted.
	accepted, ok := jsonInt(w.answer.Bytes(), "accepted")
	if !ok {
		accepted = int64(n)
	}
	rejected, _ := jsonInt(w.answer.Bytes(), "rejected")
	r.accepted.Add(accepted)
	r.rejected.Add(rejected)
	w.latency.record(took)
}

func (w *worker) transportError(err error) {
	w.transport++
	w.r.failed.Add(1)
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
}

// compress appends the gzip of raw to dst.
func (w *worker) compress(dst, raw []byte) []byte {
	w.zout.b = dst
	if w.zw == nil {
		w.zw, _ = gzip.NewWriterLevel(&w.zout, gzip.BestSpeed) // the level is valid
	} else {
		w.zw.Reset(&w.zout)
	}
	_, _ = w.zw.Write(raw) // sliceWriter does not fail
	_ = w.zw.Close()
	out := w.zout.b
	w.zout.b = nil
	return out
}

// jsonInt returns the integer value of the first "key": in a JSON object,
// without decoding the rest of it.
func jsonInt(b []byte, key string) (int64, bool) {
	for {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return 0, false
		}
		before, after := b[:i], b[i+len(key):]
		b = after
		if len(before) == 0 || before[len(before)-1] != '"' || len(after) == 0 || after[0] != '"' {
			continue
		}
		after = bytes.TrimLeft(after[1:], " \t\r\n")
		if len(after) == 0 || after[0] != ':' {
			continue
		}
		after = bytes.TrimLeft(after[1:], " \t\r\n")
		j := 0
		for j < len(after) && (after[j] >= '0' && after[j] <= '9' || j == 0 && after[j] == '-') {
			j++
		}
		v, err := strconv.ParseInt(string(after[:j]), 10, 64)
		return v, err == nil
	}
}

// snippet returns the start of an error answer, for the report.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// report sums the workers' statistics. It must be called after they finished.
func (r *runner) report(workers []*worker, elapsed time.Duration) Report {
	rep := Report{
		URL:         r.target,
		Rate:        r.opt.Rate,
		Concurrency: r.opt.Concurrency,
		BatchSize:   r.opt.BatchSize,
		Gzip:        r.opt.Gzip,
		Sent:        r.sent.Load(),
		Accepted:    r.accepted.Load(),
		Rejected:    r.rejected.Load(),
		Requests:    r.requests.Load(),
		BodyBytes:   r.bodyBytes.Load(),
		Errors:      map[int]int{},
		Elapsed:     elapsed,
	}
	var lat histogram
	for _, w := range workers {
		lat.merge(&w.latency)
		for code, n := range w.status {
			rep.Errors[code] += n
		}
		rep.TransportErrors += w.transport
		if rep.FirstError == "" {
			rep.FirstError = w.firstErr
		}
	}
	rep.Latency = Latency{
		Count: int64(lat.n),
		Mean:  lat.mean(),
		P50:   lat.quantile(0.5),
		P99:   lat.quantile(0.99),
		P999:  lat.quantile(0.999),
		Max:   lat.max,
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.AcceptedPerSec = float64(rep.Accepted) / s
	}
	if r.interval > 0 {
		stopAt := r.end
		if !r.stoppedAt.IsZero() && (stopAt.IsZero() || r.stoppedAt.Before(stopAt)) {
			stopAt = r.stoppedAt
		}
		// Requests due before the stop: every i with i*interval < span.
		due := int64(math.Ceil(float64(stopAt.Sub(r.start)) / r.interval))
		rep.Missed = max(due-rep.Requests, 0) * int64(r.opt.BatchSize)
	}
	return rep
}
