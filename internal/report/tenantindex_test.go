package report

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/store"
)

// tenantIndexRun drives one partition's Rollup the way a visitor shard
// does: one Flush per log message (2×seq), one FlushReplayed per message
// replayed from PARKED (2×origin+1), each committed on its own.
type tenantIndexRun struct {
	t  *testing.T
	st *store.Store
	r  *Rollup
	tx *storeTx
}

func newTenantIndexRun(t *testing.T) *tenantIndexRun {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return &tenantIndexRun{t: t, st: st, r: NewRollup(0, func(string) Policy { return DefaultPolicy() }),
		tx: &storeTx{st: st, batch: st.NewBatch(), msg: map[string][]byte{}}}
}

// message applies a log message of one page view per tenant at time at
// (Unix seconds), replayed or not, and commits it.
func (x *tenantIndexRun) message(seq uint64, replayed bool, at int64, tenants ...string) {
	x.t.Helper()
	for _, tn := range tenants {
		h := Hit{Time: at, Received: at, Visitor: 1, Pageview: true, NewSession: true}
		h.Values[DimPage] = "/"
		require.NoError(x.t, x.r.Add(x.tx, tn, &h))
	}
	if replayed {
		require.NoError(x.t, x.r.FlushReplayed(x.tx, 2*seq+1))
	} else {
		require.NoError(x.t, x.r.Flush(x.tx, 2*seq))
	}
	require.NoError(x.t, x.st.Commit(x.tx.batch))
	x.tx.batch = x.st.NewBatch()
	clear(x.tx.msg)
}

// compared returns the partition's rollup keys that the crash tests
// compare key by key with an uninterrupted run: all but the bucket
// records and marks (r/) and the hit log (rh/), whose keys depend on when
// a parked tenant's events were replayed.
func (x *tenantIndexRun) compared() map[string][]byte {
	x.t.Helper()
	prefix := newKeys(0).prefix
	out := map[string][]byte{}
	require.NoError(x.t, x.tx.Scan([]byte(prefix), []byte(prefix+"\xff"), func(k, v []byte) bool {
		if rest := string(k[len(prefix):]); !strings.HasPrefix(rest, "r/") && !strings.HasPrefix(rest, "rh/") {
			out[string(k)] = bytes.Clone(v)
		}
		return true
	}))
	return out
}

// TestTenantIndexDoesNotDependOnReplayOrder: a tenant's events parked and
// replayed later leave the same tenant index (v/<p>/rt/<tenant>) as the
// uninterrupted run of the log. The index used to be written by the first
// fold of the tenant's hit log, and whether and when a fold happens
// depends on the order: uninterrupted, A's hits logged at +2 s are folded
// by age when B's message at +8 s comes; on the node, A's message was
// parked, and its replay after B's messages logs A's hits under the clock
// of then (+8 s) and never folds them, since a replayed message folds only
// its own tenant and no later message comes. That is the two rt/ keys by
// which TestCrashPauseResume --fair=true failed now and then.
func TestTenantIndexDoesNotDependOnReplayOrder(t *testing.T) {
	const t0 = 1_800_000_000 // a whole hour
	const a, b = "tn_a", "tn_b"

	want := newTenantIndexRun(t) // the log in order
	want.message(1, false, t0, b)
	want.message(2, false, t0+2, a)
	want.message(3, false, t0+6, b) // folds B's hit log by age
	want.message(4, false, t0+8, b) // folds A's

	got := newTenantIndexRun(t) // A paused (or over its share) at message 2
	got.message(1, false, t0, b)
	got.message(2, false, t0+2) // A's event parked
	got.message(3, false, t0+6, b)
	got.message(4, false, t0+8, b)
	got.r.Reset()                 // the node restarts
	got.message(2, true, t0+2, a) // A's parked event replayed

	w, g := want.compared(), got.compared()
	require.Equal(t, slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g)),
		"the rollups' tenant index and clock equal the uninterrupted run's")
	require.Equal(t, w, g)

	// A's hits are still all in its hit log on the node: a restart that
	// lists the partition's tenants to compact them must not start A's
	// marks at the clock's hour (its first fold starts them at its first
	// hit's).
	got.r.Reset()
	got.message(5, false, t0+9, b)
	v, err := got.tx.Get(got.r.keys.marks(a))
	require.NoError(t, err)
	require.Nil(t, v, "no marks for a tenant whose hits were never folded")
}
