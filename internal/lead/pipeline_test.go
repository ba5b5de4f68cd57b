package lead_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
	"github.com/contrailhq/contrail/internal/visitor"
)

// testTenant is the tenant of the pipeline tests.
const testTenant = "tn_lead"

// fixedTenants serves a fixed set of tenants to both kinds of processor.
type fixedTenants map[string]*tenant.Tenant

func (f fixedTenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := f[id]; return t, ok }

// pipeline runs P visitor shards and Q lead shards in process over one
// Pebble store, as a node does without the log: every output goes to the
// FIFO queue of its subject ("ev.N" or "ld.N"), and settle applies queued
// messages one at a time, always from the lowest-numbered non-empty queue,
// EVENTS before LEADS (or the reverse, see leadsFirst), until none is
// left. Each stream has one sequence counter, as a JetStream stream has.
type pipeline struct {
	tb       testing.TB
	st       *store.Store
	p, q     int
	visitors []*visitor.Processor
	leads    []*lead.Processor
	reader   *lead.Reader
	evq, ldq [][][]event.Event // per partition, FIFO of messages
	seq      map[string]uint64 // per stream
	// rejected are the events a processor refused (a shard sends them
	// to DEAD).
	rejected []rejection
	// leadsFirst reverses the delivery order: the highest-numbered
	// non-empty queue, LEADS before EVENTS (another interleaving the log
	// allows).
	leadsFirst bool
	// maxMessages bounds one settle: more means the shards keep sending
	// one another messages forever.
	maxMessages int
	nextID      int
}

type rejection struct {
	stream    string
	partition int
	event     event.Event
	err       error
}

func (r rejection) String() string {
	return fmt.Sprintf("%s/%d %s %s %q: %v", r.stream, r.partition, r.event.Type, r.event.Event, r.event.MessageID, r.err)
}

// newPipeline returns a pipeline of p EVENTS and q LEADS partitions with
// the test tenant's settings.
func newPipeline(tb testing.TB, p, q int, set tenant.Settings) *pipeline {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, st.Close()) })
	tenants := fixedTenants{testTenant: {ID: testTenant, Settings: set}}
	vcfg := visitor.DefaultConfig()
	vcfg.Partitions, vcfg.LeadPartitions, vcfg.Tenants = p, q, tenants
	pl := &pipeline{
		tb: tb, st: st, p: p, q: q, reader: lead.NewReader(st, q),
		evq: make([][][]event.Event, p), ldq: make([][][]event.Event, q),
		seq: map[string]uint64{}, maxMessages: 10000,
	}
	vm := visitor.NewMetrics(prometheus.NewRegistry())
	for i := range p {
		v, err := visitor.New(vcfg, i, vm)
		require.NoError(tb, err)
		pl.visitors = append(pl.visitors, v)
	}
	lm := lead.NewMetrics(prometheus.NewRegistry())
	for i := range q {
		l, err := lead.New(lead.Config{Partitions: q, EventPartitions: p, Tenants: tenants}, i, lm)
		require.NoError(tb, err)
		pl.leads = append(pl.leads, l)
	}
	return pl
}

// send queues events as one collector message on the EVENTS partition of
// the first one's visitor; all must share it.
func (pl *pipeline) send(events ...event.Event) {
	pl.tb.Helper()
	require.NotEmpty(pl.tb, events)
	part := event.Partition(events[0].Tenant, events[0].VisitorKey(), pl.p)
	for i := range events {
		if events[i].MessageID == "" {
			pl.nextID++
			events[i].MessageID = "msg-" + strconv.Itoa(pl.nextID)
		}
		require.Equal(pl.tb, part, event.Partition(events[i].Tenant, events[i].VisitorKey(), pl.p), "one message, one partition")
	}
	pl.evq[part] = append(pl.evq[part], events)
}

// command queues an API write for a lead on its LEADS partition.
func (pl *pipeline) command(leadID, name string, args any, at time.Time) {
	pl.tb.Helper()
	pl.nextID++
	c, err := lead.Command(testTenant, leadID, name, args, "api-"+strconv.Itoa(pl.nextID), at)
	require.NoError(pl.tb, err)
	part := lead.Partition(testTenant, leadID, pl.q)
	require.Equal(pl.tb, eventlog.LeadsSubject(part), lead.Subject(testTenant, leadID, pl.q))
	pl.ldq[part] = append(pl.ldq[part], []event.Event{c})
}

// settle applies queued messages until no queue holds any.
func (pl *pipeline) settle() {
	pl.tb.Helper()
	for n := 0; pl.step(); n++ {
		if n >= pl.maxMessages {
			pl.tb.Fatalf("the pipeline did not settle after %d messages: %d EVENTS and %d LEADS messages still queued",
				n, queued(pl.evq), queued(pl.ldq))
		}
	}
}

func queued(qs [][][]event.Event) int {
	n := 0
	for _, q := range qs {
		n += len(q)
	}
	return n
}

// step applies the next queued message; it reports false when there is none.
func (pl *pipeline) step() bool {
	pl.tb.Helper()
	pick := func(qs [][][]event.Event) int {
		for i := range qs {
			part := i
			if pl.leadsFirst {
				part = len(qs) - 1 - i
			}
			if len(qs[part]) > 0 {
				return part
			}
		}
		return -1
	}
	ev, ld := pick(pl.evq), pick(pl.ldq)
	switch {
	case ev >= 0 && (ld < 0 || !pl.leadsFirst):
		msg := pl.evq[ev][0]
		pl.evq[ev] = pl.evq[ev][1:]
		pl.apply(eventlog.StreamEvents, ev, pl.visitors[ev], msg)
	case ld >= 0:
		msg := pl.ldq[ld][0]
		pl.ldq[ld] = pl.ldq[ld][1:]
		pl.apply(eventlog.StreamLeads, ld, pl.leads[ld], msg)
	default:
		return false
	}
	return true
}

// apply runs one message through a shard and routes its outputs.
func (pl *pipeline) apply(stream string, part int, proc shard.Processor, msg []event.Event) {
	pl.tb.Helper()
	pl.seq[stream]++
	in := append([]event.Event(nil), msg...) // a processor may change the events
	outs, errs, err := shard.ApplyLocal(context.Background(), pl.st, stream, part, pl.seq[stream], proc, in)
	require.NoError(pl.tb, err, "applying %s/%d seq %d", stream, part, pl.seq[stream])
	for i, e := range errs {
		if e != nil {
			pl.rejected = append(pl.rejected, rejection{stream: stream, partition: part, event: msg[i], err: e})
		}
	}
	for _, o := range outs {
		evs, err := event.DecodeBatch(o.Data)
		require.NoError(pl.tb, err, "output to %s", o.Subject)
		switch {
		case strings.HasPrefix(o.Subject, eventlog.EventsPrefix):
			n := pl.partitionOf(o.Subject, eventlog.EventsPrefix, pl.p)
			pl.evq[n] = append(pl.evq[n], evs)
		case strings.HasPrefix(o.Subject, eventlog.LeadsPrefix):
			n := pl.partitionOf(o.Subject, eventlog.LeadsPrefix, pl.q)
			pl.ldq[n] = append(pl.ldq[n], evs)
		default:
			pl.tb.Fatalf("%s/%d emitted to unexpected subject %s", stream, part, o.Subject)
		}
	}
}

func (pl *pipeline) partitionOf(subject, prefix string, n int) int {
	pl.tb.Helper()
	p, err := strconv.Atoi(strings.TrimPrefix(subject, prefix))
	require.NoError(pl.tb, err, "subject %s", subject)
	require.True(pl.tb, p >= 0 && p < n, "subject %s out of range", subject)
	return p
}

// requireNoRejections fails when a processor refused an event.
func (pl *pipeline) requireNoRejections() {
	pl.tb.Helper()
	if len(pl.rejected) > 0 {
		pl.tb.Fatalf("events refused: %v", pl.rejected)
	}
}

// keys returns the committed keys (and values) under prefix.
func (pl *pipeline) keys(prefix string) map[string]string {
	pl.tb.Helper()
	var lower []byte // nil, not empty: Pebble's invariant checks (-race) index the bound
	if prefix != "" {
		lower = []byte(prefix)
	}
	it, err := pl.st.NewIter(lower, store.PrefixEnd(lower))
	require.NoError(pl.tb, err)
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	require.NoError(pl.tb, it.Close())
	return out
}

// activityPrefix is where a lead's timeline is stored (see keys.go).
func (pl *pipeline) activityPrefix(leadID string) string {
	return fmt.Sprintf("l/%d/a/%s/%s/", lead.Partition(testTenant, leadID, pl.q), testTenant, leadID)
}

// historyPrefix is where a visitor's anonymous history is stored.
func (pl *pipeline) historyPrefix(anon string) string {
	return fmt.Sprintf("v/%d/h/%s/%s\x00", event.Partition(testTenant, anon, pl.p), testTenant, anon)
}

// visitorState is the part of a visitor's stored state the lead tests
// look at.
type visitorState struct {
	lead                string
	histFirst, histNext uint64
}

// readVisitor reads a visitor's state; ok is false when there is none. It
// decodes the visitor package's layout (state.go, version 2) as far as the
// lead: the tests must see what is stored, not what a cache says.
func (pl *pipeline) readVisitor(anon string) (visitorState, bool) {
	pl.tb.Helper()
	v, err := store.Get(pl.st.DB(), visitor.StateKey(event.Partition(testTenant, anon, pl.p), testTenant, anon))
	require.NoError(pl.tb, err)
	if v == nil {
		return visitorState{}, false
	}
	require.Equal(pl.tb, byte(2), v[0], "visitor state version: update readVisitor to the new layout")
	b := v[1:]
	u := func() uint64 {
		x, n := binary.Uvarint(b)
		require.Positive(pl.tb, n, "visitor %s state", anon)
		b = b[n:]
		return x
	}
	var s visitorState
	u() // lastSeen
	u() // sessStart
	u() // sessLast
	u() // pages
	b = b[4:]
	s.histFirst = u()
	s.histNext = s.histFirst + u()
	str := func() string {
		n := u()
		require.LessOrEqual(pl.tb, n, uint64(len(b)), "visitor %s state", anon)
		v := string(b[:n])
		b = b[n:]
		return v
	}
	str() // landing
	s.lead = str()
	return s, true
}

// erasedLead is the visitor shards' mark of an erased person's device.
const erasedLead = "\x00erased"

// timeline reads a lead's whole timeline, newest first, in pages of size.
func (pl *pipeline) timeline(ref string, types []string, size int) ([]lead.Activity, error) {
	pl.tb.Helper()
	var all []lead.Activity
	cursor := ""
	for range 10000 {
		page, next, err := pl.reader.Activities(context.Background(), testTenant, ref, lead.ActivityQuery{Limit: size, Cursor: cursor, Types: types})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
	return nil, errors.New("timeline paging did not end")
}
