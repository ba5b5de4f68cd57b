package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/eventlog"
)

// node is an embedded server with an in-process connection.
type node struct {
	ns *server.Server
	nc *nats.Conn
}

// startNode starts an embedded server on dir and connects to it. Cleanup
// closes both, unless the test already stopped them.
func startNode(tb testing.TB, o eventlog.EmbeddedOptions) *node {
	tb.Helper()
	if o.StoreDir == "" {
		o.StoreDir = tb.TempDir()
	}
	if o.ServerName == "" {
		o.ServerName = "eventlog-test"
	}
	ns, err := eventlog.StartEmbedded(o)
	require.NoError(tb, err)
	nc, err := eventlog.ConnectEmbedded(ns, "eventlog-test")
	if err != nil {
		ns.Shutdown()
		require.NoError(tb, err)
	}
	n := &node{ns: ns, nc: nc}
	tb.Cleanup(n.stop)
	return n
}

// stop closes the connection and shuts the server down; it is idempotent.
func (n *node) stop() {
	n.nc.Close()
	n.ns.Shutdown()
	n.ns.WaitForShutdown()
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func openLog(tb testing.TB, ctx context.Context, nc *nats.Conn, partitions int) *eventlog.Log {
	tb.Helper()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Partitions: partitions, DuplicateWindow: time.Minute})
	require.NoError(tb, err)
	return l
}

// errStop ends a Read from inside its callback.
var errStop = errors.New("stop reading")

// readUntil reads partition from start until it has seen a message with
// sequence last, and returns everything it saw.
func readUntil(tb testing.TB, ctx context.Context, l *eventlog.Log, partition int, start eventlog.Start, last uint64) []eventlog.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []eventlog.Message
	err := l.Read(ctx, partition, start, func(m eventlog.Message) error {
		got = append(got, m)
		if m.Seq >= last {
			return errStop
		}
		return nil
	})
	require.ErrorIs(tb, err, errStop, "read ended before sequence %d; got %d messages", last, len(got))
	return got
}

func readAll(tb testing.TB, ctx context.Context, l *eventlog.Log) []eventlog.Message {
	tb.Helper()
	var got []eventlog.Message
	require.NoError(tb, l.ReadAll(ctx, func(m eventlog.Message) error {
		got = append(got, m)
		return nil
	}))
	return got
}

func TestOpenIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l1 := openLog(t, ctx, n.nc, 4)
	seq, err := l1.Append(ctx, 2, "m1", []byte("one"))
	require.NoError(t, err)

	l2 := openLog(t, ctx, n.nc, 4)
	require.Equal(t, 4, l2.Partitions())
	require.NoError(t, l2.Ready(ctx))
	last, err := l2.LastSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, seq, last, "a second Open must keep the stored messages")
}

func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	// Nodes of a cluster start together: all of them must find or create
	// the streams without error.
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := eventlog.Open(ctx, n.nc, eventlog.Options{Partitions: 4, DuplicateWindow: time.Minute})
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

func TestOpenRejectsOtherPartitionCount(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	openLog(t, ctx, n.nc, 4)

	for _, p := range []int{1, 3, 8} {
		_, err := eventlog.Open(ctx, n.nc, eventlog.Options{Partitions: p})
		require.ErrorIs(t, err, eventlog.ErrPartitions, "partitions %d", p)
	}
	_, err := eventlog.Open(ctx, n.nc, eventlog.Options{Partitions: 0})
	require.Error(t, err)
	require.NotErrorIs(t, err, eventlog.ErrPartitions)
}

func TestAppendAndReadPartition(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 3)

	// Interleave appends over the three partitions.
	want := map[int][]eventlog.Message{}
	var prev uint64
	for i := range 12 {
		p := i % 3
		id := fmt.Sprintf("msg-%d", i)
		data := []byte(fmt.Sprintf("payload %d of partition %d", i, p))
		seq, err := l.Append(ctx, p, id, data)
		require.NoError(t, err)
		require.Greater(t, seq, prev, "sequences must increase")
		prev = seq
		want[p] = append(want[p], eventlog.Message{Partition: p, Seq: seq, MsgID: id, Data: data})
	}

	strip := func(ms []eventlog.Message) []eventlog.Message {
		out := make([]eventlog.Message, len(ms))
		for i, m := range ms {
			require.False(t, m.Time.IsZero(), "message %d has no time", m.Seq)
			// A partition read's Pending is its lag: the messages of the
			// partition stored after this one.
			require.Equal(t, uint64(len(ms)-1-i), m.Pending, "pending after message %d", m.Seq)
			require.Equal(t, eventlog.EventsSubject(m.Partition), m.Subject)
			require.Equal(t, m.MsgID, m.Headers.Get("Nats-Msg-Id"))
			m.Time, m.Pending, m.Subject, m.Headers = time.Time{}, 0, "", nil
			out[i] = m
		}
		return out
	}
	for p := range 3 {
		ms := want[p]
		// From the start of the partition, and from its second message.
		got := readUntil(t, ctx, l, p, eventlog.Start{}, ms[len(ms)-1].Seq)
		require.Equal(t, ms, strip(got), "partition %d from the start", p)
		got = readUntil(t, ctx, l, p, eventlog.Start{Seq: ms[1].Seq}, ms[len(ms)-1].Seq)
		require.Equal(t, ms[1:], strip(got), "partition %d from seq %d", p, ms[1].Seq)
	}

	_, err := l.Append(ctx, 3, "out", []byte("x"))
	require.Error(t, err, "partition out of range")
	_, err = l.Append(ctx, -1, "out", []byte("x"))
	require.Error(t, err, "negative partition")
}

func TestAppendDeduplicatesByMsgID(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 2)

	s1, err := l.Append(ctx, 0, "same-id", []byte("first"))
	require.NoError(t, err)
	s2, err := l.Append(ctx, 0, "same-id", []byte("retry"))
	require.NoError(t, err)
	require.Equal(t, s1, s2, "a duplicate append must answer with the stored message's sequence")
	s3, err := l.Append(ctx, 1, "other-id", []byte("other"))
	require.NoError(t, err)
	require.Greater(t, s3, s1)

	got := readAll(t, ctx, l)
	require.Len(t, got, 2)
	require.Equal(t, "same-id", got[0].MsgID)
	require.Equal(t, []byte("first"), got[0].Data, "the first append wins")
	require.Equal(t, "other-id", got[1].MsgID)
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 4)

	require.Empty(t, readAll(t, ctx, l), "an empty log reads as nothing and returns")

	var seqs []uint64
	for i := range 20 {
		seq, err := l.Append(ctx, i%4, fmt.Sprintf("m%d", i), []byte{byte(i)})
		require.NoError(t, err)
		seqs = append(seqs, seq)
	}
	got := readAll(t, ctx, l)
	require.Len(t, got, 20)
	for i, m := range got {
		require.Equal(t, seqs[i], m.Seq)
		require.Equal(t, i%4, m.Partition)
		require.Equal(t, fmt.Sprintf("m%d", i), m.MsgID)
		require.Equal(t, []byte{byte(i)}, m.Data)
	}
}

func TestReadNewSeesOnlyLaterMessages(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 2)

	var before uint64
	for i := range 5 {
		seq, err := l.Append(ctx, i%2, fmt.Sprintf("old-%d", i), []byte("old"))
		require.NoError(t, err)
		before = seq
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu  sync.Mutex
		got []eventlog.Message
	)
	readErr := make(chan error, 1)
	go func() {
		readErr <- l.Read(rctx, -1, eventlog.Start{New: true}, func(m eventlog.Message) error {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
			return nil
		})
	}()
	// The reader starts at some unknown moment: keep appending markers until
	// it has seen one.
	seen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; seen() == 0; i++ {
		require.True(t, time.Now().Before(deadline), "the reader saw no new message")
		_, err := l.Append(ctx, i%2, fmt.Sprintf("new-%d", i), []byte("new"))
		require.NoError(t, err)
	}
	cancel()
	require.ErrorIs(t, <-readErr, context.Canceled)

	mu.Lock()
	defer mu.Unlock()
	for _, m := range got {
		require.Greater(t, m.Seq, before, "message %s was stored before the read began", m.MsgID)
		require.Equal(t, []byte("new"), m.Data)
	}
}

func TestMessagesSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	dir := t.TempDir()
	n := startNode(t, eventlog.EmbeddedOptions{StoreDir: dir})
	l := openLog(t, ctx, n.nc, 4)
	var want []eventlog.Message
	for i := range 10 {
		id, data := fmt.Sprintf("m%d", i), []byte(fmt.Sprintf("data %d", i))
		seq, err := l.Append(ctx, i%4, id, data)
		require.NoError(t, err)
		want = append(want, eventlog.Message{Partition: i % 4, Seq: seq, MsgID: id, Data: data})
	}
	n.stop()

	n2 := startNode(t, eventlog.EmbeddedOptions{StoreDir: dir})
	l2 := openLog(t, ctx, n2.nc, 4)
	got := readAll(t, ctx, l2)
	require.Len(t, got, len(want))
	for i := range got {
		got[i].Time, got[i].Pending, got[i].Subject, got[i].Headers = time.Time{}, 0, "", nil
	}
	require.Equal(t, want, got)

	// The restarted log goes on from where it stopped, and still
	// deduplicates an id appended before the restart.
	seq, err := l2.Append(ctx, 0, "m0", []byte("again"))
	require.NoError(t, err)
	require.Equal(t, want[0].Seq, seq)
	seq, err = l2.Append(ctx, 0, "after", []byte("after"))
	require.NoError(t, err)
	require.Equal(t, want[len(want)-1].Seq+1, seq)
}

func TestAppendOnStoppedServerFailsFast(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	n := startNode(t, eventlog.EmbeddedOptions{})
	l := openLog(t, ctx, n.nc, 2)
	_, err := l.Append(ctx, 0, "before", []byte("x"))
	require.NoError(t, err)

	n.ns.Shutdown()
	n.ns.WaitForShutdown()

	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = l.Append(actx, 0, "after", []byte("x"))
	took := time.Since(start)
	require.Error(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, took, 3*time.Second, "Append must give up when its context ends")

	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	require.Error(t, l.Ready(rctx), "a log whose server is gone is not ready")
}
