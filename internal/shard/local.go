package shard

import (
	"context"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/store"
)

// ApplyLocal runs proc over events as if they were one log message at seq
// of stream's partition, and commits their effects and the position to st,
// exactly as a shard would, but without a log: outputs are returned instead
// of published (events emitted to one subject gathered into one batch
// message, as a shard does) and external effects written to the outbox,
// with the error of each event (nil when
// applied). Processor
// tests and scripted scenarios use it.
func ApplyLocal(ctx context.Context, st *store.Store, stream string, partition int, seq uint64, proc Processor, events []event.Event) ([]Output, []error, error) {
	batch := st.NewBatch()
	defer func() { _ = batch.Close() }()
	tx := &Tx{Stream: stream, Partition: partition, overlay: map[string]entry{}, msg: map[string]entry{}}
	tx.begin(st, batch)
	s := &shard{stream: stream, partition: partition, proc: proc}
	out := &outbox{}
	errs := make([]error, len(events))
	for i := range events {
		tx.reset(seq, i)
		if errs[i] = s.process(ctx, tx, &events[i]); errs[i] != nil {
			continue
		}
		tx.apply()
		out.add(tx)
	}
	if f, ok := proc.(Flusher); ok {
		tx.reset(seq, len(events))
		if err := f.Flush(ctx, tx); err != nil {
			return nil, nil, err
		}
		tx.apply()
	}
	tx.toOutbox(out.externals) // no sender: every effect goes to the outbox
	if err := tx.flush(); err != nil {
		return nil, nil, err
	}
	if err := store.PutUint64(batch, store.PositionKey(stream, partition), seq); err != nil {
		return nil, nil, err
	}
	return out.outputs(), errs, st.Commit(batch)
}
