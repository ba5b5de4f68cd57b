package loadgen

import (
	"io"
	"sync"
	"sync/atomic"
)

// A net/http transport may still read or close a request body after Do has
// returned (it writes the body in its own goroutine, and a server may answer
// before reading it all). Request bodies are therefore not reused blindly:
// a body is reference-counted by the worker and by every reader handed to
// the transport, and its buffer goes back to the pool only when the last of
// them lets go. A reader the transport never closes only costs a buffer to
// the garbage collector.

// bodyPool recycles request bodies.
type bodyPool struct {
	pool sync.Pool
}

// get returns a body with one reference, the caller's.
func (p *bodyPool) get() *body {
	b, _ := p.pool.Get().(*body)
	if b == nil {
		b = &body{pool: p}
	}
	b.refs.Store(1)
	return b
}

// body is one request's payload.
type body struct {
	buf  []byte
	refs atomic.Int32
	pool *bodyPool
}

// reader returns a new reader over the body, holding a reference until it
// is closed. It fails when the body was already released.
func (b *body) reader() (io.ReadCloser, error) {
	for {
		n := b.refs.Load()
		if n == 0 {
			return nil, errBodyReleased
		}
		if b.refs.CompareAndSwap(n, n+1) {
			return &bodyReader{b: b}, nil
		}
	}
}

// release drops one reference and recycles the buffer with the last one.
func (b *body) release() {
	if b.refs.Add(-1) == 0 {
		b.pool.pool.Put(b)
	}
}

// bodyReader reads a body. Its mutex orders a Close racing with a Read, so
// that the buffer is never recycled under a Read. It deliberately has no
// WriteTo, which would read the buffer outside the lock.
type bodyReader struct {
	mu     sync.Mutex
	b      *body
	off    int
	closed bool
}

// Read implements io.Reader.
func (r *bodyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, errBodyClosed
	}
	if r.off >= len(r.b.buf) {
		return 0, io.EOF
	}
	n := copy(p, r.b.buf[r.off:])
	r.off += n
	return n, nil
}

// Close releases the reader's reference; it is idempotent.
func (r *bodyReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.b.release()
	}
	return nil
}

// sliceWriter is an io.Writer appending to a slice, for the gzip writer.
type sliceWriter struct{ b []byte }

// Write implements io.Writer.
func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
