package shard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/store"
)

// Commit groups. A shard that is behind applies the log messages its
// reader already holds together and commits them in one Pebble batch with
// the position of the last: per message it still processes the events in
// order, publishes the outputs under the message's own ids and hands its
// external effects over before the commit, so what leaves the shard is
// what one commit per message would send. What a group saves is per
// commit: the batch and its memtable inserts (a key written by several
// messages of the group, a visitor's record or a tenant's counter, is
// inserted once), the processor's Flush (the rollups write their records
// once per group) and the metrics.
//
// A crash loses the uncommitted group whole, and the shard applies its
// messages again from the stored position; since processing is
// deterministic and a group's only effects besides its batch are outputs
// under per-message ids, a replay grouped differently sends the same
// outputs and ends in the same state (the rollups' records are keyed by
// the flush's sequence, but only their sum is read).
//
// A group takes only messages already fetched, so a shard that keeps up
// commits every message as it comes, and it is bounded in messages,
// events and time, so that a commit and the waiters on it (WaitApplied)
// are not held back long. Messages whose handling depends on decisions a
// replay must repeat (parking, see deciding; a paused tenant's events)
// are grouped only as extent and mark allow.
const (
	maxGroupMessages = 32
	maxGroupEvents   = 4096
	maxGroupTime     = 10 * time.Millisecond
)

// errRegroup stops a shard's run so that it restarts at once from its
// stored position: a message in the middle of a group could not be read
// and goes to DEAD whole, which only the first message of a group may.
var errRegroup = errors.New("shard: a message inside a commit group is unreadable; regrouping")

// groupNext returns the next message of the partition to add to the
// group that ends with message seq, if src holds one already and the group
// may grow. A message it takes and may not add becomes src's head again.
func (s *shard) groupNext(src *source, seq uint64, msgs, events int, start time.Time) (eventlog.Message, bool) {
	if src == nil || src.tenant != "" || msgs >= maxGroupMessages || events >= maxGroupEvents ||
		time.Since(start) >= maxGroupTime || len(s.parkedNow) > 0 || len(s.park.undo) > 0 || s.deciding() {
		return eventlog.Message{}, false
	}
	m, ok, _ := s.held(context.Background(), src, seq, false)
	if !ok {
		return m, false
	}
	if s.stopsGroup(m.Seq) || s.parksAny(m) {
		src.head = &m
		return eventlog.Message{}, false
	}
	return m, true
}

// held takes the next message of the partition after seq that src holds,
// or, with wait, the next one to come. A message at or below seq (a
// redelivery after a consumer reset) is dropped: the group or the stored
// position covers it. The one returned counts as the last read.
func (s *shard) held(ctx context.Context, src *source, seq uint64, wait bool) (eventlog.Message, bool, error) {
	for {
		var m eventlog.Message
		if wait {
			select {
			case m = <-src.ch:
			case <-ctx.Done():
				return m, false, ctx.Err()
			}
		} else {
			select {
			case m = <-src.ch:
			default:
				return m, false, nil
			}
		}
		src.took(m)
		if m.Seq > seq {
			s.pending.Store(m.Pending)
			s.last.Store(m.Seq)
			return m, true, nil
		}
	}
}

// stopsGroup reports whether a group must end before message seq (see
// groupStop).
func (s *shard) stopsGroup(seq uint64) bool { return s.groupStop != 0 && seq >= s.groupStop }

// parksAny reports whether a message may start parking a tenant (one
// paused when the log stored it and not parked yet), or has records that
// cannot be framed: such a message must open a group (see parks; an
// unreadable one goes to DEAD whole). A record whose body turns out
// unreadable while applying makes the group be redone without it
// (errRegroup, groupStop).
func (s *shard) parksAny(m eventlog.Message) bool {
	var tenant []byte
	parks := false
	err := event.EachRecord(m.Data, func(rec []byte) error {
		tb, _, err := event.RecordHead(rec)
		if err != nil {
			return err
		}
		if tenant == nil || string(tb) != string(tenant) {
			tenant = tb
			if ep := s.eps[string(tb)]; (ep == nil || !ep.Active) && s.rt.deps.Tenants != nil &&
				s.rt.deps.Tenants.PausedAt(string(tb), m.Time) {
				parks = true
				return errStopScan
			}
		}
		return nil
	})
	return parks || (err != nil && !errors.Is(err, errStopScan))
}

// extent chooses the commit group that starts with m while parking
// decisions are in play (see deciding): m and the messages src already
// holds, up to the limits and the source's share of the scheduler's
// round, none of which may start parking a tenant or be unreadable. After
// a restart, the group marked before it is redone whole, waiting for its
// messages (see mark), except from a message found unreadable in it: the
// first attempt stopped there, before that message published anything
// and before the group's end, where decisions are taken.
func (s *shard) extent(ctx context.Context, src *source, m eventlog.Message) ([]eventlog.Message, error) {
	group := []eventlog.Message{m}
	if to := s.markedTo; to > s.position.Load() {
		s.markedTo = 0
		for !s.stopsGroup(m.Seq) && group[len(group)-1].Seq < to {
			next, _, err := s.held(ctx, src, group[len(group)-1].Seq, true)
			if err != nil {
				return nil, err
			}
			if next.Seq > to || s.stopsGroup(next.Seq) {
				src.head = &next
				break
			}
			group = append(group, next)
		}
		return group, nil
	}
	if s.parksAny(m) {
		return group, nil
	}
	// With other sources to share with, the group stays within the
	// source's turn; alone, its deficit is not kept (sched.pick).
	// A decision waits for the group's end, so a group takes at most a
	// quarter of the fair lag by the shard's recent cost per event: a
	// tenant over its share is parked about as soon as without groups.
	events, budget := event.Count(m.Data), maxGroupEvents
	if src.deficit > 0 {
		budget = min(budget, src.deficit)
	}
	if s.perEvent > 0 {
		budget = min(budget, max(int(s.rt.cfg.FairLag/4/s.perEvent), 1))
	}
	for len(group) < maxGroupMessages && events < budget {
		next, ok, _ := s.held(ctx, src, group[len(group)-1].Seq, false)
		if !ok {
			return group, nil
		}
		if s.stopsGroup(next.Seq) || s.parksAny(next) {
			src.head = &next
			break
		}
		group = append(group, next)
		events += event.Count(next.Data)
	}
	return group, nil
}

// mark prepares a group while parking decisions are in play. Such a
// decision (an overflow episode starting, see startOverflow) is taken at
// the end of a group and depends on timing, so a group redone after a
// crash must end where the first attempt did: the first attempt may have
// published the outputs of its messages, and a redo that ended earlier
// could park, after its end, the events the first attempt applied and
// published. So the last sequence of a group of several messages is
// written and synced before the group starts (the one sync, which also
// makes the earlier commits durable, as settle does), and a restarted
// shard's first group ends exactly there (extent). A group of one
// message needs no mark: settle.
func (s *shard) mark(group []eventlog.Message) error {
	if len(group) == 1 {
		return s.settle()
	}
	n := s.rt.commits.Load() // these commits are in the WAL before the sync below
	b := s.rt.deps.Store.NewBatch()
	defer func() { _ = b.Close() }()
	if err := store.PutUint64(b, store.GroupKey(s.stream, s.partition), group[len(group)-1].Seq); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("marking a commit group: %w", err)
	}
	s.rt.metrics.marks.WithLabelValues(s.stream).Inc()
	s.rt.synced(n)
	return nil
}

var errStopScan = errors.New("stop")
