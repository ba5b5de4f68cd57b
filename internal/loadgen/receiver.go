package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Receiver is a webhook endpoint for a benchmark: it answers every request
// at once with 204 No Content, and counts the requests and the distinct
// Idempotency-Key headers among them, so that a run can compare what was
// sent with what the server says it delivered. It is safe for concurrent
// use.
type Receiver struct {
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
	err error // of Serve, once wg is done

	mu       sync.Mutex
	requests int64
	keys     map[string]struct{}
	unkeyed  int64
}

// ReceiverCounts is what a Receiver was sent.
type ReceiverCounts struct {
	// Requests counts the requests, retries included.
	Requests int64
	// Keys counts the distinct Idempotency-Key headers; a request without
	// one counts as a key of its own. Requests above Keys were deliveries
	// of an effect sent before.
	Keys int64
}

// StartReceiver listens on addr (host:port; port 0 picks a free one) and
// serves until Close.
func StartReceiver(addr string) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for webhooks on %s: %w", addr, err)
	}
	r := &Receiver{ln: ln, keys: map[string]struct{}{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	r.wg.Go(func() {
		if err := r.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.err = err
		}
	})
	return r, nil
}

// URL returns the receiver's base URL, like http://127.0.0.1:41234. Every
// path is answered the same.
func (r *Receiver) URL() string {
	return "http://" + r.ln.Addr().String()
}

// Counts returns what the receiver was sent so far.
func (r *Receiver) Counts() ReceiverCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReceiverCounts{Requests: r.requests, Keys: int64(len(r.keys)) + r.unkeyed}
}

// Close stops the receiver, waiting at most until ctx ends for the
// requests being answered, and returns the error that stopped it early,
// if any.
func (r *Receiver) Close(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	if err != nil {
		_ = r.srv.Close()
	}
	r.wg.Wait()
	return errors.Join(err, r.err)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	// Read the body so that the sender's connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, maxAnswerBytes))
	key := req.Header.Get("Idempotency-Key")
	r.mu.Lock()
	r.requests++
	if key == "" {
		r.unkeyed++
	} else {
		r.keys[key] = struct{}{}
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
