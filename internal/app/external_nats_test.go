package app_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/app"
	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

// TestExternalNATS runs a node on a NATS server it does not own (a second
// JetStream server on a TCP port), reads what it stored straight from that
// server, and checks that a restart with another partition count is refused.
func TestExternalNATS(t *testing.T) {
	t.Parallel()
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{
		StoreDir: t.TempDir(), Listen: true, ServerName: "external", SyncInterval: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	url := ns.ClientURL()
	require.True(t, strings.HasPrefix(url, "nats://127.0.0.1:"), url)

	const partitions = 4
	dataDir := t.TempDir()
	n := startNode(t, func(c *config.Config) {
		c.DataDir = dataDir
		c.Log.NATSURL = url
		c.Log.Partitions = partitions
	})
	_, err = os.Stat(filepath.Join(dataDir, "jetstream"))
	require.ErrorIs(t, err, fs.ErrNotExist, "no embedded JetStream store with an external NATS")
	tenantID, key, _ := createTenant(t, n, "external")

	var events []any
	keys := map[string]string{} // messageId → visitor key
	for i := range 20 {
		anon := fmt.Sprintf("ext-visitor-%d", i%7)
		id := fmt.Sprintf("ext-%d", i)
		events = append(events, map[string]any{"type": "track", "messageId": id, "anonymousId": anon, "event": "Ext"})
		keys[id] = anon
	}
	resp := send(t, n, collectReq{basicKey: key, body: batchBody(t, nil, events...)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, len(events), resp.Accepted)

	// Read the EVENTS stream directly from the external server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Name("test-reader"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, eventlog.StreamEvents)
	require.NoError(t, err)
	info := stream.CachedInfo()
	require.Equal(t, []string{"ev.*"}, info.Config.Subjects)
	require.Equal(t, fmt.Sprint(partitions), info.Config.Metadata["contrail_partitions"])
	require.Equal(t, jetstream.FileStorage, info.Config.Storage)
	direct := map[string]int{} // messageId → partition, from the raw messages
	msgIDs := map[string]bool{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		p := eventlog.PartitionOf(m.Subject)
		require.GreaterOrEqual(t, p, 0, m.Subject)
		id := m.Header.Get(jetstream.MsgIDHeader)
		require.NotEmpty(t, id)
		require.False(t, msgIDs[id], "Nats-Msg-Id %s twice", id)
		msgIDs[id] = true
		evs, err := event.DecodeBatch(m.Data)
		require.NoError(t, err)
		for _, e := range evs {
			require.Equal(t, tenantID, e.Tenant)
			direct[e.MessageID] = p
		}
	}
	require.Len(t, direct, len(events))
	for id, anon := range keys {
		require.Equal(t, event.Partition(tenantID, anon, partitions), direct[id], id)
	}
	// Tenants live on the external server too.
	kv, err := js.KeyValue(ctx, tenant.Bucket)
	require.NoError(t, err)
	_, err = kv.Get(ctx, "t."+tenantID)
	require.NoError(t, err)

	// The same through eventlog on a fresh connection.
	l, err := eventlog.Open(ctx, nc, eventlog.Options{Partitions: partitions})
	require.NoError(t, err)
	viaLog := byMessageID(t, readLog(t, l), tenantID)
	require.Len(t, viaLog, len(events))
	for id, p := range direct {
		require.Equal(t, p, viaLog[id].Partition, id)
	}

	// With the same partition count, the node comes back with its tenant
	// and events.
	n.stop(t)
	again := startNodeWith(t, n.Cfg)
	resp = send(t, again, collectReq{basicKey: key, body: batchBody(t, nil, map[string]any{"type": "page", "messageId": "ext-again", "anonymousId": "ext-visitor-0"})})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	stored := byMessageID(t, readAll(t, again), tenantID)
	require.Len(t, stored, len(events)+1)
	require.Equal(t, direct["ext-0"], stored["ext-again"].Partition, "a visitor keeps its partition across restarts")

	// With another partition count it is refused, and leaves no connection
	// behind.
	again.stop(t)
	require.Eventually(t, func() bool { return ns.NumClients() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the stopped node closed its connection; only the test's reader is left")
	other := n.Cfg
	other.Log.Partitions = partitions * 2
	err = newNodeErr(ctx, t, other)
	require.ErrorIs(t, err, eventlog.ErrPartitions)
	require.Eventually(t, func() bool { return ns.NumClients() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the refused node closed its connection")
}

// newNodeErr calls app.New where it must fail and returns its error. A
// panic becomes a test failure, so that the rest of the package still runs.
func newNodeErr(ctx context.Context, t testing.TB, cfg config.Config) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("app.New panicked instead of returning its error: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("app.New panicked: %v", r)
		}
	}()
	node, err := app.New(ctx, cfg, testLogger(t))
	if err == nil { // unexpected: stop it again
		stopped, cancel := context.WithCancel(ctx)
		cancel()
		_ = node.Run(stopped, nil)
	}
	return err
}
