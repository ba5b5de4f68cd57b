package shard

import (
	"context"

	"github.com/contrailhq/contrail/internal/store"
)

// External is an external effect (a webhook call, an email) that a
// processor asks for. The shard hands a message's effects to its Sender
// before it commits, and writes those the Sender has not finished to the
// outbox in the commit's batch (DESIGN.md §8, backpressure).
type External struct {
	// Key is the effect's idempotency key: stable across replays and
	// retries, unique per effect.
	Key string
	// Order groups effects that must be delivered in the order they were
	// asked for (those of one lead, say); empty means no order.
	Order string
	// Payload is the effect, encoded by the processor for the Sender.
	Payload []byte
}

// Sender delivers external effects; *deliver.Sender implements it.
type Sender interface {
	// Deliver starts delivering effects, in order, and returns those it
	// has not finished when it stops waiting: when it lags, at once. The
	// shard writes them to the outbox with the message's commit. Effects
	// returned stay the Sender's: it may still deliver them.
	Deliver(ctx context.Context, effects []External) (spill []External)
	// Spilled tells the Sender, after the commit, that the outbox now
	// holds effects (under store.OutboxKey): it delivers those it has not
	// finished, and deletes each outbox entry once its effect is done.
	Spilled(stream string, partition int, effects []External)
}

// External queues an external effect. It takes effect only if the event
// applies; a replay asks for it again with the same Key.
func (tx *Tx) External(x External) {
	tx.externals = append(tx.externals, x)
}

// toOutbox writes effects to the outbox with the message's state.
func (tx *Tx) toOutbox(effects []External) {
	for _, x := range effects {
		tx.msg[string(store.OutboxKey(tx.Stream, tx.Partition, x.Key))] = entry{value: append([]byte(nil), x.Payload...)}
	}
}

// handOver gives the message's external effects to the sender and writes
// those it did not finish to the outbox, in the batch about to commit. It
// returns them, for Spilled after the commit.
//
// The shard's partition waits for the sender (its position commits after
// the effects are done or spilled), but its worker does not: other shards
// use it meanwhile, so a slow receiver slows only the partitions whose
// messages call it.
func (s *shard) handOver(ctx context.Context, tx *Tx, effects []External, held *bool) []External {
	if len(effects) == 0 {
		return nil
	}
	spill := effects
	if snd := s.rt.deps.Sender; snd != nil {
		if held != nil && *held {
			s.rt.release()
			*held = false
		}
		spill = snd.Deliver(ctx, effects)
		if held != nil && s.rt.acquire(ctx) == nil {
			*held = true
		}
	}
	tx.toOutbox(spill)
	if len(spill) > 0 {
		s.rt.metrics.outboxWrites.WithLabelValues(s.stream).Add(float64(len(spill)))
	}
	return spill
}
