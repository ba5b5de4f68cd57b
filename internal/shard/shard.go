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
	"github.com/prometheus/client_golang/prometheus"

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

// Source reads one partition of a stream, or one subject, in order;
// *eventlog.Log implements it.
type Source interface {
	ReadStream(ctx context.Context, stream, prefix string, partition int, start eventlog.Start, fn func(eventlog.Message) error) error
	ReadSubject(ctx context.Context, stream, subject string, start eventlog.Start, fn func(eventlog.Message) error) error
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
	// parkedEvents counts the events parked and not yet replayed.
	parkedEvents atomic.Int64
	pending      atomic.Uint64 // messages after the last delivered one
	last         atomic.Uint64 // highest sequence delivered

	mu      sync.Mutex
	applied chan struct{} // closed and replaced at each commit
	// parked is what WaitApplied needs of the episodes: per tenant, the
	// first main sequence parked and the last replayed, while active.
	parked map[string][2]uint64

	// Owned by the shard's loop.
	eps        map[string]*episode
	shares     shares
	park       parking
	mainWeight int
	tenantRecv map[string]time.Time // per message: each tenant's last receivedAt
	// recvs is, per message of the commit and tenant, the receivedAt of
	// the tenant's last event applied; lastRecvs, per message, the
	// latest. The commit observes the latencies from them.
	recvs     []tenantRecv
	lastRecvs []time.Time
	weighed   map[string]bool // per message: the tenants counted in mainWeight
	parkedNow map[string]int  // per commit: the events parked, by tenant
	// markedTo, when past the position, is the last message of a group
	// marked before a restart: the first group must end exactly there
	// (see mark).
	markedTo uint64
	// processed caches the tenants' processed counters: a label lookup
	// per event costs more than the increment.
	processed map[string]prometheus.Counter
	// perEvent is the recent wall time a main message took to apply, per
	// event: it bounds the groups extent chooses.
	perEvent time.Duration
	// groupStop, when not 0, ends commit groups before that sequence: the
	// message there went to DEAD whole and must open its group.
	groupStop uint64
	// backlogShown is what the shard added to the backlog gauge, per tenant.
	backlogShown map[string]int64
	// cost is what the last message cost the scheduler: events applied,
	// and parked ones at a sixteenth.
	cost int
	// fresh: no message of the partition committed since the shard
	// (re)started.
	fresh bool
	// committed numbers the shard's last commit among the runtime's (see
	// settle).
	committed uint64
}

// advance records that seq is applied and wakes the waiters.
func (s *shard) advance(seq uint64) {
	if seq > 0 {
		s.position.Store(seq)
	}
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

// appliedFor reports whether the shard has applied main sequence seq for
// tenant: it is at or past seq, and seq is not parked and waiting.
func (s *shard) appliedFor(tenant string, seq uint64) bool {
	if s.position.Load() < seq {
		return false
	}
	if tenant == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parked[tenant]
	return !ok || seq < p[0] || p[1] >= seq
}

// publishParked refreshes what WaitApplied reads of the episodes, and
// wakes the waiters: a replay's commit woke them before the episode's
// progress was published here, and a waiter that looked in between would
// otherwise sleep until the next commit, which may never come.
func (s *shard) publishParked() {
	m := make(map[string][2]uint64, len(s.eps))
	for t, ep := range s.eps {
		if ep.Active {
			m[t] = [2]uint64{ep.Start, ep.Replayed}
		}
	}
	s.mu.Lock()
	s.parked = m
	if s.applied != nil {
		close(s.applied)
		s.applied = nil
	}
	s.mu.Unlock()
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
	if s.eps, err = s.loadEpisodes(); err != nil {
		return err
	}
	s.publishParked()
	s.park = parking{index: map[string]int{}, undo: map[string]*episode{}}
	s.tenantRecv = map[string]time.Time{}
	s.weighed = map[string]bool{}
	s.parkedNow = map[string]int{}
	if s.markedTo, err = store.GetUint64(s.rt.deps.Store.DB(), store.GroupKey(s.stream, s.partition)); err != nil {
		return err
	}
	s.mainWeight = 1
	s.fresh = true
	for t, ep := range s.eps {
		s.setBacklog(t, ep.Backlog)
	}
	defer func() {
		for t := range s.backlogShown {
			s.setBacklog(t, 0)
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := newSched()
	defer sc.close()
	prefix := eventlog.PrefixOf(s.stream)
	main := sc.start(ctx, "", func(ctx context.Context, fn func(eventlog.Message) error) error {
		return s.rt.deps.Source.ReadStream(ctx, s.stream, prefix, s.partition, eventlog.Start{Seq: pos + 1}, fn)
	})
	tx := &Tx{Stream: s.stream, Partition: s.partition, overlay: map[string]entry{}, msg: map[string]entry{}}
	out := &outbox{}
	eligible := func(src *source) bool {
		if src == main {
			return true
		}
		if paused, _ := s.rt.policy(src.tenant); paused {
			return false
		}
		// A parked message waits until the message it came from has
		// committed: an attempt that crashed before its commit may have
		// published it, and the next attempt publishes it again.
		ep := s.eps[src.tenant]
		origin, err := strconv.ParseUint(src.head.Headers.Get(HeaderOrigin), 10, 64)
		return ep == nil || !ep.Active || err != nil || origin <= ep.Diverted
	}
	weight := func(src *source) int {
		if src == main {
			return s.mainWeight
		}
		_, w := s.rt.policy(src.tenant)
		return w
	}
	for {
		s.syncReplays(ctx, sc)
		select {
		case err := <-sc.errs:
			return err
		default:
		}
		if err := s.rt.waitResumed(ctx); err != nil {
			return err
		}
		sc.fill()
		src := sc.pick(eligible, weight)
		if src == nil {
			// Nothing to do; look again now and then, for a tenant
			// resumed (its replay becomes eligible without a message).
			if err := sc.wait(ctx, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		m := *src.head
		src.head = nil
		if src == main {
			s.pending.Store(m.Pending)
			s.last.Store(m.Seq)
			if m.Seq <= s.position.Load() {
				continue // already applied (a redelivery after a consumer reset)
			}
		}
		if err := s.step(ctx, tx, out, src, m); err != nil {
			return err
		}
		sc.charge(src, s.cost)
	}
}

// step applies one message on a worker.
func (s *shard) step(ctx context.Context, tx *Tx, out *outbox, src *source, m eventlog.Message) error {
	var group []eventlog.Message
	switch {
	case s.deciding() && src.tenant == "":
		var err error
		if group, err = s.extent(ctx, src, m); err != nil {
			return err
		}
		if err := s.mark(group); err != nil {
			return err
		}
	case s.deciding():
		if err := s.settle(); err != nil {
			return err
		}
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
	if src.tenant == "" {
		return s.apply(ctx, tx, out, src, m, group, &held)
	}
	return s.replay(ctx, tx, out, src.tenant, m, &held)
}

// syncReplays starts a reader for each tenant whose parked events may be
// replayed, and stops those of episodes that ended.
func (s *shard) syncReplays(ctx context.Context, sc *sched) {
	for t, src := range sc.byTenant {
		if ep := s.eps[t]; ep == nil || !ep.Active {
			sc.stop(src)
		}
	}
	for t, ep := range s.eps {
		if !ep.Active || sc.byTenant[t] != nil {
			continue
		}
		if paused, _ := s.rt.policy(t); paused {
			continue
		}
		subject := eventlog.ParkedSubject(t, s.stream, s.partition)
		from := ep.ParkedPos + 1
		sc.start(ctx, t, func(ctx context.Context, fn func(eventlog.Message) error) error {
			return s.rt.deps.Source.ReadSubject(ctx, eventlog.StreamParked, subject, eventlog.Start{Seq: from}, fn)
		})
	}
}

// apply processes a commit group: log message m of the partition and the
// ones after it that src already holds (see groupNext), and commits their
// effects with the position of the last, in one batch. Events of tenants
// being parked go to PARKED instead. held says whether the shard holds a
// worker; apply lets it go while it waits for the senders.
//
// group, when not nil, is the whole group, chosen and marked beforehand
// (see extent); without it the group grows by groupNext.
func (s *shard) apply(ctx context.Context, tx *Tx, out *outbox, src *source, m eventlog.Message, group []eventlog.Message, held *bool) error {
	start := time.Now()
	batch := s.rt.deps.Store.NewBatch()
	defer func() { _ = batch.Close() }()
	tx.begin(s.rt.deps.Store, batch)
	s.park.reset()
	clear(s.parkedNow)
	s.startRecvs()
	s.cost = 0
	var spill []External
	msgs, events := 0, 0
	for {
		n, sp, err := s.applyMessage(ctx, tx, out, &batch, m, held, msgs == 0)
		if err != nil {
			return err
		}
		spill = append(spill, sp...)
		msgs++
		events += n
		if group != nil {
			if msgs >= len(group) {
				break
			}
			m = group[msgs]
			continue
		}
		next, ok := s.groupNext(src, m.Seq, msgs, events, start)
		if !ok {
			break
		}
		m = next
	}
	if err := s.flush(ctx, tx, m.Seq, events); err != nil {
		return err
	}
	tx.reset(m.Seq, events)
	s.startOverflow(tx, m.Seq, s.rt.now().Sub(m.Time))
	tx.apply()
	if err := s.commit(tx, batch, m.Seq, m.Pending, start); err != nil {
		return err
	}
	s.rt.metrics.groupMessages.WithLabelValues(s.stream).Observe(float64(msgs))
	if events > 0 {
		d := time.Since(start) / time.Duration(events)
		if s.perEvent == 0 {
			s.perEvent = d
		} else {
			s.perEvent += (d - s.perEvent) / 8
		}
	}
	s.fresh = false
	for t, n := range s.parkedNow {
		s.rt.metrics.parked.WithLabelValues(s.stream, t, s.eps[t].Reason).Add(float64(n))
		s.setBacklog(t, s.eps[t].Backlog)
	}
	if len(s.parkedNow) > 0 || len(s.park.undo) > 0 {
		s.publishParked()
	}
	if len(spill) > 0 && s.rt.deps.Sender != nil {
		s.rt.deps.Sender.Spilled(s.stream, s.partition, spill)
	}
	return nil
}

// applyMessage applies one log message of a commit group: it processes
// its events (or parks them), publishes its outputs and hands its
// external effects over, and returns how many events it held and the
// effects spilled to the outbox. first says it opens the group: only then
// may it start parking a tenant or go to DEAD whole (groupNext and
// extent keep such messages out of the middle of a group; one that could
// not be told beforehand makes the group be redone without it).
func (s *shard) applyMessage(ctx context.Context, tx *Tx, out *outbox, batch **pebble.Batch, m eventlog.Message, held *bool, first bool) (int, []External, error) {
	out.reset()
	s.park.groups = s.park.groups[:0]
	clear(s.park.index)
	// An output of another shard already applied (a replay upstream, past
	// JetStream's dedup window) is dropped whole; the high-water mark
	// commits with the message's effects.
	tx.reset(m.Seq, 0)
	switch dup, err := tx.Duplicate(m.MsgID); {
	case errors.Is(err, ErrBadOutputID): // a collector's append
	case err != nil:
		return 0, nil, err
	case dup:
		s.rt.metrics.duplicates.WithLabelValues(s.stream).Inc()
		s.cost++
		return 0, nil, nil
	default:
		tx.apply()
	}
	var dead []Output
	idx := 0
	weights := 0
	var e event.Event
	// Events of one tenant tend to come in runs: the tenant's name, share,
	// decision, weight and last receivedAt are handled once per run.
	var tenant string
	var lastRecv time.Time
	run, diverted := 0, false
	clear(s.weighed)
	endRun := func() {
		if run == 0 {
			return
		}
		s.shares.add(tenant, run)
		if !diverted {
			s.tenantRecv[tenant] = lastRecv
		}
	}
	err := event.EachRecord(m.Data, func(rec []byte) error {
		tb, _, err := event.RecordHead(rec)
		if err != nil {
			return err
		}
		if run == 0 || string(tb) != tenant {
			endRun()
			tenant, run = string(tb), 0
			if diverted, err = s.parks(tenant, &m); err != nil {
				return err
			}
			if !s.weighed[tenant] && !diverted {
				s.weighed[tenant] = true
				weights += s.weight(tenant)
			}
		}
		run++
		if diverted {
			s.park.add(tenant, rec, idx)
			idx++
			return nil
		}
		if err := event.DecodeRecord(rec, &e); err != nil {
			return err
		}
		lastRecv = e.ReceivedAt
		d, err := s.processOne(ctx, tx, out, m.Seq, idx, &e)
		idx++
		if d != nil {
			dead = append(dead, *d)
		}
		return err
	})
	endRun()
	if bad, err := s.unreadable(ctx, m, err); err != nil {
		return 0, nil, err
	} else if bad != nil {
		if !first {
			// Its events are in the group's batch and the processor's
			// memory with the others': redo the group without it.
			s.groupStop = m.Seq
			return 0, nil, errRegroup
		}
		*batch = s.discard(tx, out, *batch)
		s.rollback()
		s.park.reset()
		clear(s.tenantRecv)
		dead = []Output{{Subject: eventlog.DeadPrefix + "unknown", Data: m.Data, Headers: s.deadHeaders(m.Seq, bad)}}
	}
	s.mainWeight = max(weights, 1)
	parked := 0
	for _, g := range s.park.groups {
		parked += g.count
	}
	s.cost += idx - parked + (parked+15)/16
	if err := s.publish(ctx, s.stage, m.Seq, out.outputs(), dead); err != nil {
		return 0, nil, err
	}
	if len(s.park.groups) > 0 {
		msgs := s.park.outputs(s.stream, s.partition, m.Seq)
		if err := publishOutputs(ctx, s.rt.deps.Publisher, "park.", s.stage, s.partition, m.Seq, msgs); err != nil {
			return 0, nil, err
		}
		tx.reset(m.Seq, idx)
		for _, g := range s.park.groups {
			ep := s.eps[g.tenant]
			ep.Diverted = m.Seq
			ep.Backlog += int64(g.count)
			s.saveEpisode(tx, g.tenant, ep)
			s.parkedNow[g.tenant] += g.count
		}
		tx.apply()
	}
	s.endRecvs()
	return idx, s.handOver(ctx, tx, out.externals, held), nil
}

// processOne applies event index of message seq; a failure becomes a DEAD
// output.
func (s *shard) processOne(ctx context.Context, tx *Tx, out *outbox, seq uint64, index int, e *event.Event) (*Output, error) {
	tx.reset(seq, index)
	if perr := s.process(ctx, tx, e); perr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d := deadOutput(s, seq, e, perr)
		s.rt.metrics.dead.WithLabelValues(s.stream, e.Tenant).Inc()
		s.rt.logger.Warn("event sent to DEAD", "stream", s.stream, "partition", s.partition, "seq", seq,
			"tenant", e.Tenant, "message_id", e.MessageID, "err", perr)
		return &d, nil
	}
	tx.apply()
	s.processedOf(e.Tenant).Inc()
	out.add(tx)
	return nil, nil
}

// unreadable sorts a message's processing error: bad when the message
// cannot be decoded and goes to DEAD whole, or the error that must stop
// the shard.
func (s *shard) unreadable(ctx context.Context, m eventlog.Message, err error) (bad, _ error) {
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, event.ErrCorrupt) || errors.Is(err, event.ErrVersion):
		if r, ok := s.proc.(Resetter); ok {
			r.Reset() // it saw the events read before the damage
		}
		s.rt.metrics.dead.WithLabelValues(s.stream, "unknown").Inc()
		s.rt.logger.Error("unreadable log message sent to DEAD", "stream", s.stream, "partition", s.partition,
			"subject", m.Subject, "seq", m.Seq, "err", err)
		return err, nil
	case err != nil:
		return nil, fmt.Errorf("processing %s seq %d: %w", m.Subject, m.Seq, err)
	}
	return nil, nil
}

// discard drops what a message wrote and gathered so far, for one that
// goes to DEAD whole, and returns the new batch.
func (s *shard) discard(tx *Tx, out *outbox, batch *pebble.Batch) *pebble.Batch {
	_ = batch.Close()
	batch = s.rt.deps.Store.NewBatch()
	tx.begin(s.rt.deps.Store, batch)
	out.reset()
	return batch
}

// publish stores a message's outputs and DEAD events before its commit.
func (s *shard) publish(ctx context.Context, stage string, seq uint64, outputs, dead []Output) error {
	if len(outputs) > 0 {
		if err := publishOutputs(ctx, s.rt.deps.Publisher, "", stage, s.partition, seq, outputs); err != nil {
			return err
		}
		s.rt.metrics.outputs.WithLabelValues(s.stream).Add(float64(len(outputs)))
	}
	if len(dead) > 0 {
		if err := publishOutputs(ctx, s.rt.deps.Publisher, "dead.", stage, s.partition, seq, dead); err != nil {
			return err
		}
	}
	return nil
}

// flush lets a Flusher write what it gathered over the message.
func (s *shard) flush(ctx context.Context, tx *Tx, seq uint64, idx int) error {
	f, ok := s.proc.(Flusher)
	if !ok {
		return nil
	}
	tx.reset(seq, idx)
	if err := f.Flush(ctx, tx); err != nil {
		return fmt.Errorf("flushing %s seq %d: %w", s.stream, seq, err)
	}
	tx.apply()
	return nil
}

// setBacklog shows n as the shard's part of tenant's parked backlog in
// the per-tenant gauge, which sums the shards'.
func (s *shard) setBacklog(tenant string, n int64) {
	if s.backlogShown == nil {
		s.backlogShown = map[string]int64{}
	}
	if d := n - s.backlogShown[tenant]; d != 0 {
		s.rt.metrics.backlog.WithLabelValues(s.stream, tenant).Add(float64(d))
		s.parkedEvents.Add(d)
	}
	if n == 0 {
		delete(s.backlogShown, tenant)
	} else {
		s.backlogShown[tenant] = n
	}
}

// commit writes the message's state and, for a message of the partition
// (seq > 0), its position, in one batch.
func (s *shard) commit(tx *Tx, batch *pebble.Batch, seq, pending uint64, start time.Time) error {
	if err := tx.flush(); err != nil {
		return err
	}
	if seq > 0 {
		if err := store.PutUint64(batch, store.PositionKey(s.stream, s.partition), seq); err != nil {
			return err
		}
	}
	if err := s.rt.deps.Store.Commit(batch); err != nil {
		return err
	}
	s.committed = s.rt.commits.Add(1)
	s.advance(seq)
	if s.stopsGroup(seq) {
		s.groupStop = 0
	}
	if seq > 0 {
		p := strconv.Itoa(s.partition)
		s.rt.metrics.position.WithLabelValues(s.stream, p).Set(float64(seq))
		s.rt.metrics.lag.WithLabelValues(s.stream, p).Set(float64(pending))
	}
	s.rt.metrics.applySeconds.WithLabelValues(s.stream).Observe(time.Since(start).Seconds())
	// Wall clock for the metrics only; processing never reads it.
	now := s.rt.now()
	for _, r := range s.recvs {
		lag := now.Sub(r.at).Seconds()
		s.rt.metrics.tenantLatency.WithLabelValues(s.stream, r.tenant).Observe(lag)
		s.rt.metrics.tenantLag.WithLabelValues(s.stream, r.tenant).Set(lag)
	}
	for _, last := range s.lastRecvs {
		s.rt.metrics.endToEnd.WithLabelValues(s.stream).Observe(now.Sub(last).Seconds())
	}
	return nil
}

// processedOf returns tenant's processed-events counter.
func (s *shard) processedOf(tenant string) prometheus.Counter {
	c, ok := s.processed[tenant]
	if !ok {
		if s.processed == nil {
			s.processed = map[string]prometheus.Counter{}
		}
		c = s.rt.metrics.processed.WithLabelValues(s.stream, tenant)
		s.processed[tenant] = c
	}
	return c
}

type tenantRecv struct {
	tenant string
	at     time.Time
}

// startRecvs starts a commit's latency records.
func (s *shard) startRecvs() {
	clear(s.tenantRecv)
	s.recvs, s.lastRecvs = s.recvs[:0], s.lastRecvs[:0]
}

// endRecvs ends a message's: each message of a group is observed with its
// own events, as if it had committed alone.
func (s *shard) endRecvs() {
	var last time.Time
	for t, at := range s.tenantRecv {
		s.recvs = append(s.recvs, tenantRecv{tenant: t, at: at})
		if at.After(last) {
			last = at
		}
	}
	if !last.IsZero() {
		s.lastRecvs = append(s.lastRecvs, last)
	}
	clear(s.tenantRecv)
}

// settle makes every batch the shard committed so far survive a process
// crash. The store commits without syncing, and Pebble then keeps the
// batch in the process's memory until a WAL block fills or something
// syncs, so a SIGKILL loses a suffix of commits, often many messages long,
// not only the message in flight. For plain processing that is harmless: it
// is deterministic, and a replay from the older position publishes the
// same outputs under the same ids. Parking decisions are not: an overflow
// episode starts when the shard is behind, and an episode ends when the
// replays happen to catch up, so a later attempt of a lost message may
// park where the first applied, or the reverse, and publish other outputs
// under the ids the first attempt used; JetStream's dedup keeps the first
// and drops the second. So while decisions are in play (see deciding), a
// shard starts a message only once its earlier commits are durable, and a
// pause episode's start and an episode's end are durable before anything
// depends on them: the only message a restarted shard redoes after its
// effects went out is then the one in flight, which is what the episode
// rules assume (see fresh).
//
// One sync makes every shard's earlier commits durable, so a shard syncs
// only when no sync has covered its last commit yet.
func (s *shard) settle() error {
	if s.rt.durable.Load() >= s.committed {
		return nil
	}
	n := s.rt.commits.Load() // these commits are in the WAL before the sync below
	b := s.rt.deps.Store.NewBatch()
	defer func() { _ = b.Close() }()
	_ = b.LogData(nil, nil) // cannot fail; an empty batch may not reach the WAL
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("making the shards' commits durable: %w", err)
	}
	s.rt.synced(n)
	return nil
}

// synced records that a sync made the first n commits durable.
func (r *Runtime) synced(n uint64) {
	for {
		if d := r.durable.Load(); d >= n || r.durable.CompareAndSwap(d, n) {
			return
		}
	}
}

// deciding reports whether what the shard publishes depends on parking
// decisions that a replay of the log may not repeat: with fair scheduling
// an overflow episode may start after any message, and while an episode is
// active its end depends on timing. Otherwise a message's outputs follow
// from the log and the state (a pause episode starts durable).
func (s *shard) deciding() bool {
	if s.rt.cfg.Fair {
		return true
	}
	for _, ep := range s.eps {
		if ep.Active {
			return true
		}
	}
	return false
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
