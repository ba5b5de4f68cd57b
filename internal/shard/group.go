package shard

import (
	"errors"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
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
// are not grouped: a message that starts parking a tenant opens a group
// and closes it.
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
// group, if src holds one already and the group may grow. A message it
// takes and may not add becomes src's head again.
func (s *shard) groupNext(src *source, msgs, events int, start time.Time) (eventlog.Message, bool) {
	if src == nil || src.tenant != "" || msgs >= maxGroupMessages || events >= maxGroupEvents ||
		time.Since(start) >= maxGroupTime || len(s.park.groups) > 0 || len(s.park.undo) > 0 || s.deciding() {
		return eventlog.Message{}, false
	}
	var m eventlog.Message
	select {
	case m = <-src.ch:
	default:
		return m, false
	}
	if m.Seq <= s.position.Load() || (s.groupStop != 0 && m.Seq >= s.groupStop) || s.parksAny(m) {
		src.head = &m
		return eventlog.Message{}, false
	}
	s.pending.Store(m.Pending)
	s.last.Store(m.Seq)
	return m, true
}

// parksAny reports whether a message would park a tenant's events: a
// tenant paused when the log stored it. Such a message must open a group
// (see parks).
func (s *shard) parksAny(m eventlog.Message) bool {
	if s.rt.deps.Tenants == nil {
		return false
	}
	var tenant []byte
	parks := false
	err := event.EachRecord(m.Data, func(rec []byte) error {
		tb, _, err := event.RecordHead(rec)
		if err != nil {
			return err
		}
		if tenant == nil || string(tb) != string(tenant) {
			tenant = tb
			if s.rt.deps.Tenants.PausedAt(string(tb), m.Time) {
				parks = true
				return errStopScan
			}
		}
		return nil
	})
	// An unreadable message opens its group too: it goes to DEAD whole.
	return parks || (err != nil && !errors.Is(err, errStopScan))
}

var errStopScan = errors.New("stop")
