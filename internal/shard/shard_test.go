package shard_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

const parts = 2

type env struct {
	log *eventlog.Log
	js  jetstream.JetStream
	dir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{StoreDir: t.TempDir(), SyncInterval: time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	nc, err := eventlog.ConnectEmbedded(s, "test")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx := context.Background()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Partitions: parts})
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.*"}, Duplicates: time.Hour})
	require.NoError(t, err)
	return &env{log: l, js: js, dir: t.TempDir()}
}

// counter counts events per tenant and emits one output per event.
// Events named "poison" fail and "panic" panic.
type counter struct{}

func (counter) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	switch e.Event {
	case "poison":
		tx.Set([]byte("count/"+e.Tenant), []byte("must not be kept"))
		return errors.New("poisoned")
	case "panic":
		panic("boom")
	}
	key := []byte("count/" + e.Tenant)
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(v))
	tx.Set(key, []byte(strconv.Itoa(n+1)))
	tx.Emit(shard.Output{Subject: "out." + e.Tenant, Data: []byte(e.MessageID)})
	return nil
}

func batch(tenant string, from, n int, name string) []byte {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Tenant: tenant, Type: event.TypeTrack, Event: name, MessageID: fmt.Sprintf("m%d", from+i),
			AnonymousID: "a", ReceivedAt: time.Unix(1700000000, 0).UTC(), Timestamp: time.Unix(1700000000, 0).UTC()}
	}
	return event.EncodeBatch(evs)
}

// flaky fails every nth publish, after letting it through: the output is
// stored but the shard sees an error, as when an ack is lost.
type flaky struct {
	shard.Publisher
	n, calls atomic.Int64
}

func (f *flaky) Publish(ctx context.Context, subject, id string, data []byte, h map[string]string) (uint64, error) {
	seq, err := f.Publisher.Publish(ctx, subject, id, data, h)
	if err == nil && f.calls.Add(1)%f.n.Load() == 0 {
		return 0, errors.New("ack lost")
	}
	return seq, err
}

type runner struct {
	rt     *shard.Runtime
	st     *store.Store
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, e *env, pub shard.Publisher) *runner {
	t.Helper()
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	rt, err := shard.New(shard.Config{Workers: 1}, shard.Deps{Store: st, Source: e.log, Publisher: pub})
	require.NoError(t, err)
	for p := range parts {
		rt.Add(eventlog.StreamEvents, "vis", p, counter{})
	}
	return runRuntime(rt, st)
}

// runRuntime runs rt, whose store is st, until the runner stops.
func runRuntime(rt *shard.Runtime, st *store.Store) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{rt: rt, st: st, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = rt.Run(ctx) }()
	return r
}

func (r *runner) stop(t *testing.T) {
	r.cancel()
	<-r.done
	require.NoError(t, r.st.Close())
}

func (r *runner) caughtUp(t *testing.T, e *env) {
	t.Helper()
	require.Eventually(t, func() bool {
		sts, err := r.rt.Status(context.Background(), e.log)
		if err != nil {
			return false
		}
		for _, s := range sts {
			if s.Lag != 0 || s.Position != s.Last {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond)
}

func count(t *testing.T, st *store.Store, tenant string) int {
	v, err := store.Get(st.DB(), []byte("count/"+tenant))
	require.NoError(t, err)
	n, _ := strconv.Atoi(string(v))
	return n
}

func streamMsgs(t *testing.T, e *env, stream string) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err == nil {
			out = append(out, *m)
		}
	}
	return out
}

func TestExactlyOnceAcrossRestartsAndLostAcks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgs, per = 40, 25
	appendSome := func(from, to int) {
		for i := from; i < to; i++ {
			_, err := e.log.Append(ctx, i%parts, "in-"+strconv.Itoa(i), batch("tn_a", i*per, per, "E"))
			require.NoError(t, err)
		}
	}
	appendSome(0, msgs/2)
	pub := &flaky{Publisher: e.log}
	pub.n.Store(97) // an "ack lost" now and then: the shard restarts and replays
	r := start(t, e, pub)
	r.caughtUp(t, e)
	r.stop(t) // a restart in the middle of the input
	appendSome(msgs/2, msgs)
	r = start(t, e, pub)
	r.caughtUp(t, e)
	defer r.stop(t)

	require.Equal(t, msgs*per, count(t, r.st, "tn_a"), "every event applied exactly once")
	out := streamMsgs(t, e, "OUT")
	require.Len(t, out, msgs*per, "replayed outputs were deduplicated by their deterministic ids")
	ids := map[string]bool{}
	for _, m := range out {
		id := m.Header.Get(jetstream.MsgIDHeader)
		require.False(t, ids[id], "output id %s twice", id)
		ids[id] = true
		_, _, _, err := shard.ParseOutputID(id)
		require.NoError(t, err)
	}
	require.Greater(t, pub.calls.Load(), int64(msgs*per), "some publishes were replayed after lost acks")
}

func TestPoisonEventsGoToDeadAndThePartitionMoves(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	evs, err := event.DecodeBatch(batch("tn_b", 0, 3, "E"))
	require.NoError(t, err)
	evs[1].Event = "poison"
	mixed := event.EncodeBatch(evs)
	for _, m := range [][]byte{mixed, batch("tn_b", 10, 1, "panic"), {event.Version, 5, 1}, batch("tn_b", 20, 2, "E")} {
		_, err := e.log.Append(ctx, 0, strconv.Itoa(len(m))+string(m[:1]), m)
		require.NoError(t, err)
	}
	r := start(t, e, e.log)
	r.caughtUp(t, e)
	defer r.stop(t)
	require.Equal(t, 4, count(t, r.st, "tn_b"), "the good events around the bad ones were applied; the poison's writes were not")

	dead := streamMsgs(t, e, eventlog.StreamDead)
	require.Len(t, dead, 3)
	reasons := map[string]string{}
	for _, m := range dead {
		reasons[m.Subject] += m.Header.Get(shard.HeaderReason) + ";"
		require.Equal(t, eventlog.StreamEvents, m.Header.Get(shard.HeaderStream))
	}
	require.Contains(t, reasons["dead.tn_b"], "poisoned")
	require.Contains(t, reasons["dead.tn_b"], "processor panicked: boom")
	require.Contains(t, reasons["dead.unknown"], "corrupt log message")
	// The dead event can be read back, for replay.
	for _, m := range dead {
		if m.Subject == "dead.tn_b" {
			evs, err := event.DecodeBatch(m.Data)
			require.NoError(t, err)
			require.Len(t, evs, 1)
		}
	}
}

func TestDuplicateHighWaterMark(t *testing.T) {
	e := newEnv(t)
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	defer st.Close()
	var mu sync.Mutex
	seen := []bool{}
	proc := procFunc(func(_ context.Context, tx *shard.Tx, ev *event.Event) error {
		dup, err := tx.Duplicate(ev.MessageID)
		mu.Lock()
		seen = append(seen, dup)
		mu.Unlock()
		return err
	})
	rt, err := shard.New(shard.Config{}, shard.Deps{Store: st, Source: e.log, Publisher: e.log})
	require.NoError(t, err)
	rt.Add(eventlog.StreamEvents, "lead", 0, proc)
	ids := []string{"vis.3.10.0", "vis.3.10.1", "vis.3.10.0", "vis.3.9.5", "vis.4.1.0", "vis.3.11.0", "vis.3.10.1"}
	evs := make([]event.Event, len(ids))
	for i, id := range ids {
		evs[i] = event.Event{Tenant: "t", Type: event.TypeTrack, Event: "E", MessageID: id, AnonymousID: "a"}
	}
	_, err = e.log.Append(context.Background(), 0, "x", event.EncodeBatch(evs))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(ctx) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == len(ids) }, 10*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	require.Equal(t, []bool{false, false, true, true, false, false, true}, seen)
}

type procFunc func(context.Context, *shard.Tx, *event.Event) error

func (f procFunc) Process(ctx context.Context, tx *shard.Tx, e *event.Event) error {
	return f(ctx, tx, e)
}

func TestParseOutputID(t *testing.T) {
	up, seq, i, err := shard.ParseOutputID(shard.OutputID("vis", 7, 123, 4))
	require.NoError(t, err)
	require.Equal(t, "vis.7", up)
	require.Equal(t, uint64(123), seq)
	require.Equal(t, 4, i)
	for _, bad := range []string{"", "vis.7.1", "vis.x.1.2", "vis.7.-1.2", "a.b.c.d.e"} {
		_, _, _, err := shard.ParseOutputID(bad)
		require.ErrorIs(t, err, shard.ErrBadOutputID, bad)
	}
}

// TestCommitGroups applies a backlog in commit groups, one of them holding
// a message that cannot be read past its first event: the group is redone
// without it, it goes to DEAD whole, and every other event is applied and
// published exactly once.
func TestCommitGroups(t *testing.T) {
	for _, fair := range []bool{false, true} {
		t.Run(fmt.Sprintf("fair=%v", fair), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			const msgs, per, bad = 30, 4, 15
			for i := range msgs {
				data := batch("tn_g", i*per, per, "E")
				if i == bad {
					// A readable first event, then a record whose head reads but
					// whose body is cut short.
					evs, err := event.DecodeBatch(data)
					require.NoError(t, err)
					rec := event.AppendRecord(nil, &evs[1])
					data = event.AppendRecordFrame(event.AppendRecordFrame(event.AppendHeader(nil, 2), event.AppendRecord(nil, &evs[0])), rec[:len(rec)-3])
				}
				_, err := e.log.Append(ctx, 0, "in-"+strconv.Itoa(i), data)
				require.NoError(t, err)
			}
			reg := prometheus.NewRegistry()
			st, err := store.Open(e.dir, nil)
			require.NoError(t, err)
			rt, err := shard.New(shard.Config{Workers: 1, Fair: fair}, shard.Deps{Store: st, Source: e.log, Publisher: e.log, Registerer: reg})
			require.NoError(t, err)
			for p := range parts {
				rt.Add(eventlog.StreamEvents, "vis", p, counter{})
			}
			r := runRuntime(rt, st)
			r.caughtUp(t, e)
			defer r.stop(t)

			require.Equal(t, (msgs-1)*per, count(t, st, "tn_g"), "every readable message applied once, none of the unreadable one")
			out := streamMsgs(t, e, "OUT")
			require.Len(t, out, (msgs-1)*per, "outputs of the redone group were deduplicated")
			dead := streamMsgs(t, e, eventlog.StreamDead)
			require.Len(t, dead, 1)
			require.Equal(t, "dead.unknown", dead[0].Subject)

			var commits, messages float64
			mfs, err := reg.Gather()
			require.NoError(t, err)
			for _, mf := range mfs {
				if mf.GetName() == "contrail_shard_commit_messages" {
					for _, m := range mf.GetMetric() {
						commits += float64(m.GetHistogram().GetSampleCount())
						messages += m.GetHistogram().GetSampleSum()
					}
				}
			}
			require.Greater(t, messages, commits, "a backlog is committed in groups of several messages")
		})
	}
}
