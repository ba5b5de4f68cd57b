package app_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/shard"
)

func statusOf(t testing.TB, n *testNode) []api.PartitionStatus {
	t.Helper()
	var out struct {
		Partitions []api.PartitionStatus `json:"partitions"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, "GET", "/api/v1/status", nil, &out))
	return out.Partitions
}

func caughtUp(t testing.TB, n *testNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		var out struct {
			Partitions []api.PartitionStatus `json:"partitions"`
		}
		if code := adminDo(t, n, "GET", "/api/v1/status", nil, &out); code != http.StatusOK {
			return false
		}
		for _, p := range out.Partitions {
			if p.Lag != 0 || p.Position != p.Last {
				return false
			}
		}
		return len(out.Partitions) > 0
	}, 20*time.Second, 20*time.Millisecond)
}

// The visitor shards process every accepted event once: duplicates of a
// messageId are dropped, lag drains to zero, and a restart resumes from the
// stored positions without applying anything twice.
func TestVisitorShardsProcessOnceAndDedup(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	id, wk, _ := createTenant(t, n, "proc")
	sts := statusOf(t, n)
	require.Len(t, sts, n.Cfg.Log.Partitions+n.Cfg.Log.LeadPartitions, "one visitor shard per EVENTS partition, one lead shard per LEADS partition")
	for i, st := range sts {
		if i < n.Cfg.Log.Partitions {
			require.Equal(t, shard.Status{Stream: "EVENTS", Partition: i}, shard.Status(st))
		} else {
			require.Equal(t, shard.Status{Stream: "LEADS", Partition: i - n.Cfg.Log.Partitions}, shard.Status(st))
		}
	}

	const visitors, per = 20, 10
	for v := range visitors {
		var evs []any
		for i := range per {
			evs = append(evs, map[string]any{"type": "track", "event": "E", "anonymousId": fmt.Sprintf("v%d", v), "messageId": fmt.Sprintf("m-%d-%d", v, i)})
		}
		// Every event twice: once in this batch, once more in a retry.
		resp := send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, evs...)})
		require.Equal(t, http.StatusOK, resp.Status)
		resp = send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, evs...)})
		require.Equal(t, http.StatusOK, resp.Status)
	}
	caughtUp(t, n)
	processed := metrics(t, n, "contrail_shard_events_processed_total")
	require.Equal(t, float64(2*visitors*per), processed[labels("stream", "EVENTS", "tenant", id)], "every stored event reached a shard once")
	dups := metrics(t, n, "contrail_visitor_duplicates_total")
	require.Equal(t, float64(visitors*per), dups[labels("tenant", id)], "the retried copies were recognised")

	before := statusOf(t, n)
	n.stop(t)
	n2 := startNodeWith(t, n.Cfg)
	caughtUp(t, n2)
	require.Equal(t, before, statusOf(t, n2), "positions survive the restart")
	require.Empty(t, metrics(t, n2, "contrail_shard_events_processed_total"), "nothing was applied again after the restart")

	// New traffic after the restart: a replay of old ids is still a duplicate.
	resp := send(t, n2, collectReq{basicKey: wk, body: batchBody(t, nil,
		map[string]any{"type": "track", "event": "E", "anonymousId": "v0", "messageId": "m-0-0"},
		map[string]any{"type": "track", "event": "E", "anonymousId": "v0", "messageId": "fresh"})})
	require.Equal(t, http.StatusOK, resp.Status)
	caughtUp(t, n2)
	require.Equal(t, 1.0, metrics(t, n2, "contrail_visitor_duplicates_total")[labels("tenant", id)])
}

func TestCollectorOnlyNode(t *testing.T) {
	t.Parallel()
	n := startNode(t, func(c *config.Config) { c.Process.Enabled = false })
	require.Empty(t, statusOf(t, n))
}
