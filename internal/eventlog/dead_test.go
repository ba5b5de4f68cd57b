package eventlog_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
)

// deadEvent is a track event of tenant by visitor anon, as a collector
// would have stored it.
func deadEvent(tenant, anon, messageID string) event.Event {
	recv := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return event.Event{
		Tenant: tenant, Type: event.TypeTrack, MessageID: messageID, AnonymousID: anon, Event: "Signed Up",
		Timestamp: recv.Add(-time.Second), ReceivedAt: recv, Properties: json.RawMessage(`{"plan":"pro"}`),
	}
}

// publishDead stores a DEAD message as a visitor shard does (see
// shard.deadOutput): subject dead.<tenant>, the reason and the source in
// headers, a deterministic Nats-Msg-Id.
func publishDead(tb testing.TB, ctx context.Context, l *eventlog.Log, tenant string, partition int, srcSeq uint64, reason string, data []byte) uint64 {
	tb.Helper()
	id := "dead.visitor." + strconv.Itoa(partition) + "." + strconv.FormatUint(srcSeq, 10) + ".0"
	seq, err := l.Publish(ctx, eventlog.DeadPrefix+tenant, id, data, map[string]string{
		shard.HeaderReason:    reason,
		shard.HeaderStream:    eventlog.StreamEvents,
		shard.HeaderPartition: strconv.Itoa(partition),
		shard.HeaderSeq:       strconv.FormatUint(srcSeq, 10),
	})
	require.NoError(tb, err)
	return seq
}

// deadFixture is a log with rejects of two tenants and one unreadable
// log message, in this order: a1, b1, a2, unknown, b2, a3.
type deadFixture struct {
	l       *eventlog.Log
	events  map[uint64]event.Event // by DEAD sequence
	a, b    []uint64               // DEAD sequences of tenant a's and b's rejects
	garbage uint64
}

func newDeadFixture(tb testing.TB, ctx context.Context) *deadFixture {
	tb.Helper()
	n := startNode(tb, eventlog.EmbeddedOptions{})
	f := &deadFixture{l: openLog(tb, ctx, n.nc, 4), events: map[uint64]event.Event{}}
	add := func(tenant string, i int) uint64 {
		e := deadEvent(tenant, "anon-"+tenant+strconv.Itoa(i), "msg-"+tenant+strconv.Itoa(i))
		seq := publishDead(tb, ctx, f.l, tenant, i%4, uint64(100+i), "bad "+tenant+strconv.Itoa(i), event.EncodeBatch([]event.Event{e}))
		f.events[seq] = e
		return seq
	}
	f.a = append(f.a, add("tn_a", 1))
	f.b = append(f.b, add("tn_b", 2))
	f.a = append(f.a, add("tn_a", 3))
	f.garbage = publishDead(tb, ctx, f.l, eventlog.DeadUnknownTenant, 2, 7, "corrupt log message", []byte{0xff, 0x01, 0x02})
	f.b = append(f.b, add("tn_b", 5))
	f.a = append(f.a, add("tn_a", 6))
	return f
}

func seqsOf(ms []eventlog.DeadMessage) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestListDead(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := newDeadFixture(t, ctx)

	all, err := f.l.ListDead(ctx, "", 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{f.a[0], f.b[0], f.a[1], f.garbage, f.b[1], f.a[2]}, seqsOf(all))
	for _, m := range all {
		require.False(t, m.Time.IsZero(), "message %d has no time", m.Seq)
		require.Equal(t, eventlog.StreamEvents, m.Stream)
		require.Equal(t, eventlog.DeadPrefix+m.Tenant, m.Subject)
		if m.Seq == f.garbage {
			require.Equal(t, eventlog.DeadUnknownTenant, m.Tenant)
			require.Equal(t, "corrupt log message", m.Reason)
			require.Equal(t, 2, m.Partition)
			require.Equal(t, uint64(7), m.SourceSeq)
			require.Equal(t, []byte{0xff, 0x01, 0x02}, m.Data)
			continue
		}
		want := f.events[m.Seq]
		require.Equal(t, want.Tenant, m.Tenant)
		i, err := strconv.Atoi(want.MessageID[len("msg-tn_a"):])
		require.NoError(t, err)
		require.Equal(t, "bad "+want.Tenant+strconv.Itoa(i), m.Reason)
		require.Equal(t, i%4, m.Partition)
		require.Equal(t, uint64(100+i), m.SourceSeq)
		got, err := event.DecodeBatch(m.Data)
		require.NoError(t, err)
		require.Equal(t, []event.Event{want}, got)
	}

	cases := []struct {
		name   string
		tenant string
		after  uint64
		limit  int
		want   []uint64
	}{
		{"one tenant", "tn_a", 0, 0, f.a},
		{"other tenant", "tn_b", 0, 100, f.b},
		{"unreadable", eventlog.DeadUnknownTenant, 0, 0, []uint64{f.garbage}},
		{"first page", "tn_a", 0, 2, f.a[:2]},
		{"second page", "tn_a", f.a[1], 2, f.a[2:]},
		{"after the end", "tn_a", f.a[2], 2, nil},
		{"after a message of another tenant", "tn_b", f.b[0] + 1, 10, f.b[1:]},
		{"all, paged", "", f.a[1], 2, []uint64{f.garbage, f.b[1]}},
		{"no such tenant", "tn_nobody", 0, 10, nil},
	}
	for _, c := range cases {
		got, err := f.l.ListDead(ctx, c.tenant, c.after, c.limit)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, seqsOf(got), c.name)
	}

	_, err = f.l.ListDead(ctx, "tn_a.*", 0, 10)
	require.Error(t, err, "a tenant is one subject token")
}

func TestListDeadWithoutHeaders(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 2)
	seq, err := l.Publish(ctx, eventlog.DeadPrefix+"tn_a", "bare", []byte("x"), nil)
	require.NoError(t, err)

	got, err := l.ListDead(ctx, "", 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, seq, got[0].Seq)
	require.Equal(t, "tn_a", got[0].Tenant)
	require.Equal(t, -1, got[0].Partition, "no partition header")
	require.Zero(t, got[0].SourceSeq, "no seq header")
	require.Empty(t, got[0].Reason)
}

func TestReplayDead(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	f := newDeadFixture(t, ctx)

	seq := f.a[1]
	want := f.events[seq]
	p := event.Partition(want.Tenant, want.VisitorKey(), f.l.Partitions())
	n, err := f.l.ReplayDead(ctx, seq)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// The event is on its visitor's partition, with its messageId.
	logged := readAll(t, ctx, f.l)
	require.Len(t, logged, 1)
	require.Equal(t, p, logged[0].Partition)
	require.Equal(t, "replay."+strconv.FormatUint(seq, 10)+"."+strconv.Itoa(p), logged[0].MsgID)
	got, err := event.DecodeBatch(logged[0].Data)
	require.NoError(t, err)
	require.Equal(t, []event.Event{want}, got)

	// It left DEAD, and is replayed once.
	listed, err := f.l.ListDead(ctx, "tn_a", 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{f.a[0], f.a[2]}, seqsOf(listed))
	_, err = f.l.ReplayDead(ctx, seq)
	require.ErrorIs(t, err, eventlog.ErrDeadNotFound)
	_, err = f.l.ReplayDead(ctx, 9999)
	require.ErrorIs(t, err, eventlog.ErrDeadNotFound)

	// A replay whose append was stored but whose delete was lost is
	// retried without storing the events twice.
	seq = f.b[0]
	want = f.events[seq]
	p = event.Partition(want.Tenant, want.VisitorKey(), f.l.Partitions())
	first, err := f.l.Append(ctx, p, "replay."+strconv.FormatUint(seq, 10)+"."+strconv.Itoa(p), event.EncodeBatch([]event.Event{want}))
	require.NoError(t, err)
	n, err = f.l.ReplayDead(ctx, seq)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	last, err := f.l.LastSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, first, last, "the retried replay must not be stored again")

	// The unreadable log message cannot be replayed and stays.
	_, err = f.l.ReplayDead(ctx, f.garbage)
	require.ErrorIs(t, err, eventlog.ErrNotReplayable)
	listed, err = f.l.ListDead(ctx, eventlog.DeadUnknownTenant, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{f.garbage}, seqsOf(listed))
	require.Len(t, readAll(t, ctx, f.l), 2, "a failed replay appends nothing")
}

func TestReplayDeadRefuses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 2)

	corrupt := publishDead(t, ctx, l, "tn_a", 0, 1, "bad", []byte{event.Version, 5, 1})
	e := deadEvent("tn_a", "anon", "m1")
	fromLeads, err := l.Publish(ctx, eventlog.DeadPrefix+"tn_a", "dead.lead.0.1.0", event.EncodeBatch([]event.Event{e}),
		map[string]string{shard.HeaderReason: "bad", shard.HeaderStream: eventlog.StreamLeads})
	require.NoError(t, err)
	empty := publishDead(t, ctx, l, "tn_a", 0, 2, "bad", event.EncodeBatch(nil))

	for _, seq := range []uint64{corrupt, fromLeads, empty} {
		_, err := l.ReplayDead(ctx, seq)
		require.ErrorIs(t, err, eventlog.ErrNotReplayable, "dead message %d", seq)
	}
	listed, err := l.ListDead(ctx, "", 0, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{corrupt, fromLeads, empty}, seqsOf(listed), "refused messages stay in DEAD")
	last, err := l.LastDeadSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, empty, last)
	require.Empty(t, readAll(t, ctx, l))
}
