package shard_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

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

type knownTenants map[string]*tenant.Tenant

func (k knownTenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := k[id]; return t, ok }

// TestParkedPageviewsAreReported runs the real visitor processor: a paused
// tenant's page views, replayed after another tenant's messages folded its
// rollup hit log (by age of the partition's clock), all count in its web
// report.
func TestParkedPageviewsAreReported(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := store.Open(e.dir, nil)
	require.NoError(t, err)
	defer st.Close()
	cfg := visitor.DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = parts, parts
	cfg.Tenants = knownTenants{"tn_a": {ID: "tn_a"}, "tn_b": {ID: "tn_b"}}
	pol := &policy{}
	rt, err := shard.New(shard.Config{Workers: 1}, shard.Deps{Store: st, Source: e.log, Publisher: e.log, Tenants: pol})
	require.NoError(t, err)
	vm := visitor.NewMetrics(prometheus.NewRegistry())
	for p := range parts {
		proc, err := visitor.New(cfg, p, vm)
		require.NoError(t, err)
		rt.Add(eventlog.StreamEvents, "vis", p, proc)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = rt.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	n := 0
	pageAt := func(tn string, at time.Duration) []byte {
		n++
		props, _ := json.Marshal(map[string]any{"path": "/p", "url": "https://x.example/p"})
		return event.EncodeBatch([]event.Event{{Tenant: tn, Type: event.TypePage, MessageID: "m" + strconv.Itoa(n),
			AnonymousID: "v-" + tn, ReceivedAt: t0.Add(at), Timestamp: t0.Add(at), Properties: props}})
	}
	put := func(data []byte) uint64 {
		seq, err := e.log.Append(ctx, 0, "x"+strconv.Itoa(n), data)
		require.NoError(t, err)
		return seq
	}
	wait := func(tn string, seq uint64) {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		require.NoError(t, rt.WaitApplied(wctx, eventlog.StreamEvents, 0, tn, seq))
	}
	wait("tn_a", put(pageAt("tn_a", 0))) // logged in A's hit log, not folded yet
	pol.set("tn_a", true)
	for i := range 5 {
		put(pageAt("tn_a", time.Duration(i+1)*time.Second))
	}
	// B's message, 10 s later by the partition's clock, folds A's hit log.
	wait("tn_b", put(pageAt("tn_b", 10*time.Second)))
	pol.set("tn_a", false)
	last := put(pageAt("tn_a", 11*time.Second))
	wait("tn_a", last)

	q := report.NewQuerier(st, parts, func(string) report.Policy { return visitor.PolicyOf(tenant.Settings{}) }, report.DefaultCacheBytes)
	sum, err := q.Summary(ctx, "tn_a", report.Range{From: t0.Add(-time.Minute), To: t0.Add(time.Minute)}, nil)
	require.NoError(t, err)
	require.EqualValues(t, 7, sum.Pageviews, "every page view of the paused tenant counts once")
}
