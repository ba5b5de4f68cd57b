package shard_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// cachingCounter counts like counter but keeps the counts in memory too,
// as the visitor processor keeps visitor records: correct only if the
// shard calls Reset whenever it restarts from its stored position.
type cachingCounter struct {
	cache  map[string]int
	resets atomic.Int64
}

func (c *cachingCounter) Reset() {
	clear(c.cache)
	c.resets.Add(1)
}

func (c *cachingCounter) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	key := "count/" + e.Tenant
	n, ok := c.cache[key]
	if !ok {
		v, err := tx.Get([]byte(key))
		if err != nil {
			return err
		}
		n, _ = strconv.Atoi(string(v))
	}
	tx.Set([]byte(key), []byte(strconv.Itoa(n+1)))
	tx.Emit(shard.Output{Subject: "out." + e.Tenant, Data: []byte(e.MessageID)})
	c.cache[key] = n + 1
	return nil
}

// A processor's cache holds effects of messages that did not commit when
// an output publish fails; the restart's Reset must drop them, or events
// would be counted twice.
func TestResetDropsCachesOnRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgs, per = 40, 25
	for i := range msgs {
		_, err := e.log.Append(ctx, 0, "in-"+strconv.Itoa(i), batch("tn_c", i*per, per, "E"))
		require.NoError(t, err)
	}
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	pub := &flaky{Publisher: e.log}
	pub.n.Store(97)
	rt, err := shard.New(shard.Config{Workers: 1}, shard.Deps{Store: st, Source: e.log, Publisher: pub})
	require.NoError(t, err)
	proc := &cachingCounter{cache: map[string]int{}}
	rt.Add(eventlog.StreamEvents, "vis", 0, proc)
	r := runRuntime(rt, st)
	r.caughtUp(t, e)
	defer r.stop(t)

	require.Equal(t, msgs*per, count(t, st, "tn_c"), "every event counted once despite the cache")
	require.Greater(t, proc.resets.Load(), int64(1), "lost acks restarted the shard, which reset the processor")
}
