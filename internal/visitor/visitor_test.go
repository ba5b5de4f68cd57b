package visitor_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/visitor"
)

func ev(tenant, mid string, at time.Time) event.Event {
	return event.Event{Tenant: tenant, Type: event.TypeTrack, Event: "E", MessageID: mid, AnonymousID: "a", ReceivedAt: at, Timestamp: at}
}

func processed(t *testing.T, st *store.Store, tenant string) int {
	v, err := store.Get(st.DB(), visitor.ProcessedKey(0, tenant))
	require.NoError(t, err)
	n, _ := strconv.Atoi(string(v))
	return n
}

func TestDedupWindow(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	reg := prometheus.NewRegistry()
	m := visitor.NewMetrics(reg)
	p, err := visitor.New(visitor.DefaultConfig(), 0, m)
	require.NoError(t, err)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)
	seq := uint64(0)
	apply := func(evs ...event.Event) {
		t.Helper()
		seq++
		_, errs, err := shard.ApplyLocal(ctx, st, "EVENTS", 0, seq, p, evs)
		require.NoError(t, err)
		for _, e := range errs {
			require.NoError(t, e)
		}
	}
	// Duplicates in one message, across messages, across midnight, and per tenant.
	apply(ev("a", "m1", t0), ev("a", "m1", t0), ev("b", "m1", t0))
	apply(ev("a", "m1", t0.Add(2*time.Hour)), ev("a", "m2", t0.Add(2*time.Hour)))
	require.Equal(t, 2, processed(t, st, "a"))
	require.Equal(t, 1, processed(t, st, "b"))
	require.Equal(t, 2.0, testutil.ToFloat64(m.Duplicates("a")))

	// 23 h after first sight: still within the window.
	apply(ev("a", "m1", t0.Add(23*time.Hour)))
	require.Equal(t, 2, processed(t, st, "a"))
	// Three days later the bucket has expired: the id is new again.
	apply(ev("a", "m1", t0.Add(72*time.Hour)))
	require.Equal(t, 3, processed(t, st, "a"))
	// And the expired buckets are gone from the store.
	it, err := st.NewIter([]byte("v/0/dd/"), []byte("v/0/dd0"))
	require.NoError(t, err)
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	require.Equal(t, 1, n, "only the newest day's key remains")
}

func TestDedupWindowMustCoverADay(t *testing.T) {
	_, err := visitor.New(visitor.Config{DedupWindow: time.Hour}, 0, nil)
	require.Error(t, err)
}
