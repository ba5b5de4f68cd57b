package shard

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// replay applies one PARKED message of tenant and commits its effects
// with the tenant's episode; the episode ends when the last event parked
// is applied.
func (s *shard) replay(ctx context.Context, tx *Tx, out *outbox, tenant string, m eventlog.Message, held *bool) error {
	start := time.Now()
	ep := s.eps[tenant]
	if ep == nil || !ep.Active {
		return nil // the episode ended; the reader is being stopped
	}
	batch := s.rt.deps.Store.NewBatch()
	defer func() { _ = batch.Close() }()
	tx.begin(s.rt.deps.Store, batch)
	out.reset()
	s.startRecvs()
	origin, err := strconv.ParseUint(m.Headers.Get(HeaderOrigin), 10, 64)
	if err != nil {
		return fmt.Errorf("parked message %d of %s has no origin sequence: %w", m.Seq, tenant, err)
	}
	ep.ParkedPos = m.Seq
	n := 0
	defer func() { s.cost = n }()
	var dead []Output
	// Each event is applied with the sequence and index it had in the
	// message it was parked from, as if it had not been parked: the keys
	// and ids processors derive from them stay unique.
	indexes, err := parseIndexes(m.Headers.Get(HeaderOriginIndex))
	if err != nil {
		return fmt.Errorf("parked message %d of %s: %w", m.Seq, tenant, err)
	}
	tx.Replayed = true
	defer func() { tx.Replayed = false }()
	skip := origin <= ep.Replayed
	if !skip {
		var lastRecv time.Time
		err := event.EachEvent(m.Data, func(e *event.Event) error {
			index := n
			if n < len(indexes) {
				index = indexes[n]
			}
			n++
			lastRecv = e.ReceivedAt
			d, err := s.processOne(ctx, tx, out, origin, index, e)
			if d != nil {
				dead = append(dead, *d)
			}
			return err
		})
		if n > 0 {
			s.tenantRecv[tenant] = lastRecv
		}
		if bad, err := s.unreadable(ctx, m, err); err != nil {
			return err
		} else if bad != nil {
			batch = s.discard(tx, out, batch)
			clear(s.tenantRecv)
			dead = []Output{{Subject: eventlog.DeadPrefix + tenant, Data: m.Data, Headers: s.deadHeaders(m.Seq, bad)}}
			n = event.Count(m.Data)
		}
		ep.Replayed = origin
		ep.Backlog -= int64(n)
	}
	ended := false
	// It ends once what the committed messages parked is replayed, and at
	// least one of them parked something (a pause episode commits before
	// its first message does). Not before the shard's first message since
	// it (re)started has committed: an earlier attempt of that message,
	// made while the episode was active, parked the tenant's events, and
	// the next attempt must too.
	if paused, _ := s.rt.policy(tenant); ep.Replayed >= ep.Diverted && ep.Diverted >= ep.Start && !s.fresh && !paused {
		ended = true
		ep.Active, ep.Backlog = false, 0
	}
	stage := s.stage + "-" + tenant
	if err := s.publish(ctx, stage, m.Seq, out.outputs(), dead); err != nil {
		return err
	}
	tx.reset(origin, 0)
	s.saveEpisode(tx, tenant, ep)
	tx.apply()
	if !skip {
		if err := s.flush(ctx, tx, origin, 0); err != nil {
			return err
		}
	}
	s.endRecvs()
	spill := s.handOver(ctx, tx, out.externals, held)
	if err := s.commit(tx, batch, 0, 0, start); err != nil {
		return err
	}
	if n > 0 {
		s.rt.metrics.replayed.WithLabelValues(s.stream, tenant).Add(float64(n))
	}
	s.setBacklog(tenant, ep.Backlog)
	s.publishParked()
	if ended {
		// The end must survive a crash before the tenant's events are
		// applied directly again and before PARKED is purged: a restart
		// that found the episode still active would park the tenant's
		// next events once more, and would look in vain for the parked
		// events the purge removed.
		if err := s.settle(); err != nil {
			return err
		}
		s.rt.logger.Info("parked events replayed; the tenant's events are applied directly again", "stream", s.stream,
			"partition", s.partition, "tenant", tenant, "through_seq", ep.Replayed)
		subject := eventlog.ParkedSubject(tenant, s.stream, s.partition)
		if p, ok := s.rt.deps.Publisher.(Purger); ok {
			if err := p.PurgeSubject(ctx, eventlog.StreamParked, subject, ep.ParkedPos+1); err != nil {
				s.rt.logger.Warn("purging replayed parked events", "subject", subject, "err", err)
			}
		}
	}
	if len(spill) > 0 && s.rt.deps.Sender != nil {
		s.rt.deps.Sender.Spilled(s.stream, s.partition, spill)
	}
	return nil
}

// Purger removes replayed parked events; *eventlog.Log implements it.
type Purger interface {
	PurgeSubject(ctx context.Context, stream, subject string, before uint64) error
}
