package store_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/store"
)

// TestCollector reads the store's LSM figures after writes and a flush:
// the WAL and flush counters count what was written, and L0 holds a table.
func TestCollector(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	for i := range 100 {
		b := st.NewBatch()
		require.NoError(t, b.Set([]byte{byte(i)}, make([]byte, 1000), nil))
		require.NoError(t, st.Commit(b))
	}
	require.NoError(t, st.Flush())

	reg := prometheus.NewRegistry()
	reg.MustRegister(store.NewCollector(st))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	require.GreaterOrEqual(t, got["contrail_store_wal_written_bytes_total"], 100_000.0)
	require.Greater(t, got["contrail_store_flushed_bytes_total"], 0.0)
	require.Equal(t, 1.0, got["contrail_store_level_tables/0"])
	require.Greater(t, got["contrail_store_level_bytes/0"], 0.0)
	require.Contains(t, got, "contrail_store_compactions_total/move")
}
