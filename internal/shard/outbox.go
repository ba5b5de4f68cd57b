package shard

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/contrailhq/contrail/internal/event"
)

// outbox gathers the outputs of one log message: the events emitted to each
// subject become one batch message, then come the raw outputs.
type outbox struct {
	groups []eventGroup // in order of first emission
	index  map[string]int
	raw    []Output
	// externals are the message's external effects, in order.
	externals []External
}

type eventGroup struct {
	subject string
	count   int
	frames  []byte
}

func (o *outbox) reset() {
	o.groups = o.groups[:0]
	clear(o.index)
	o.raw = o.raw[:0]
	o.externals = o.externals[:0]
}

// add takes the outputs of an applied event.
func (o *outbox) add(tx *Tx) {
	for _, em := range tx.emitted {
		i, ok := o.index[em.subject]
		if !ok {
			if o.index == nil {
				o.index = map[string]int{}
			}
			i = len(o.groups)
			o.index[em.subject] = i
			o.groups = append(o.groups, eventGroup{subject: em.subject})
		}
		g := &o.groups[i]
		g.count++
		g.frames = append(g.frames, tx.frames[em.start:em.end]...)
	}
	o.raw = append(o.raw, tx.outputs...)
	o.externals = append(o.externals, tx.externals...)
}

// outputs returns the messages to publish, in output-index order.
func (o *outbox) outputs() []Output {
	if len(o.groups) == 0 && len(o.raw) == 0 {
		return nil
	}
	out := make([]Output, 0, len(o.groups)+len(o.raw))
	for _, g := range o.groups {
		msg := event.AppendHeader(make([]byte, 0, len(g.frames)+11), g.count)
		out = append(out, Output{Subject: g.subject, Data: append(msg, g.frames...)})
	}
	return append(out, o.raw...)
}

// publishOutputs publishes the outputs of message seq with their
// deterministic ids and returns once all are stored. Outputs to one subject
// are published in index order, so a receiver sees one upstream's outputs
// in (seq, index) order; different subjects go in parallel.
func publishOutputs(ctx context.Context, pub Publisher, idPrefix, stage string, partition int, seq uint64, outputs []Output) error {
	one := func(ctx context.Context, i int) error {
		o := outputs[i]
		if _, err := pub.Publish(ctx, o.Subject, idPrefix+OutputID(stage, partition, seq, i), o.Data, o.Headers); err != nil {
			return fmt.Errorf("publishing output %d of seq %d to %s: %w", i, seq, o.Subject, err)
		}
		return nil
	}
	if len(outputs) == 1 {
		return one(ctx, 0)
	}
	var order []string
	bySubject := map[string][]int{}
	for i, o := range outputs {
		if _, ok := bySubject[o.Subject]; !ok {
			order = append(order, o.Subject)
		}
		bySubject[o.Subject] = append(bySubject[o.Subject], i)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, subject := range order {
		g.Go(func() error {
			for _, i := range bySubject[subject] {
				if err := one(gctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
