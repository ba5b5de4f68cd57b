package shard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/store"
)

// Processor applies events to a shard's state. Process must be
// deterministic given the event and the state it reads through tx: time
// comes from the event, never from the wall clock. A returned error sends
// the event to DEAD with the error as the reason; its writes and outputs
// are discarded.
type Processor interface {
	Process(ctx context.Context, tx *Tx, e *event.Event) error
}

// Flusher is implemented by processors that gather a log message's effects
// in memory (counters, say). The shard calls Flush after the message's
// last event and commits what it writes with the message.
type Flusher interface {
	Flush(ctx context.Context, tx *Tx) error
}

// Resetter is implemented by processors that cache state in memory. The
// shard calls Reset each time it starts reading from its stored position,
// so a cache can never hold the effects of a message that did not commit.
type Resetter interface {
	Reset()
}

// Source reads one partition of a stream in order; *eventlog.Log
// implements it.
type Source interface {
	ReadStream(ctx context.Context, stream, prefix string, partition int, start eventlog.Start, fn func(eventlog.Message) error) error
}

// Publisher stores outputs; *eventlog.Log implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, headers map[string]string) (uint64, error)
}

// Headers on DEAD messages.
const (
	HeaderReason    = "Contrail-Reason"
	HeaderStream    = "Contrail-Stream"
	HeaderPartition = "Contrail-Partition"
	HeaderSeq       = "Contrail-Seq"
)

// shard is one partition's processing loop.
type shard struct {
	rt        *Runtime
	stream    string
	stage     string
	partition int
	proc      Processor

	position atomic.Uint64 // last applied stream sequence
	pending  atomic.Uint64 // messages after the last delivered one
	last     atomic.Uint64 // highest sequence delivered

	mu      sync.Mutex
	applied chan struct{} // closed and replaced at each commit
}

// advance records that seq is applied and wakes the waiters.
func (s *shard) advance(seq uint64) {
	s.position.Store(seq)
	s.mu.Lock()
	if s.applied != nil {
		close(s.applied)
		s.applied = nil
	}
	s.mu.Unlock()
}

// wait returns a channel closed at the next commit.
func (s *shard) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applied == nil {
		s.applied = make(chan struct{})
	}
	return s.applied
}

// run processes the partition from the stored position until ctx ends or
// an infrastructure error (log or store) stops it.
func (s *shard) run(ctx context.Context) error {
	pos, err := store.GetUint64(s.rt.deps.Store.DB(), store.PositionKey(s.stream, s.partition))
	if err != nil {
		return err
	}
	s.position.Store(pos)
	if r, ok := s.proc.(Resetter); ok {
		r.Reset()
	}
	tx := &Tx{Stream: s.stream, Partition: s.partition, overlay: map[string]entry{}, msg: map[string]entry{}}
	out := &outbox{}
	prefix := eventlog.PrefixOf(s.stream)
	return s.rt.deps.Source.ReadStream(ctx, s.stream, prefix, s.partition, eventlog.Start{Seq: pos + 1}, func(m eventlog.Message) error {
		s.pending.Store(m.Pending)
		s.last.Store(m.Seq)
		if m.Seq <= s.position.Load() {
			return nil // already applied (a redelivery after a consumer reset)
		}
		if err := s.rt.acquire(ctx); err != nil {
			return err
		}
		held := true
		defer func() {
			if held {
				s.rt.release()
			}
		}()
		return s.apply(ctx, tx, out, m, &held)
	})
}

// apply processes one log message and commits its effects with the position.
// held says whether the shard holds a worker; apply lets it go while it
// waits for the senders.
func (s *shard) apply(ctx context.Context, tx *Tx, out *outbox, m eventlog.Message, held *bool) error {
	start := time.Now()
	batch := s.rt.deps.Store.NewBatch()
	defer func() { _ = batch.Close() }()
	tx.begin(s.rt.deps.Store, batch)
	out.reset()
	var dead []Output
	var lastReceived time.Time
	idx := 0
	// An output of another shard already applied (a replay upstream, past
	// JetStream's dedup window) is dropped whole; the high-water mark
	// commits with the message's effects.
	tx.reset(m.Seq, 0)
	switch dup, err := tx.Duplicate(m.MsgID); {
	case errors.Is(err, ErrBadOutputID): // a collector's append
	case err != nil:
		return err
	case dup:
		s.rt.metrics.duplicates.WithLabelValues(s.stream).Inc()
		return s.commit(tx, batch, m, start, time.Time{})
	default:
		tx.apply()
	}
	err := event.EachEvent(m.Data, func(e *event.Event) error {
		tx.reset(m.Seq, idx)
		idx++
		lastReceived = e.ReceivedAt
		if perr := s.process(ctx, tx, e); perr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			dead = append(dead, deadOutput(s, m.Seq, e, perr))
			s.rt.metrics.dead.WithLabelValues(s.stream, e.Tenant).Inc()
			s.rt.logger.Warn("event sent to DEAD", "stream", s.stream, "partition", s.partition, "seq", m.Seq,
				"tenant", e.Tenant, "message_id", e.MessageID, "err", perr)
			return nil
		}
		tx.apply()
		s.rt.metrics.processed.WithLabelValues(s.stream, e.Tenant).Inc()
		out.add(tx)
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, event.ErrCorrupt) || errors.Is(err, event.ErrVersion):
		// The whole message is unreadable: nothing of it is applied.
		_ = batch.Close()
		batch = s.rt.deps.Store.NewBatch()
		tx.begin(s.rt.deps.Store, batch)
		out.reset()
		dead = []Output{{Subject: eventlog.DeadPrefix + "unknown", Data: m.Data, Headers: s.deadHeaders(m.Seq, err)}}
		if r, ok := s.proc.(Resetter); ok {
			r.Reset() // it saw the events read before the damage
		}
		s.rt.metrics.dead.WithLabelValues(s.stream, "unknown").Inc()
		s.rt.logger.Error("unreadable log message sent to DEAD", "stream", s.stream, "partition", s.partition, "seq", m.Seq, "err", err)
	case err != nil:
		return fmt.Errorf("processing %s seq %d: %w", s.stream, m.Seq, err)
	}
	if outputs := out.outputs(); len(outputs) > 0 {
		if err := publishOutputs(ctx, s.rt.deps.Publisher, "", s.stage, s.partition, m.Seq, outputs); err != nil {
			return err
		}
		s.rt.metrics.outputs.WithLabelValues(s.stream).Add(float64(len(outputs)))
	}
	if len(dead) > 0 {
		if err := publishOutputs(ctx, s.rt.deps.Publisher, "dead.", s.stage, s.partition, m.Seq, dead); err != nil {
			return err
		}
	}
	if f, ok := s.proc.(Flusher); ok {
		tx.reset(m.Seq, idx)
		if err := f.Flush(ctx, tx); err != nil {
			return fmt.Errorf("flushing %s seq %d: %w", s.stream, m.Seq, err)
		}
		tx.apply()
	}
	spill := s.handOver(ctx, tx, out.externals, held)
	if err := s.commit(tx, batch, m, start, lastReceived); err != nil {
		return err
	}
	if len(spill) > 0 && s.rt.deps.Sender != nil {
		s.rt.deps.Sender.Spilled(s.stream, s.partition, spill)
	}
	return nil
}

// commit writes the message's state and its position in one batch.
func (s *shard) commit(tx *Tx, batch *pebble.Batch, m eventlog.Message, start, lastReceived time.Time) error {
	if err := tx.flush(); err != nil {
		return err
	}
	if err := store.PutUint64(batch, store.PositionKey(s.stream, s.partition), m.Seq); err != nil {
		return err
	}
	if err := s.rt.deps.Store.Commit(batch); err != nil {
		return err
	}
	s.advance(m.Seq)
	p := strconv.Itoa(s.partition)
	s.rt.metrics.position.WithLabelValues(s.stream, p).Set(float64(m.Seq))
	s.rt.metrics.lag.WithLabelValues(s.stream, p).Set(float64(m.Pending))
	s.rt.metrics.applySeconds.WithLabelValues(s.stream).Observe(time.Since(start).Seconds())
	if !lastReceived.IsZero() {
		// Wall clock for the metric only; processing never reads it.
		s.rt.metrics.endToEnd.WithLabelValues(s.stream).Observe(s.rt.now().Sub(lastReceived).Seconds())
	}
	return nil
}

// process runs the processor, turning a panic into an error so that one
// poison event cannot stop the partition.
func (s *shard) process(ctx context.Context, tx *Tx, e *event.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("processor panicked: %v", r)
		}
	}()
	return s.proc.Process(ctx, tx, e)
}

func (s *shard) deadHeaders(seq uint64, reason error) map[string]string {
	return map[string]string{
		HeaderReason: reason.Error(), HeaderStream: s.stream,
		HeaderPartition: strconv.Itoa(s.partition), HeaderSeq: strconv.FormatUint(seq, 10),
	}
}

func deadOutput(s *shard, seq uint64, e *event.Event, reason error) Output {
	return Output{Subject: eventlog.DeadPrefix + e.Tenant, Data: event.EncodeBatch([]event.Event{*e}), Headers: s.deadHeaders(seq, reason)}
}
