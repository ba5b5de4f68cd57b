package loadgen

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeCollector answers /v1/batch as Contrail's collector does, and counts
// what it saw.
type fakeCollector struct {
	writeKey string
	// delay is how long each request takes (virtual time under synctest).
	delay time.Duration
	// status, when set, answers the n-th request (from 1) with its status.
	status func(n int64) int
	// onRequest, when set, is called with the number of each request.
	onRequest func(n int64)

	mu       sync.Mutex
	requests int64
	accepted int64
	rejected int64
	statuses map[int]int
	ids      map[string]bool
	gzipped  int
	problems []string
}

func newFakeCollector() *fakeCollector {
	return &fakeCollector{statuses: map[int]int{}, ids: map[string]bool{}}
}

func (f *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.mu.Unlock()
	if f.onRequest != nil {
		f.onRequest(n)
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	status := http.StatusOK
	if f.status != nil {
		status = f.status(n)
	}
	if user, pass, _ := r.BasicAuth(); user != f.writeKey || pass != "" {
		status = http.StatusUnauthorized
	}
	var body io.Reader = r.Body
	var problem error
	gzipped := r.Header.Get("Content-Encoding") == "gzip"
	if gzipped {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			problem = fmt.Errorf("gzip: %w", err)
		} else {
			body = zr
		}
	}
	var b struct {
		Batch []struct {
			MessageID string `json:"messageId"`
		} `json:"batch"`
	}
	if problem == nil {
		if err := json.NewDecoder(body).Decode(&b); err != nil {
			problem = fmt.Errorf("decoding batch: %w", err)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if problem != nil {
		f.problem("%v", problem)
		status = http.StatusBadRequest
	}
	f.statuses[status]++
	if status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"success":false,"error":{"code":"status_%d","message":"no"}}`, status)
		return
	}
	if gzipped {
		f.gzipped++
	}
	// Reject the events whose messageId ends in 7, about one in ten, to
	// exercise the rejected count.
	var results strings.Builder
	accepted := 0
	for i, e := range b.Batch {
		if f.ids[e.MessageID] {
			f.problem("duplicate messageId %s", e.MessageID)
		}
		f.ids[e.MessageID] = true
		if i > 0 {
			results.WriteByte(',')
		}
		if strings.HasSuffix(e.MessageID, "7") {
			fmt.Fprintf(&results, `{"messageId":%q,"status":"rejected","code":"invalid_event","message":"\"accepted\": no"}`, e.MessageID)
			continue
		}
		accepted++
		fmt.Fprintf(&results, `{"messageId":%q,"status":"accepted"}`, e.MessageID)
	}
	f.accepted += int64(accepted)
	f.rejected += int64(len(b.Batch) - accepted)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"success":true,"accepted":%d,"rejected":%d,"results":[%s]}`, accepted, len(b.Batch)-accepted, results.String())
}

// problem records something the client got wrong; mu must be held.
func (f *fakeCollector) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

// serveCollector starts f on a real listener.
func serveCollector(tb testing.TB, f *fakeCollector) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /v1/batch", f)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// handlerTransport serves requests with a handler in the calling goroutine,
// with no network, so that a run can live in a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

func inProcess(h http.Handler) *http.Client {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/batch", h)
	return &http.Client{Transport: handlerTransport{mux}}
}

func TestRunCountsWhatTheServerAccepted(t *testing.T) {
	t.Parallel()
	for _, gz := range []bool{false, true} {
		t.Run("gzip="+strconv.FormatBool(gz), func(t *testing.T) {
			t.Parallel()
			f := newFakeCollector()
			f.writeKey = "wk_test"
			rep, err := Run(t.Context(), Options{
				URL: serveCollector(t, f) + "/", WriteKey: "wk_test", Duration: 300 * time.Millisecond,
				Concurrency: 4, BatchSize: 20, Visitors: 1000, Gzip: gz,
			})
			require.NoError(t, err)
			f.mu.Lock()
			defer f.mu.Unlock()
			require.Empty(t, f.problems)
			require.Positive(t, rep.Requests)
			require.Equal(t, f.requests, rep.Requests)
			require.Equal(t, f.accepted, rep.Accepted)
			require.Equal(t, f.rejected, rep.Rejected)
			require.Positive(t, rep.Rejected)
			require.Equal(t, rep.Sent, rep.Accepted+rep.Rejected)
			require.Equal(t, rep.Requests*20, rep.Sent)
			require.Equal(t, map[int]int{http.StatusOK: int(f.requests)}, f.statuses)
			require.Empty(t, rep.Errors)
			require.Zero(t, rep.TransportErrors)
			require.Empty(t, rep.FirstError)
			require.Equal(t, rep.Requests, rep.Latency.Count)
			require.Positive(t, rep.Latency.P50)
			require.LessOrEqual(t, rep.Latency.P50, rep.Latency.P99)
			require.LessOrEqual(t, rep.Latency.P99, rep.Latency.P999)
			require.LessOrEqual(t, rep.Latency.P999, rep.Latency.Max)
			require.GreaterOrEqual(t, rep.Elapsed, 300*time.Millisecond)
			require.InDelta(t, float64(rep.Accepted)/rep.Elapsed.Seconds(), rep.AcceptedPerSec, 1e-6)
			require.Zero(t, rep.Missed)
			if gz {
				require.Equal(t, int(f.requests), f.gzipped)
				require.Less(t, rep.BodyBytes/rep.Requests, int64(20*300), "gzip should shrink the bodies")
			} else {
				require.Greater(t, rep.BodyBytes/rep.Requests, int64(20*500))
			}
		})
	}
}

func TestRunCountsFailuresByStatus(t *testing.T) {
	t.Parallel()
	f := newFakeCollector()
	f.status = func(n int64) int {
		switch {
		case n%3 == 0:
			return http.StatusTooManyRequests
		case n%5 == 0:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	rep, err := Run(t.Context(), Options{URL: serveCollector(t, f), Duration: 200 * time.Millisecond, BatchSize: 10, Concurrency: 3})
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Empty(t, f.problems)
	ok := f.statuses[http.StatusOK]
	delete(f.statuses, http.StatusOK)
	require.Positive(t, f.statuses[http.StatusServiceUnavailable])
	require.Equal(t, f.statuses, rep.Errors)
	require.Equal(t, f.accepted, rep.Accepted)
	require.Equal(t, f.requests, rep.Requests)
	require.Equal(t, int64(ok), rep.Latency.Count, "only 200 answers are measured")
	require.Contains(t, rep.FirstError, "HTTP ")
	require.Contains(t, rep.String(), "×429")
}

func TestRunCountsWrongWriteKey(t *testing.T) {
	t.Parallel()
	f := newFakeCollector()
	f.writeKey = "right"
	rep, err := Run(t.Context(), Options{URL: serveCollector(t, f), WriteKey: "wrong", Duration: 50 * time.Millisecond, BatchSize: 5})
	require.NoError(t, err)
	require.Positive(t, rep.Requests)
	require.Equal(t, map[int]int{http.StatusUnauthorized: int(rep.Requests)}, rep.Errors)
	require.Zero(t, rep.Accepted)
	require.Contains(t, rep.FirstError, "HTTP 401: {")
}

func TestRunCountsTransportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more: every connection is refused
	rep, err := Run(t.Context(), Options{URL: url, Duration: 50 * time.Millisecond, BatchSize: 5, Concurrency: 2})
	require.NoError(t, err)
	require.Positive(t, rep.Requests)
	require.Equal(t, int(rep.Requests), rep.TransportErrors)
	require.Empty(t, rep.Errors)
	require.Zero(t, rep.Accepted)
	require.Zero(t, rep.Latency.Count)
	require.NotEmpty(t, rep.FirstError)
	require.Contains(t, rep.String(), fmt.Sprintf("%d transport", rep.TransportErrors))
}

// TestRunPacesOpenLoop checks the schedule exactly, in virtual time.
func TestRunPacesOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeCollector()
		f.delay = 5 * time.Millisecond
		rep, err := Run(t.Context(), Options{
			URL: "http://collector.test", Rate: 1000, BatchSize: 10, Concurrency: 4,
			Duration: 2 * time.Second, HTTPClient: inProcess(f),
		})
		require.NoError(t, err)
		// Due every 10ms from 0 to 1.99s; the last answer comes 5ms later.
		require.Equal(t, int64(200), rep.Requests)
		require.Equal(t, int64(2000), rep.Sent)
		require.Equal(t, f.accepted, rep.Accepted)
		require.Zero(t, rep.Missed)
		require.Equal(t, 1995*time.Millisecond, rep.Elapsed)
		require.Equal(t, 5*time.Millisecond, rep.Latency.P50)
		require.Equal(t, 5*time.Millisecond, rep.Latency.Max)
	})
}

// TestRunPacesOpenLoopInRealTime checks the pacing against the real clock,
// loosely. It is not parallel, so that the other tests do not take the CPU
// it needs to keep up on a small machine under -race.
func TestRunPacesOpenLoopInRealTime(t *testing.T) {
	f := newFakeCollector()
	start := time.Now()
	rep, err := Run(t.Context(), Options{URL: serveCollector(t, f), Rate: 1000, BatchSize: 20, Duration: time.Second})
	require.NoError(t, err)
	took := time.Since(start)
	// 50 requests are due in the second; none is sent after it, and the
	// ones not sent in time are reported as missed.
	require.LessOrEqual(t, rep.Sent, int64(1000))
	require.Equal(t, int64(1000), rep.Sent+rep.Missed)
	require.GreaterOrEqual(t, rep.Sent, int64(0.7*1000), "achieved %d events in %v", rep.Sent, rep.Elapsed)
	require.Equal(t, f.accepted, rep.Accepted)
	require.GreaterOrEqual(t, took, 980*time.Millisecond)
	require.Less(t, took, 3*time.Second)
}

// TestRunMeasuresFromDueTime shows why latency counts from the due time: a
// server that takes 20ms for a request due every 10ms falls further behind
// with each one, and the latencies say so.
func TestRunMeasuresFromDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeCollector()
		f.delay = 20 * time.Millisecond
		rep, err := Run(t.Context(), Options{
			URL: "http://collector.test", Rate: 100, BatchSize: 1, Concurrency: 1,
			Duration: time.Second, HTTPClient: inProcess(f),
		})
		require.NoError(t, err)
		// Request k is due at 10k ms and answered at 20(k+1) ms: 50 fit.
		require.InDelta(t, 50, rep.Requests, 1)
		require.Equal(t, 100-rep.Requests, rep.Missed)
		latency := func(k int64) time.Duration { return 20*time.Millisecond + time.Duration(k)*10*time.Millisecond }
		require.Equal(t, latency(rep.Requests-1), rep.Latency.Max)
		require.InEpsilon(t, float64(latency((rep.Requests+1)/2-1)), float64(rep.Latency.P50), 0.01)
		require.Greater(t, rep.Latency.P50, 200*time.Millisecond, "ten times what the server takes")
		require.Contains(t, rep.String(), "not sustained")
	})
}

func TestRunReportsProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeCollector()
		f.delay = time.Millisecond
		var snaps []Snapshot
		rep, err := Run(t.Context(), Options{
			URL: "http://collector.test", Rate: 1000, BatchSize: 10, Duration: 3500 * time.Millisecond,
			HTTPClient: inProcess(f), Progress: func(s Snapshot) { snaps = append(snaps, s) },
		})
		require.NoError(t, err)
		require.Len(t, snaps, 3)
		for i, s := range snaps {
			require.Equal(t, time.Duration(i+1)*time.Second, s.Elapsed)
			// Everything due before the tick was answered; what is due at
			// the tick may or may not have been sent yet.
			require.Equal(t, int64(1000*(i+1)), s.Accepted+s.Rejected)
			require.InDelta(t, 1000*(i+1), s.Sent, 10)
			require.Equal(t, int64(100*(i+1)), s.Requests-(s.Sent-int64(1000*(i+1)))/10)
			prev := int64(0)
			if i > 0 {
				prev = snaps[i-1].Accepted
			}
			require.InDelta(t, float64(s.Accepted-prev), s.AcceptedPerSec, 1e-9)
			require.InDelta(t, 900, s.AcceptedPerSec, 30, "about one event in ten is rejected")
			require.Zero(t, s.Failed)
		}
		require.Equal(t, int64(3500), rep.Sent)
	})
}

func TestRunStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, time.Minute} {
		t.Run("duration="+d.String(), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f := newFakeCollector()
			f.onRequest = func(n int64) {
				if n == 10 {
					cancel()
				}
				if n >= 10 {
					time.Sleep(20 * time.Millisecond) // requests in flight at the stop take a while
				}
			}
			start := time.Now()
			rep, err := Run(ctx, Options{URL: serveCollector(t, f), Duration: d, BatchSize: 10, Concurrency: 4})
			require.Less(t, time.Since(start), 10*time.Second)
			if d == 0 {
				require.NoError(t, err, "cancelling is how an endless run ends")
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			require.GreaterOrEqual(t, rep.Requests, int64(10))
			require.Equal(t, f.requests, rep.Requests, "every request in flight was waited for")
			require.Equal(t, f.accepted, rep.Accepted)
			require.Zero(t, rep.TransportErrors)
		})
	}
}

func TestRunReadsServerCPU(t *testing.T) {
	t.Parallel()
	f := newFakeCollector()
	var mu sync.Mutex
	cpu := 10.0
	mux := http.NewServeMux()
	mux.Handle("POST /v1/batch", f)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"+
			"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\nprocess_cpu_seconds_total_other 99\n", cpu)
		cpu += 2.5
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rep, err := Run(t.Context(), Options{URL: srv.URL, MetricsURL: srv.URL + "/metrics", Duration: 100 * time.Millisecond, BatchSize: 10})
	require.NoError(t, err)
	require.True(t, rep.CPUMeasured)
	require.InDelta(t, 2.5, rep.ServerCPUSeconds, 1e-9)
	require.Positive(t, rep.Accepted)
	require.InDelta(t, 2.5/float64(rep.Accepted)*1e6, rep.CPUSecondsPerMillion, 1e-6)
	require.Contains(t, rep.String(), "server cpu")

	_, err = Run(t.Context(), Options{URL: srv.URL, MetricsURL: srv.URL + "/nothing", Duration: time.Minute})
	require.ErrorContains(t, err, "reading server cpu before the run")
}

func TestRunRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]Options{
		"no URL":            {},
		"relative URL":      {URL: "/v1"},
		"ftp URL":           {URL: "ftp://host"},
		"negative rate":     {URL: "http://h", Rate: -1},
		"infinite rate":     {URL: "http://h", Rate: math.Inf(1)},
		"negative duration": {URL: "http://h", Duration: -time.Second},
		"negative workers":  {URL: "http://h", Concurrency: -1},
		"negative batch":    {URL: "http://h", BatchSize: -1},
		"negative visitors": {URL: "http://h", Visitors: -1},
		"negative timeout":  {URL: "http://h", RequestTimeout: -1},
		"negative drain":    {URL: "http://h", Drain: -1},
		"bad metrics URL":   {URL: "http://h", MetricsURL: "metrics"},
	} {
		_, err := Run(t.Context(), opt)
		require.ErrorIs(t, err, ErrInvalidOptions, name)
	}
}

func TestJSONInt(t *testing.T) {
	t.Parallel()
	f := func(body, key string, want int64, wantOK bool) {
		t.Helper()
		got, ok := jsonInt([]byte(body), key)
		require.Equal(t, wantOK, ok, body)
		require.Equal(t, want, got, body)
	}
	f(`{"success":true,"accepted":42,"rejected":3,"results":[]}`, "accepted", 42, true)
	f(`{"success":true,"accepted":42,"rejected":3,"results":[]}`, "rejected", 3, true)
	f(`{"results":[{"status":"accepted"},{"message":"\"accepted\":9"}],"accepted" : 5}`, "accepted", 5, true)
	f(`{"notaccepted":1,"accepted":-2}`, "accepted", -2, true)
	f(`{"success":true}`, "accepted", 0, false)
	f(`{"accepted":"many"}`, "accepted", 0, false)
	f(``, "accepted", 0, false)
}

func TestParseCPUSeconds(t *testing.T) {
	t.Parallel()
	f := func(text string, want float64, wantErr string) {
		t.Helper()
		got, err := parseMetrics(strings.NewReader(text))
		if wantErr != "" {
			require.ErrorContains(t, err, wantErr)
			return
		}
		require.NoError(t, err)
		require.InDelta(t, want, got.cpu, 1e-9)
	}
	f("process_cpu_seconds_total 12.5\n", 12.5, "")
	f("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5e+01 1712345678000\n", 15, "")
	f("process_cpu_seconds_total{instance=\"a\"} 1\nprocess_cpu_seconds_total{instance=\"b {x}\"} 2\n", 3, "")
	f("process_cpu_seconds_totally 5\ngo_goroutines 7\n", 0, "no process_cpu_seconds_total")
	f("process_cpu_seconds_total abc\n", 0, "expected float as value")
	f("process_cpu_seconds_total{a=\"b\" 1\n", 0, "unexpected end of label value")
}

func TestReportText(t *testing.T) {
	t.Parallel()
	rep := Report{
		URL: "http://127.0.0.1:8080/v1/batch", Rate: 50000, Concurrency: 8, BatchSize: 100, Gzip: true,
		Sent: 500000, Accepted: 499000, Rejected: 500, Missed: 0, Requests: 5000,
		Errors: map[int]int{503: 2, 429: 3}, TransportErrors: 0, FirstError: "HTTP 429: {}",
		BodyBytes: 5000 * 9000, Elapsed: 10*time.Second + 12345*time.Microsecond, AcceptedPerSec: 49838.5,
		Latency: Latency{
			Count: 4995, Mean: 1900 * time.Microsecond, P50: 1234567 * time.Nanosecond,
			P99: 5432100 * time.Nanosecond, P999: 12345678 * time.Nanosecond, Max: 40 * time.Millisecond,
		},
		CPUMeasured: true, ServerCPUSeconds: 12.3, CPUSecondsPerMillion: 24.65,
	}
	text := rep.String()
	for _, want := range []string{
		"target           http://127.0.0.1:8080/v1/batch\n",
		"load             open loop at 50k events/s, 8 workers, 100 events per request, gzip\n",
		"elapsed          10s\n",
		"requests         5000 (499/s, 8.8 KiB per request)\n",
		"accepted         499000 (49.8k/s)\n",
		"missed           0\n",
		"failed requests  3×429, 2×503\n",
		"ack latency      p50 1.23ms  p99 5.43ms  p99.9 12.3ms  max 40ms  mean 1.9ms  (4995 requests)\n",
		"server cpu       12.30s (24.65 s per million events)\n",
	} {
		require.Contains(t, text, want)
	}
	var b strings.Builder
	require.NoError(t, rep.WriteText(&b))
	require.Equal(t, text, b.String())

	closed := Report{URL: "http://x/v1/batch", Concurrency: 1, BatchSize: 1}.String()
	require.Contains(t, closed, "closed loop")
	require.NotContains(t, closed, "missed")
	require.NotContains(t, closed, "server cpu")
	require.Contains(t, closed, "failed requests  none")
}

func TestBodyReuse(t *testing.T) {
	t.Parallel()
	p := &bodyPool{}
	b := p.get()
	b.buf = append(b.buf[:0], "hello"...)
	r1, err := b.reader()
	require.NoError(t, err)
	r2, err := b.reader() // a retry's copy
	require.NoError(t, err)
	got, err := io.ReadAll(r1)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	require.NoError(t, r1.Close())
	require.NoError(t, r1.Close())
	_, err = r1.Read(make([]byte, 1))
	require.True(t, errors.Is(err, errBodyClosed))
	b.release() // the worker is done; r2 still holds the buffer
	require.Equal(t, int32(1), b.refs.Load())
	got, err = io.ReadAll(r2)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	require.NoError(t, r2.Close())
	require.Zero(t, b.refs.Load())
	_, err = b.reader()
	require.ErrorIs(t, err, errBodyReleased)
}

// TestRunStopsAfterEvents: a run bounded by Events sends that many events
// (in whole batches) and stops, in the closed and the open loop.
func TestRunStopsAfterEvents(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, 20000} {
		t.Run(fmt.Sprintf("rate=%v", rate), func(t *testing.T) {
			t.Parallel()
			f := newFakeCollector()
			f.writeKey = "wk_test"
			rep, err := Run(t.Context(), Options{
				URL: serveCollector(t, f), WriteKey: "wk_test", Events: 1010, Rate: rate,
				Concurrency: 4, BatchSize: 20, Visitors: 1000, Duration: time.Minute,
			})
			require.NoError(t, err)
			require.Equal(t, int64(51), rep.Requests, "1010 events in batches of 20: 51 requests")
			require.Equal(t, int64(1020), rep.Sent)
			require.Less(t, rep.Elapsed, time.Minute, "the run ends with its events, not its duration")
		})
	}
}
