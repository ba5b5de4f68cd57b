package lead

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// Publisher stores a message on the log; *eventlog.Log implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, headers map[string]string) (uint64, error)
}

// Waiter reports when a shard has applied a log message; *shard.Runtime
// implements it.
type Waiter interface {
	WaitApplied(ctx context.Context, stream string, partition int, tenant string, seq uint64) error
}

// Writer puts API writes on LEADS, so they are ordered with the lead's
// other inputs and survive a crash, and waits until the lead shards have
// applied them, so the answer can read its own write.
type Writer struct {
	pub  Publisher
	wait Waiter
	q    int
}

// NewWriter returns a writer to q LEADS partitions.
func NewWriter(pub Publisher, wait Waiter, q int) *Writer { return &Writer{pub: pub, wait: wait, q: q} }

// Submit stores the commands, one log message per partition in their
// order, and returns once all are applied. When ctx ends first, the
// commands are stored and will be applied; the error says so.
func (w *Writer) Submit(ctx context.Context, cmds []event.Event) error {
	byPart := map[int][]event.Event{}
	var order []int
	for _, c := range cmds {
		q := Partition(c.Tenant, c.Enrichment.LeadID, w.q)
		if _, ok := byPart[q]; !ok {
			order = append(order, q)
		}
		byPart[q] = append(byPart[q], c)
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	base := "api." + hex.EncodeToString(id[:])
	seqs := make([]uint64, len(order))
	g, gctx := errgroup.WithContext(ctx)
	for i, q := range order {
		g.Go(func() error {
			seq, err := w.pub.Publish(gctx, eventlog.LeadsSubject(q), fmt.Sprintf("%s.%d", base, q), event.EncodeBatch(byPart[q]), nil)
			if err != nil {
				return fmt.Errorf("storing lead commands: %w", err)
			}
			seqs[i] = seq
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, q := range order {
		if err := w.wait.WaitApplied(ctx, eventlog.StreamLeads, q, byPart[q][0].Tenant, seqs[i]); err != nil {
			return fmt.Errorf("%w: %w", ErrNotApplied, err)
		}
	}
	return nil
}

// ErrNotApplied means commands were stored but not applied within the
// request's time: they will be.
var ErrNotApplied = errors.New("stored, not applied yet")
