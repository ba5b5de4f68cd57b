package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
)

// reject stores data in DEAD as a visitor shard does when it rejects an
// event read at srcSeq of partition 2.
func reject(t *testing.T, l *eventlog.Log, tenant string, srcSeq uint64, reason string, data []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := l.Publish(ctx, eventlog.DeadPrefix+tenant, "dead.visitor.2."+strconv.FormatUint(srcSeq, 10)+".0", data,
		map[string]string{
			shard.HeaderReason: reason, shard.HeaderStream: eventlog.StreamEvents,
			shard.HeaderPartition: "2", shard.HeaderSeq: strconv.FormatUint(srcSeq, 10),
		})
	require.NoError(t, err)
	return seq
}

func TestCLIDead(t *testing.T) {
	n := startNode(t)
	l := n.log
	var acme struct {
		ID string `json:"id"`
	}
	out := n.mustCLI(t, "tenant", "create", "acme")
	require.NoError(t, json.Unmarshal([]byte(out), &acme), "output: %s", out)

	track := func(msgID string) []byte {
		now := time.Now().UTC()
		return event.EncodeBatch([]event.Event{{
			Tenant: acme.ID, Type: event.TypeTrack, MessageID: msgID, AnonymousID: "anon-" + msgID,
			Event: "Clicked", Timestamp: now, ReceivedAt: now,
		}})
	}
	first := reject(t, l, acme.ID, 41, "processor panicked:\nboom", track("dead-1"))
	garbage := reject(t, l, eventlog.DeadUnknownTenant, 42, "corrupt log message", []byte("garbage"))
	second := reject(t, l, acme.ID, 43, "bad traits", track("dead-2"))

	// The table: one line per message, with its source and first event.
	out = n.mustCLI(t, "dead", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1+3, "header and three messages:\n%s", out)
	require.Contains(t, lines[0], "REASON")
	require.Contains(t, lines[1], strconv.FormatUint(first, 10))
	require.Contains(t, lines[1], acme.ID)
	require.Contains(t, lines[1], "processor panicked: boom", "a reason stays on one line")
	require.Contains(t, lines[1], "EVENTS/2#41")
	require.Contains(t, lines[1], "track dead-1")
	require.Contains(t, lines[2], "unreadable:")
	require.Contains(t, lines[3], "dead-2")

	// Pages, and NDJSON for tools.
	out = n.mustCLI(t, "dead", "list", "--tenant", "acme", "--limit", "1")
	require.Contains(t, out, "dead-1")
	require.NotContains(t, out, "dead-2")
	require.Contains(t, out, "--after "+strconv.FormatUint(first, 10))
	out = n.mustCLI(t, "dead", "list", "--tenant", "acme", "--after", strconv.FormatUint(first, 10), "--json")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, "output: %s", out)
	var m struct {
		Seq       uint64 `json:"seq"`
		Tenant    string `json:"tenant"`
		Reason    string `json:"reason"`
		Partition int    `json:"partition"`
		SourceSeq uint64 `json:"source_seq"`
		Events    []struct {
			MessageID string `json:"messageId"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m), "line: %s", lines[0])
	require.Equal(t, second, m.Seq)
	require.Equal(t, acme.ID, m.Tenant)
	require.Equal(t, "bad traits", m.Reason)
	require.Equal(t, 2, m.Partition)
	require.Equal(t, uint64(43), m.SourceSeq)
	require.Len(t, m.Events, 1)
	require.Equal(t, "dead-2", m.Events[0].MessageID)

	// Replay by sequence; the unreadable message is refused and kept.
	out = n.mustCLI(t, "dead", "replay", "--seq", strconv.FormatUint(first, 10))
	require.Contains(t, out, "replayed 1 message (1 event)")
	out, _, err := cli(t, "dead", "replay", "--seq", strconv.FormatUint(garbage, 10), "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "1 dead message not replayed")
	require.Contains(t, out, "replayed 0 messages")
	require.Contains(t, out, "not_replayable")

	// Replay a tenant's rest.
	out = n.mustCLI(t, "dead", "replay", "--tenant", "acme", "--all")
	require.Contains(t, out, "replayed 1 message (1 event)")
	require.Contains(t, n.mustCLI(t, "dead", "list", "--tenant", "acme"), "no dead events")
	out = n.mustCLI(t, "dead", "list")
	require.Contains(t, out, strconv.FormatUint(garbage, 10))
	require.NotContains(t, out, "dead-")

	// Both events are back in EVENTS, once each.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var replayed []string
	require.NoError(t, l.ReadAll(ctx, func(msg eventlog.Message) error {
		if !strings.HasPrefix(msg.MsgID, "replay.") {
			return nil
		}
		es, err := event.DecodeBatch(msg.Data)
		require.NoError(t, err)
		for _, e := range es {
			replayed = append(replayed, e.MessageID)
		}
		return nil
	}))
	require.Equal(t, []string{"dead-1", "dead-2"}, replayed)

	_, _, err = cli(t, "dead", "list", "--tenant", "nope", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "not_found")
	_, _, err = cli(t, "dead", "list", "--limit", "5000", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "invalid_request")
}

func TestCLIDeadUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dead"}, "usage"},
		{[]string{"dead", "frobnicate"}, "unknown dead command"},
		{[]string{"dead", "list", "extra", "--token", "x"}, "usage"},
		{[]string{"dead", "replay", "--token", "x"}, "usage"},
		{[]string{"dead", "replay", "--all", "--token", "x"}, "usage"},
		{[]string{"dead", "replay", "--tenant", "acme", "--token", "x"}, "usage"},
		{[]string{"dead", "replay", "--seq", "1", "--tenant", "acme", "--all", "--token", "x"}, "usage"},
		{[]string{"dead", "replay", "--seq", "0", "--token", "x"}, "not a DEAD sequence"},
		{[]string{"dead", "replay", "--seq", "x", "--token", "x"}, "not a DEAD sequence"},
	} {
		_, _, err := cli(t, c.args...)
		require.ErrorContains(t, err, c.want, "contrail %s", strings.Join(c.args, " "))
	}
}
