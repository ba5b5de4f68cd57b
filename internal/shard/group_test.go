package shard

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/store"
)

// pausedOne pauses one tenant from the start of time.
type pausedOne string

func (p pausedOne) Policy(t string) (bool, int)         { return t == string(p), 1 }
func (p pausedOne) PausedAt(t string, _ time.Time) bool { return t == string(p) }

func groupMsg(seq uint64, tenant string) eventlog.Message {
	e := event.Event{Tenant: tenant, Type: event.TypeTrack, Event: "E", MessageID: fmt.Sprint("m", seq),
		AnonymousID: "a", ReceivedAt: time.Unix(1700000000, 0).UTC(), Timestamp: time.Unix(1700000000, 0).UTC()}
	return eventlog.Message{Seq: seq, Data: event.EncodeBatch([]event.Event{e}), Time: time.Unix(1700000000, 0)}
}

// TestExtent checks how a group is chosen while parking decisions are in
// play: from what the reader holds, never past a message that may start
// parking a tenant or cannot be read, and, after a restart, exactly to the
// group marked before it, waiting for messages the reader does not hold
// yet.
func TestExtent(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	rt, err := New(Config{Fair: true}, Deps{Store: st, Source: nopSource{}, Publisher: nopPublisher{}, Tenants: pausedOne("tn_p")})
	require.NoError(t, err)
	s := &shard{rt: rt, stream: eventlog.StreamEvents, partition: 0, eps: map[string]*episode{}}
	ctx := context.Background()
	feed := func(msgs ...eventlog.Message) *source {
		src := &source{ch: make(chan eventlog.Message, len(msgs)+1), deficit: quantum}
		for _, m := range msgs {
			src.ch <- m
		}
		return src
	}
	seqs := func(g []eventlog.Message) (out []uint64) {
		for _, m := range g {
			out = append(out, m.Seq)
		}
		return out
	}

	// What the reader holds, up to a paused tenant's message, which stays
	// the source's head.
	src := feed(groupMsg(2, "tn_a"), groupMsg(3, "tn_a"), groupMsg(4, "tn_p"), groupMsg(5, "tn_a"))
	g, err := s.extent(ctx, src, groupMsg(1, "tn_a"))
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3}, seqs(g))
	require.Equal(t, uint64(4), src.head.Seq)
	// The paused tenant's message goes alone.
	g, err = s.extent(ctx, src, *src.head)
	require.NoError(t, err)
	require.Equal(t, []uint64{4}, seqs(g))

	// A tenant already parked (an active episode) starts nothing: its
	// messages group.
	s.eps["tn_p"] = &episode{Active: true}
	src = feed(groupMsg(7, "tn_p"), groupMsg(8, "tn_a"))
	g, err = s.extent(ctx, src, groupMsg(6, "tn_p"))
	require.NoError(t, err)
	require.Equal(t, []uint64{6, 7, 8}, seqs(g))

	// A redelivery (after a consumer reset) of a message the group holds
	// is dropped.
	src = feed(groupMsg(16, "tn_a"), groupMsg(15, "tn_a"), groupMsg(17, "tn_a"))
	g, err = s.extent(ctx, src, groupMsg(15, "tn_a"))
	require.NoError(t, err)
	require.Equal(t, []uint64{15, 16, 17}, seqs(g))

	// An unreadable message ends the group before it.
	bad := eventlog.Message{Seq: 10, Data: []byte{event.Version, 5, 1}}
	src = feed(bad)
	g, err = s.extent(ctx, src, groupMsg(9, "tn_a"))
	require.NoError(t, err)
	require.Equal(t, []uint64{9}, seqs(g))
	require.Equal(t, uint64(10), src.head.Seq)

	// A marked group is redone whole, waiting for the reader, and ends at
	// the mark even if more is held; redeliveries are dropped there too.
	s.position.Store(10)
	s.markedTo = 13
	src = feed(groupMsg(12, "tn_a"), groupMsg(11, "tn_a")) // 11 again: redelivered
	ch := src.ch
	go func() {
		time.Sleep(50 * time.Millisecond)
		ch <- groupMsg(13, "tn_p") // past a paused tenant's message too: the first attempt included it
		ch <- groupMsg(14, "tn_a")
	}()
	g, err = s.extent(ctx, src, groupMsg(11, "tn_a"))
	require.NoError(t, err)
	require.Equal(t, []uint64{11, 12, 13}, seqs(g))
	require.Zero(t, s.markedTo, "only the first group after a restart is bound by the mark")

	// mark writes the group's end durably.
	require.NoError(t, s.mark(g))
	to, err := store.GetUint64(st.DB(), store.GroupKey(eventlog.StreamEvents, 0))
	require.NoError(t, err)
	require.Equal(t, uint64(13), to)

	// A marked group whose first attempt stopped at an unreadable message
	// is redone up to it; the message then opens its own group.
	s.position.Store(20)
	s.markedTo, s.groupStop = 25, 23
	src = feed(groupMsg(22, "tn_a"), groupMsg(23, "tn_a"), groupMsg(24, "tn_a"))
	g, err = s.extent(ctx, src, groupMsg(21, "tn_a"))
	require.NoError(t, err)
	require.Equal(t, []uint64{21, 22}, seqs(g))
	require.Equal(t, uint64(23), src.head.Seq)
	g, err = s.extent(ctx, src, *src.head)
	require.NoError(t, err)
	require.Equal(t, []uint64{23}, seqs(g), "stopped at the unreadable message")
}

type nopSource struct{}

func (nopSource) ReadStream(context.Context, string, string, int, eventlog.Start, func(eventlog.Message) error) error {
	return nil
}

func (nopSource) ReadSubject(context.Context, string, string, eventlog.Start, func(eventlog.Message) error) error {
	return nil
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, string, []byte, map[string]string) (uint64, error) {
	return 0, nil
}

// TestReaderAheadIsBounded: the partition's reader holds at most
// maxAheadBytes of messages (and one message over) however large they are.
func TestReaderAheadIsBounded(t *testing.T) {
	sc := newSched()
	defer sc.close()
	var sent atomic.Int64
	big := make([]byte, maxAheadBytes/2)
	src := sc.start(context.Background(), "", func(ctx context.Context, fn func(eventlog.Message) error) error {
		for i := uint64(1); ; i++ {
			if err := fn(eventlog.Message{Seq: i, Data: big}); err != nil {
				return err
			}
			sent.Add(1)
		}
	})
	require.Eventually(t, func() bool { return sent.Load() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, int64(2), sent.Load(), "the reader waits once it holds maxAheadBytes")
	sc.fill()
	require.NotNil(t, src.head)
	require.Eventually(t, func() bool { return sent.Load() == 3 }, 5*time.Second, time.Millisecond)
}
