package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookSink is a deduplicating webhook receiver, as the issue asks a
// customer's to be: it keeps the first body of each Idempotency-Key it
// answered 2xx to and answers repeats 200 without acting again. To make
// the senders retry, it answers 503 to about one first attempt in twenty.
type hookSink struct {
	*httptest.Server

	mu         sync.Mutex
	bodies     map[string][]byte // delivered: key → body
	attempts   map[string]int    // key → requests
	requests   int
	refused    int // 503s given
	duplicates int // requests for a key already delivered
	cut        int // bodies that could not be read
	problems   []string
}

func newHookSink(t testing.TB) *hookSink {
	h := &hookSink{bodies: map[string][]byte{}, attempts: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hookSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if err != nil { // the sender died mid-request: nothing was received
		h.cut++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if key == "" || r.Header.Get("webhook-id") != key {
		h.problems = append(h.problems, fmt.Sprintf("request with Idempotency-Key %q and webhook-id %q", key, r.Header.Get("webhook-id")))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.attempts[key]++
	if prev, ok := h.bodies[key]; ok {
		h.duplicates++
		if !bytes.Equal(prev, body) {
			h.problems = append(h.problems, fmt.Sprintf("key %s delivered with body %s, then %s", key, prev, body))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.attempts[key] == 1 && rand.N(20) == 0 {
		h.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.bodies[key] = body
	w.WriteHeader(http.StatusOK)
}

// delivered returns how many distinct keys the sink acted on.
func (h *hookSink) delivered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

// snapshot returns a copy of the delivered bodies by key.
func (h *hookSink) snapshot() map[string][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]byte, len(h.bodies))
	for k, b := range h.bodies {
		out[k] = b
	}
	return out
}

// crashAPI calls the admin API of the current incarnation of `contrail
// serve` on behalf of one tenant. Its methods return errors instead of
// failing the test, so that any goroutine may use them.
type crashAPI struct {
	l      *crashLoader // the current URL
	token  string
	tenant string
}

// do sends body (JSON-encoded unless nil) and decodes a 2xx answer into
// out. A non-2xx answer is an error that carries its body.
func (a *crashAPI) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequestWithContext(ctx, method, a.l.url.Load().(string)+path+sep+"tenant="+url.QueryEscape(a.tenant), rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.l.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, nil
}

// batchSender posts prepared Segment batches until each is acknowledged
// in full, across kills: a failed batch is sent again with the same
// messageIds, which the visitor shards deduplicate.
type batchSender struct {
	l        *crashLoader
	acked    atomic.Int64 // events acknowledged
	attempts atomic.Int64 // batch requests made
	mu       sync.Mutex
	failures map[string]int // reason → failed attempts
}

func newBatchSender(l *crashLoader) *batchSender {
	return &batchSender{l: l, failures: map[string]int{}}
}

// segmentEvent is an event of a /v1/batch request.
type segmentEvent struct {
	Type       string         `json:"type"`
	Event      string         `json:"event,omitempty"`
	MessageID  string         `json:"messageId"`
	UserID     string         `json:"userId"`
	Properties map[string]any `json:"properties,omitempty"`
}

// sendAll sends every batch with workers concurrent requests and returns
// once all are acknowledged or ctx ends.
func (s *batchSender) sendAll(ctx context.Context, batches [][]segmentEvent, workers int) error {
	next := make(chan []segmentEvent)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range next {
				s.send(ctx, b)
			}
		})
	}
	defer wg.Wait()
	defer close(next)
	for _, b := range batches {
		select {
		case next <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// send posts one batch until every event of it is accepted.
func (s *batchSender) send(ctx context.Context, events []segmentEvent) {
	body, _ := json.Marshal(map[string]any{"batch": events})
	for ctx.Err() == nil {
		s.attempts.Add(1)
		status, results, err := s.l.post(ctx, body)
		reason := ""
		switch {
		case err != nil:
			reason = failureReason(err)
		case status != http.StatusOK:
			reason = "status " + strconv.Itoa(status)
		default:
			for _, r := range results {
				if r.Status != "accepted" {
					reason = "event " + r.Status
				}
			}
			if reason == "" && len(results) != len(events) {
				reason = fmt.Sprintf("%d results for %d events", len(results), len(events))
			}
		}
		if reason == "" {
			s.acked.Add(int64(len(events)))
			return
		}
		s.mu.Lock()
		s.failures[reason]++
		s.mu.Unlock()
		// Wait for the server to be up again; a failure while it is up
		// (a 503, a tenant not seen yet) is retried a little later.
		select {
		case <-s.l.upC():
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// failed returns the failed attempts, all retried, and a summary by reason.
func (s *batchSender) failed() (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var parts []string
	for reason, c := range s.failures {
		n += c
		parts = append(parts, fmt.Sprintf("%s: %d", reason, c))
	}
	sort.Strings(parts)
	return n, strings.Join(parts, ", ")
}
