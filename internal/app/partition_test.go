package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
)

// TestVisitorOrderInPartition sends the events of many visitors
// concurrently, each visitor one request at a time, and checks in the log
// that a visitor's events sit in one partition, the one event.Partition
// names, in the order they were acknowledged; that log messages have unique
// Nats-Msg-Ids; and that every acknowledged event is stored exactly once.
func TestVisitorOrderInPartition(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "partitions")
	const visitors, perVisitor = 50, 8
	partitions := n.Node.Log().Partitions()

	type visitor struct {
		key   string   // anonymousId, or userId for visitors without one
		acked []string // messageIds in the order they were acknowledged
	}
	vs := make([]visitor, visitors)
	errs := make(chan error, visitors)
	var wg sync.WaitGroup
	for v := range vs {
		wg.Go(func() {
			anon, user := fmt.Sprintf("visitor-%02d", v), ""
			if v%5 == 4 { // known users sending without an anonymousId
				anon, user = "", fmt.Sprintf("user-%02d", v)
			}
			vs[v].key = anon + user
			for i := range perVisitor {
				id := fmt.Sprintf("%s-%d", vs[v].key, i)
				e := map[string]any{"messageId": id, "properties": map[string]any{"i": i}}
				if anon != "" {
					e["anonymousId"] = anon
				}
				if user != "" {
					e["userId"] = user
				}
				req := collectReq{basicKey: key}
				switch {
				case i%3 == 0:
					e["type"], e["name"] = "page", fmt.Sprintf("Page %d", i)
					req.body, _ = json.Marshal(map[string]any{"batch": []any{e}})
				case i == 2 && anon != "":
					e["userId"] = fmt.Sprintf("identified-%02d", v) // partition stays the anonymousId's
					req.path = "/v1/identify"
					req.body, _ = json.Marshal(e)
				default:
					e["event"] = fmt.Sprintf("Step %d", i)
					req.path = "/v1/track"
					req.body, _ = json.Marshal(e)
				}
				resp, err := trySend(n, req)
				if err == nil && (resp.Status != http.StatusOK || resp.Accepted != 1) {
					err = fmt.Errorf("answer %d: %s", resp.Status, resp.Body)
				}
				if err != nil {
					errs <- fmt.Errorf("visitor %s event %d: %w", vs[v].key, i, err)
					return
				}
				vs[v].acked = append(vs[v].acked, id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	all := readAll(t, n)
	seqOfMsgID := map[string]uint64{}
	for _, l := range all {
		require.NotEmpty(t, l.MsgID, "message %d has a Nats-Msg-Id", l.Seq)
		if seq, ok := seqOfMsgID[l.MsgID]; ok {
			require.Equal(t, seq, l.Seq, "Nats-Msg-Id %s is on two messages", l.MsgID)
		}
		seqOfMsgID[l.MsgID] = l.Seq
	}
	stored := byMessageID(t, all, tenantID) // fails on an event stored twice
	require.Len(t, stored, visitors*perVisitor)

	used := map[int]bool{}
	for _, v := range vs {
		require.Len(t, v.acked, perVisitor)
		want := event.Partition(tenantID, v.key, partitions)
		var prev logged
		for i, id := range v.acked {
			l, ok := stored[id]
			require.True(t, ok, "acknowledged event %s is stored", id)
			require.Equal(t, v.key, l.Event.VisitorKey(), id)
			require.Equal(t, want, l.Partition, "event %s of visitor %s is in partition %d, want %d", id, v.key, l.Partition, want)
			if i > 0 {
				require.Greater(t, l.Seq, prev.Seq, "visitor %s: event %s (seq %d) was acknowledged after %s (seq %d)", v.key, id, l.Seq, prev.Event.MessageID, prev.Seq)
			}
			prev = l
		}
		used[want] = true
	}
	require.Greater(t, len(used), partitions/2, "50 visitors spread over the partitions")
}
