package shard_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// policy is a TenantPolicy the test changes as it goes: it keeps each
// tenant's pauses as [from, to) windows, like the tenant store.
type policy struct {
	mu     sync.Mutex
	pauses map[string][][2]time.Time // to is zero while paused
}

func (p *policy) Policy(t string) (bool, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.pauses[t]
	return len(w) > 0 && w[len(w)-1][1].IsZero(), 1
}

func (p *policy) PausedAt(t string, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.pauses[t] {
		if !at.Before(w[0]) && (w[1].IsZero() || at.Before(w[1])) {
			return true
		}
	}
	return false
}

func (p *policy) set(t string, paused bool) {
	if now, _ := p.Policy(t); now == paused {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pauses == nil {
		p.pauses = map[string][][2]time.Time{}
	}
	if paused {
		p.pauses[t] = append(p.pauses[t], [2]time.Time{time.Now()})
	} else {
		p.pauses[t][len(p.pauses[t])-1][1] = time.Now()
	}
}

// orderly counts each tenant's events in its state and checks that, in
// each partition, they come in the order of their message ids ("m<i>",
// increasing per tenant): an event out of order or applied twice counts
// as bad. It also records the order in which all events were applied, in
// memory.
type orderly struct {
	delay   map[string]time.Duration
	mu      sync.Mutex
	applied []string // "tenant/i"
}

func (o *orderly) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	i, err := strconv.Atoi(strings.TrimPrefix(e.MessageID, "m"))
	if err != nil {
		return err
	}
	if d := o.delay[e.Tenant]; d > 0 {
		time.Sleep(d)
	}
	lastKey := []byte("last/" + e.Tenant + "/" + strconv.Itoa(tx.Partition))
	last, err := tx.Get(lastKey)
	if err != nil {
		return err
	}
	if l, err := strconv.Atoi(string(last)); err == nil && i <= l {
		bad, _ := tx.Get([]byte("bad/" + e.Tenant))
		b, _ := strconv.Atoi(string(bad))
		tx.Set([]byte("bad/"+e.Tenant), []byte(strconv.Itoa(b+1)))
	}
	tx.Set(lastKey, []byte(strconv.Itoa(i)))
	n, _ := tx.Get([]byte("count/" + e.Tenant))
	c, _ := strconv.Atoi(string(n))
	tx.Set([]byte("count/"+e.Tenant), []byte(strconv.Itoa(c+1)))
	o.mu.Lock()
	o.applied = append(o.applied, e.Tenant+"/"+strconv.Itoa(i))
	o.mu.Unlock()
	return nil
}

// lastIndex returns where the last applied event of tenant is in the
// applied order.
func (o *orderly) lastIndex(tenant string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	last := -1
	for i, a := range o.applied {
		if strings.HasPrefix(a, tenant+"/") {
			last = i
		}
	}
	return last
}

func startWith(t *testing.T, e *env, cfg shard.Config, pol shard.TenantPolicy, proc shard.Processor, now func() time.Time) *runner {
	t.Helper()
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	rt, err := shard.New(cfg, shard.Deps{Store: st, Source: e.log, Publisher: e.log, Tenants: pol, Now: now})
	require.NoError(t, err)
	for p := range parts {
		rt.Add(eventlog.StreamEvents, "vis", p, proc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{rt: rt, st: st, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = rt.Run(ctx) }()
	return r
}

// mixed returns one log message with the next na events of tenant a and
// nb of tenant b, a's first; next holds each tenant's next index.
func mixed(next map[string]int, na, nb int) []byte {
	var evs []event.Event
	for _, tn := range []struct {
		name string
		n    int
	}{{"tn_a", na}, {"tn_b", nb}} {
		for range tn.n {
			i := next[tn.name]
			next[tn.name]++
			evs = append(evs, event.Event{Tenant: tn.name, Type: event.TypeTrack, Event: "E", MessageID: "m" + strconv.Itoa(i),
				AnonymousID: "v", ReceivedAt: time.Now().UTC(), Timestamp: time.Now().UTC()})
		}
	}
	return event.EncodeBatch(evs)
}

func bad(t *testing.T, st *store.Store, tenant string) int {
	v, err := store.Get(st.DB(), []byte("bad/"+tenant))
	require.NoError(t, err)
	n, _ := strconv.Atoi(string(v))
	return n
}

func parkedLeft(t *testing.T, e *env, tenant string) int {
	n := 0
	for _, m := range streamMsgs(t, e, eventlog.StreamParked) {
		if strings.HasPrefix(m.Subject, eventlog.ParkedPrefix+tenant+".") {
			n++
		}
	}
	return n
}

// TestPausedTenantIsParkedAndReplayedInOrder: a paused tenant's events are
// set aside while the other tenant's are applied; on resume they are
// applied exactly once, in order, before the tenant's newer events, and
// PARKED is purged. WaitApplied waits for the replay.
func TestPausedTenantIsParkedAndReplayedInOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pol := &policy{}
	pol.set("tn_a", true)
	proc := &orderly{}
	r := startWith(t, e, shard.Config{Workers: 1}, pol, proc, nil)
	defer func() { r.stop(t) }()

	next := map[string]int{}
	// The first message a shard applies after it starts is never parked
	// for a pause (an earlier attempt of it may have applied it): one of
	// the other tenant's per partition first.
	for p := range parts {
		_, err := e.log.Append(ctx, p, "first-"+strconv.Itoa(p), mixed(next, 0, 5))
		require.NoError(t, err)
	}
	r.caughtUp(t, e)
	var lastSeq [parts]uint64
	for i := range 40 {
		seq, err := e.log.Append(ctx, i%parts, "in-"+strconv.Itoa(i), mixed(next, 20, 5))
		require.NoError(t, err)
		lastSeq[i%parts] = seq
	}
	r.caughtUp(t, e)
	require.Equal(t, next["tn_b"], count(t, r.st, "tn_b"), "the other tenant goes on")
	require.Zero(t, count(t, r.st, "tn_a"), "nothing of the paused tenant is applied")
	require.Equal(t, 40, parkedLeft(t, e, "tn_a"), "one parked message per log message")

	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := r.rt.WaitApplied(wctx, eventlog.StreamEvents, 0, "tn_a", lastSeq[0])
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a parked event is not applied")
	require.NoError(t, r.rt.WaitApplied(ctx, eventlog.StreamEvents, 0, "tn_b", lastSeq[0]))

	// Restart while paused: the episode survives.
	r.stop(t)
	r = startWith(t, e, shard.Config{Workers: 1}, pol, proc, nil)
	// Newer events of the tenant arrive while it is still paused, and
	// right after the resume: both come after the parked ones.
	for i := 40; i < 50; i++ {
		_, err := e.log.Append(ctx, i%parts, "in-"+strconv.Itoa(i), mixed(next, 20, 5))
		require.NoError(t, err)
	}
	pol.set("tn_a", false)
	for i := 50; i < 60; i++ {
		seq, err := e.log.Append(ctx, i%parts, "in-"+strconv.Itoa(i), mixed(next, 20, 5))
		require.NoError(t, err)
		lastSeq[i%parts] = seq
	}
	wctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for p := range parts {
		require.NoError(t, r.rt.WaitApplied(wctx, eventlog.StreamEvents, p, "tn_a", lastSeq[p]))
	}
	require.Eventually(t, func() bool { return count(t, r.st, "tn_a") == next["tn_a"] }, 20*time.Second, 10*time.Millisecond)
	require.Zero(t, bad(t, r.st, "tn_a"), "in order, each once")
	require.Zero(t, bad(t, r.st, "tn_b"))
	require.Equal(t, next["tn_b"], count(t, r.st, "tn_b"))
	require.Eventually(t, func() bool { return parkedLeft(t, e, "tn_a") == 0 }, 10*time.Second, 20*time.Millisecond,
		"replayed parked events are purged")

	// Back to normal: new events are applied directly.
	_, err = e.log.Append(ctx, 0, "in-last", mixed(next, 3, 0))
	require.NoError(t, err)
	r.caughtUp(t, e)
	require.Eventually(t, func() bool { return count(t, r.st, "tn_a") == next["tn_a"] }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, parkedLeft(t, e, "tn_a"))
}

// TestReplayExactlyOnceAcrossRestarts: the runtime is stopped again and
// again while a resumed tenant's parked events replay; every event is
// still applied once, in order.
func TestReplayExactlyOnceAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pol := &policy{}
	pol.set("tn_a", true)
	proc := &orderly{delay: map[string]time.Duration{"tn_a": 200 * time.Microsecond}}
	r := startWith(t, e, shard.Config{Workers: 1}, pol, proc, nil)
	next := map[string]int{}
	for i := range 60 {
		_, err := e.log.Append(ctx, i%parts, "in-"+strconv.Itoa(i), mixed(next, 50, 2))
		require.NoError(t, err)
	}
	r.caughtUp(t, e)
	pol.set("tn_a", false)
	for round := range 4 {
		time.Sleep(50 * time.Millisecond)
		r.stop(t)
		_, err := e.log.Append(ctx, round%parts, "late-"+strconv.Itoa(round), mixed(next, 10, 1))
		require.NoError(t, err)
		r = startWith(t, e, shard.Config{Workers: 1}, pol, proc, nil)
	}
	defer func() { r.stop(t) }()
	require.Eventually(t, func() bool { return count(t, r.st, "tn_a") >= next["tn_a"] }, 30*time.Second, 10*time.Millisecond)
	r.caughtUp(t, e)
	require.Equal(t, next["tn_a"], count(t, r.st, "tn_a"), "exactly once")
	require.Zero(t, bad(t, r.st, "tn_a"), "in order")
	require.Equal(t, next["tn_b"], count(t, r.st, "tn_b"))
	require.Zero(t, bad(t, r.st, "tn_b"))
}

// TestOverflowParksTheHeavyTenant: in a shard that is behind, the tenant
// sending far more than its share is parked and drained by deficit round
// robin, so the light tenant's later events are applied before the heavy
// tenant's backlog is; without fair scheduling (FIFO) they wait behind it.
// Either way every event is applied once and in order.
func TestOverflowParksTheHeavyTenant(t *testing.T) {
	for _, fair := range []bool{true, false} {
		t.Run(fmt.Sprintf("fair=%v", fair), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			next := map[string]int{}
			// The backlog: both tenants, then a long run of the heavy
			// one, then the light one's last events.
			for i := range 5 {
				_, err := e.log.Append(ctx, 0, "seed-"+strconv.Itoa(i), mixed(next, 90, 10))
				require.NoError(t, err)
			}
			for i := range 150 {
				_, err := e.log.Append(ctx, 0, "heavy-"+strconv.Itoa(i), mixed(next, 100, 0))
				require.NoError(t, err)
			}
			_, err := e.log.Append(ctx, 0, "light", mixed(next, 0, 10))
			require.NoError(t, err)

			proc := &orderly{}
			// Every message is a minute old: the shard is behind.
			late := func() time.Time { return time.Now().Add(time.Minute) }
			r := startWith(t, e, shard.Config{Workers: 1, Fair: fair, FairLag: time.Second}, &policy{}, proc, late)
			defer r.stop(t)
			require.Eventually(t, func() bool {
				return count(t, r.st, "tn_a") == next["tn_a"] && count(t, r.st, "tn_b") == next["tn_b"]
			}, 30*time.Second, 10*time.Millisecond)
			require.Zero(t, bad(t, r.st, "tn_a"))
			require.Zero(t, bad(t, r.st, "tn_b"))
			if fair {
				require.Less(t, proc.lastIndex("tn_b"), proc.lastIndex("tn_a"),
					"the light tenant's last events do not wait for the heavy tenant's backlog")
				require.Eventually(t, func() bool { return parkedLeft(t, e, "tn_a") == 0 }, 10*time.Second, 20*time.Millisecond)
			} else {
				require.Greater(t, proc.lastIndex("tn_b"), proc.lastIndex("tn_a"), "FIFO: the light tenant waits")
				require.Zero(t, parkedLeft(t, e, "tn_a"))
			}
			require.Zero(t, parkedLeft(t, e, "tn_b"), "the light tenant is never parked")
		})
	}
}

// TestProcessingPause: PauseProcessing stops the shards before their next
// message; the log keeps what arrives; resuming applies it.
func TestProcessingPause(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := start(t, e, e.log)
	defer r.stop(t)
	r.rt.PauseProcessing(true)
	require.True(t, r.rt.ProcessingPaused())
	for i := range 10 {
		_, err := e.log.Append(ctx, i%parts, "p-"+strconv.Itoa(i), batch("tn_c", i*5, 5, "E"))
		require.NoError(t, err)
	}
	time.Sleep(100 * time.Millisecond)
	require.Zero(t, count(t, r.st, "tn_c"), "nothing is applied while processing is paused")
	r.rt.PauseProcessing(false)
	r.caughtUp(t, e)
	require.Equal(t, 50, count(t, r.st, "tn_c"))
}
