package collect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contrailhq/contrail/internal/event"
)

// Appender stores a message in a partition of the log and returns once it is
// acknowledged. *eventlog.Log implements it.
type Appender interface {
	Append(ctx context.Context, partition int, msgID string, data []byte) (uint64, error)
}

// ack collects the acknowledgements of one request, which may span several
// partitions. The request waits on done.
type ack struct {
	remaining atomic.Int32
	done      chan struct{}
	mu        sync.Mutex
	err       error
}

func newAck(parts int) *ack {
	a := &ack{done: make(chan struct{})}
	a.remaining.Store(int32(parts))
	return a
}

func (a *ack) finish(err error) {
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
	}
	if a.remaining.Add(-1) == 0 {
		close(a.done)
	}
}

func (a *ack) result() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// pending is the part of one request that goes to one partition: spans of
// the request's frame buffer, in the request's order.
type pending struct {
	buf   []byte // the request's frames, all partitions
	spans []span // this partition's frames in buf
	size  int    // bytes in spans
	n     int    // events in spans
	ack   *ack
}

// span is one frame in a request's frame buffer.
type span struct{ off, end int }

// committer runs group commit for every partition.
type committer struct {
	log        Appender
	logger     *slog.Logger
	metrics    *collectMetrics
	flushBytes int
	linger     time.Duration
	ackTimeout time.Duration
	idPrefix   string // unique per process start: <node>-<random>
	queues     []chan *pending
	seq        atomic.Uint64
	closed     atomic.Bool
	msgPool    sync.Pool // *[]byte message buffers
}

// errClosed means the committer has stopped taking events.
var errClosed = errors.New("collector is shutting down")

func newCommitter(log Appender, partitions int, node string, cfg Config, logger *slog.Logger, m *collectMetrics) *committer {
	var r [6]byte
	_, _ = rand.Read(r[:])
	c := &committer{
		log: log, logger: logger, metrics: m,
		flushBytes: cfg.FlushBytes, linger: cfg.Linger, ackTimeout: cfg.AckTimeout,
		// The random part keeps ids unique across restarts: reusing an id
		// inside JetStream's duplicate window would silently drop a message.
		idPrefix: node + "-" + hex.EncodeToString(r[:]) + ".",
		queues:   make([]chan *pending, partitions),
	}
	for i := range c.queues {
		c.queues[i] = make(chan *pending, 1024)
	}
	c.msgPool.New = func() any {
		b := make([]byte, 0, cfg.FlushBytes+64<<10)
		return &b
	}
	return c
}

// enqueue hands p to partition part's publisher. It waits for room until ctx ends.
func (c *committer) enqueue(ctx context.Context, part int, p *pending) error {
	if c.closed.Load() {
		return errClosed
	}
	select {
	case c.queues[part] <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run starts one publisher per partition and blocks until ctx ends and every
// queued event has been published (or failed).
func (c *committer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for p := range c.queues {
		wg.Go(func() { c.publishLoop(ctx, p) })
	}
	<-ctx.Done()
	c.closed.Store(true)
	wg.Wait()
}

func (c *committer) publishLoop(ctx context.Context, part int) {
	q := c.queues[part]
	var carry *pending
	batch := make([]*pending, 0, 64)
	for {
		var first *pending
		if carry != nil {
			first, carry = carry, nil
		} else {
			select {
			case first = <-q:
			case <-ctx.Done():
				// Drain: handlers that enqueued before shutdown still get an answer.
				select {
				case first = <-q:
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		size, n := first.size, first.n
		var lingerC <-chan time.Time
		if c.linger > 0 {
			lingerC = time.After(c.linger)
		}
	collect:
		for size < c.flushBytes {
			var p *pending
			if lingerC == nil {
				select {
				case p = <-q:
				default:
					break collect
				}
			} else {
				select {
				case p = <-q:
				case <-lingerC:
					break collect
				}
			}
			if size+p.size > c.flushBytes {
				carry = p
				break
			}
			batch = append(batch, p)
			size += p.size
			n += p.n
		}
		c.publish(part, batch, size, n)
	}
}

// publish appends one message holding batch and answers every request in it.
func (c *committer) publish(part int, batch []*pending, size, n int) {
	bp := c.msgPool.Get().(*[]byte)
	msg := event.AppendHeader((*bp)[:0], n)
	for _, p := range batch {
		for _, s := range p.spans {
			msg = append(msg, p.buf[s.off:s.end]...)
		}
	}
	id := c.idPrefix + strconv.Itoa(part) + "." + strconv.FormatUint(c.seq.Add(1), 10)
	// The append gets its own deadline, not a request's: a message holds many
	// requests' events and must not be abandoned because one client left.
	ctx, cancel := context.WithTimeout(context.Background(), c.ackTimeout)
	start := time.Now()
	_, err := c.log.Append(ctx, part, id, msg)
	cancel()
	c.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	c.metrics.messageBytes.Observe(float64(len(msg)))
	c.metrics.messageEvents.Observe(float64(n))
	// The connection copied msg into its write buffer: it can be reused.
	*bp = msg
	c.msgPool.Put(bp)
	if err != nil {
		c.metrics.publishErrors.Inc()
		c.logger.Warn("log append failed", "partition", part, "msg_id", id, "events", n, "err", err)
		err = fmt.Errorf("appending to partition %d: %w", part, err)
	}
	for _, p := range batch {
		p.ack.finish(err)
	}
}
