// Package reporttest runs visitor shards over events without a log, so that
// tests can build real rollups and query them.
package reporttest

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
	"github.com/contrailhq/contrail/internal/visitor"
)

// Pipeline is the visitor shards of a few partitions on a real Pebble
// store, fed through shard.ApplyLocal.
type Pipeline struct {
	t       testing.TB
	Store   *store.Store
	tenants visitor.Tenants
	procs   []*visitor.Processor
	seqs    []uint64
}

// New returns a pipeline of parts partitions; tenants gives their settings.
func New(t testing.TB, parts int, tenants visitor.Tenants) *Pipeline {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	pl := &Pipeline{t: t, Store: st, tenants: tenants, seqs: make([]uint64, parts)}
	pl.Restart()
	return pl
}

// Restart replaces the processors by fresh ones, as a process restart does.
func (pl *Pipeline) Restart() {
	cfg := visitor.DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = len(pl.seqs), 2
	cfg.Tenants = pl.tenants
	m := visitor.NewMetrics(prometheus.NewRegistry())
	pl.procs = make([]*visitor.Processor, len(pl.seqs))
	for p := range pl.procs {
		proc, err := visitor.New(cfg, p, m)
		require.NoError(pl.t, err)
		pl.procs[p] = proc
	}
}

// Run partitions events by visitor and applies them, perMsg per log
// message. The events get the enrichment the processors gave them.
func (pl *Pipeline) Run(events []event.Event, perMsg int) {
	byPart := make([][]int, len(pl.seqs))
	for i, e := range events {
		p := event.Partition(e.Tenant, e.VisitorKey(), len(pl.seqs))
		byPart[p] = append(byPart[p], i)
	}
	for p, idx := range byPart {
		for len(idx) > 0 {
			n := min(perMsg, len(idx))
			msg := make([]event.Event, n)
			for i := range msg {
				msg[i] = events[idx[i]]
			}
			pl.seqs[p]++
			_, errs, err := shard.ApplyLocal(context.Background(), pl.Store, eventlog.StreamEvents, p, pl.seqs[p], pl.procs[p], msg)
			require.NoError(pl.t, err)
			for i, e := range errs {
				require.NoError(pl.t, e)
				events[idx[i]].Enrichment = msg[i].Enrichment
			}
			idx = idx[n:]
		}
	}
}

// Querier queries the pipeline's rollups with each tenant's policy.
func (pl *Pipeline) Querier() *report.Querier { return pl.QuerierCache(report.DefaultCacheBytes) }

// QuerierCache is Querier with a cache of merged buckets of cacheBytes (0:
// none).
func (pl *Pipeline) QuerierCache(cacheBytes int64) *report.Querier {
	return report.NewQuerier(pl.Store, len(pl.seqs), func(id string) report.Policy {
		var set tenant.Settings
		if t, ok := pl.tenants.ByID(id); ok {
			set = t.Settings
		}
		return visitor.PolicyOf(set)
	}, cacheBytes)
}
