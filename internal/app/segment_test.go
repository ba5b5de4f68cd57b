package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	analytics "gopkg.in/segmentio/analytics-go.v3"

	"github.com/contrailhq/contrail/internal/event"
)

// segmentCallback records what analytics-go reports for each message.
type segmentCallback struct {
	mu        sync.Mutex
	succeeded []analytics.Message
	failed    []string
}

func (c *segmentCallback) Success(m analytics.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.succeeded = append(c.succeeded, m)
}

func (c *segmentCallback) Failure(m analytics.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = append(c.failed, err.Error())
}

type segmentLogger struct{ t testing.TB }

func (l segmentLogger) Logf(format string, args ...any) { l.t.Logf("analytics-go: "+format, args...) }
func (l segmentLogger) Errorf(format string, args ...any) {
	l.t.Logf("analytics-go ERROR: "+format, args...)
}

// TestSegmentGoSDK drives the collector with Segment's own Go library and
// checks every field it sent, as stored in the log.
func TestSegmentGoSDK(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, writeKey, _ := createTenant(t, n, "segment-go")

	historical := time.Date(2021, 3, 4, 5, 6, 7, 890123000, time.UTC)
	msgs := []analytics.Message{
		analytics.Identify{
			MessageId: "go-identify-1", UserId: "user-42", AnonymousId: "anon-go-1",
			Traits: analytics.NewTraits().SetEmail("ada@example.com").SetName("Ada Lovelace").Set("plan", "pro"),
		},
		analytics.Page{
			MessageId: "go-page-1", AnonymousId: "anon-go-1", Name: "Pricing",
			Properties: analytics.NewProperties().SetURL("https://example.com/pricing").SetPath("/pricing").SetTitle("Pricing"),
		},
		analytics.Track{
			MessageId: "go-track-ip", UserId: "user-42", AnonymousId: "anon-go-1", Event: "Signed Up",
			Properties: analytics.NewProperties().Set("plan", "pro").Set("seats", 3),
			Context:    &analytics.Context{IP: net.ParseIP("203.0.113.7"), Locale: "en-GB"},
		},
		analytics.Track{
			MessageId: "go-track-historical", AnonymousId: "anon-go-2", Event: "Imported Order",
			Timestamp:  historical,
			Properties: analytics.NewProperties().SetRevenue(42.5).SetCurrency("EUR"),
		},
		analytics.Track{MessageId: "go-track-user-only", UserId: "user-43", Event: "Logged In"},
	}

	cb := &segmentCallback{}
	client, err := analytics.NewWithConfig(writeKey, analytics.Config{
		Endpoint:  n.URL,
		BatchSize: 3, // two requests: 3 messages, then 2 on Close
		Interval:  time.Minute,
		Callback:  cb,
		Logger:    segmentLogger{t},
	})
	require.NoError(t, err)
	before := time.Now()
	for _, m := range msgs {
		require.NoError(t, client.Enqueue(m))
	}
	require.NoError(t, client.Close())
	after := time.Now()

	require.Empty(t, cb.failed, "analytics-go reported failures")
	require.Len(t, cb.succeeded, len(msgs), "analytics-go reported success for every message")

	stored := byMessageID(t, readAll(t, n), tenantID)
	require.Len(t, stored, len(msgs))

	type want struct {
		typ         event.Type
		userID      string
		anonymousID string
		name        string // event (track) or name (page)
		properties  any
		traits      any
		ts          time.Time // the message's time as the library sent it
		ip          string
		context     map[string]any // keys the stored context must hold, besides library
	}
	wants := map[string]*want{}
	for _, m := range cb.succeeded {
		switch m := m.(type) {
		case analytics.Identify:
			wants[m.MessageId] = &want{typ: event.TypeIdentify, userID: m.UserId, anonymousID: m.AnonymousId, traits: m.Traits, ts: m.Timestamp}
		case analytics.Page:
			wants[m.MessageId] = &want{typ: event.TypePage, userID: m.UserId, anonymousID: m.AnonymousId, name: m.Name, properties: m.Properties, ts: m.Timestamp}
		case analytics.Track:
			wants[m.MessageId] = &want{typ: event.TypeTrack, userID: m.UserId, anonymousID: m.AnonymousId, name: m.Event, properties: m.Properties, ts: m.Timestamp}
		default:
			t.Fatalf("unexpected message %T", m)
		}
	}
	wants["go-track-ip"].ip = "203.0.113.7"
	wants["go-track-ip"].context = map[string]any{"ip": "203.0.113.7", "locale": "en-GB"}
	require.Len(t, wants, len(msgs))

	for id, w := range wants {
		got, ok := stored[id]
		require.True(t, ok, "message %s is in the log", id)
		e := got.Event
		require.Equal(t, tenantID, e.Tenant, id)
		require.Equal(t, w.typ, e.Type, id)
		require.Equal(t, w.userID, e.UserID, id)
		require.Equal(t, w.anonymousID, e.AnonymousID, id)
		if w.typ == event.TypeTrack {
			require.Equal(t, w.name, e.Event, id)
			require.Empty(t, e.Name, id)
		} else {
			require.Equal(t, w.name, e.Name, id)
			require.Empty(t, e.Event, id)
		}
		requireJSONField(t, w.properties, e.Properties, id+" properties")
		requireJSONField(t, w.traits, e.Traits, id+" traits")

		var ctx map[string]any
		require.NoError(t, json.Unmarshal(e.Context, &ctx), "%s context %s", id, e.Context)
		require.Equal(t, "analytics-go", libraryName(ctx), "%s: batch context merged in: %s", id, e.Context)
		for k, v := range w.context {
			require.Equal(t, v, ctx[k], "%s context.%s", id, k)
		}
		wantIP := w.ip
		if wantIP == "" {
			wantIP = "127.0.0.1"
			require.NotContains(t, ctx, "ip", id)
		}
		require.Equal(t, wantIP, e.IP, "%s ip", id)

		// The four timestamps.
		require.False(t, e.ReceivedAt.Before(before.Truncate(time.Microsecond)), "%s receivedAt %s before the test sent it (%s)", id, e.ReceivedAt, before)
		require.False(t, e.ReceivedAt.After(after), "%s receivedAt %s after the client was closed (%s)", id, e.ReceivedAt, after)
		require.False(t, e.SentAt.IsZero(), "%s sentAt", id)
		require.False(t, e.SentAt.Before(before.Truncate(time.Microsecond)), "%s sentAt %s", id, e.SentAt)
		require.False(t, e.SentAt.After(after), "%s sentAt %s", id, e.SentAt)
		require.True(t, e.OriginalTimestamp.Equal(w.ts.Truncate(time.Microsecond)), "%s originalTimestamp %s, sent %s", id, e.OriginalTimestamp, w.ts)
		corrected := e.ReceivedAt.Add(-e.SentAt.Sub(e.OriginalTimestamp))
		require.WithinDuration(t, corrected, e.Timestamp, time.Millisecond, "%s timestamp = receivedAt - (sentAt - originalTimestamp)", id)
		if id == "go-track-historical" {
			require.True(t, e.OriginalTimestamp.Equal(historical), "historical originalTimestamp %s", e.OriginalTimestamp)
			require.WithinDuration(t, historical, e.Timestamp, 5*time.Second, "the historical event keeps its date")
		} else {
			require.False(t, e.OriginalTimestamp.Before(before.Truncate(time.Microsecond)), id)
			require.False(t, e.Timestamp.Before(before.Add(-time.Millisecond)), "%s timestamp %s", id, e.Timestamp)
			require.False(t, e.Timestamp.After(after.Add(time.Millisecond)), "%s timestamp %s", id, e.Timestamp)
		}
	}
}

// requireJSONField checks that the stored JSON equals what the library sent
// (nil: nothing sent, nothing stored).
func requireJSONField(t testing.TB, sent any, stored json.RawMessage, msg string) {
	t.Helper()
	b, err := json.Marshal(sent)
	require.NoError(t, err)
	if sent == nil || bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte("{}")) && len(stored) == 0 {
		require.Empty(t, stored, msg)
		return
	}
	require.JSONEq(t, string(b), string(stored), msg)
}

// libraryName returns context.library.name, or "".
func libraryName(ctx map[string]any) string {
	lib, _ := ctx["library"].(map[string]any)
	name, _ := lib["name"].(string)
	return name
}

// nodeSendOutput is what testdata/node/send.mjs prints.
type nodeSendOutput struct {
	MessageIDs []string          `json:"messageIds"`
	Sent       []json.RawMessage `json:"sent"`
	Statuses   []int             `json:"statuses"`
	Errors     []string          `json:"errors"`
}

// TestSegmentNodeSDK drives the collector with Segment's Node library
// (@segment/analytics-node) in a real node process.
func TestSegmentNodeSDK(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	require.NoError(t, err)
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH; install Node.js 20+ and run: npm ci --prefix internal/app/testdata/node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@segment", "analytics-node")); err != nil {
		t.Skip("the Node SDK is not installed; run: npm ci --prefix internal/app/testdata/node")
	}
	n := startNode(t, nil)
	tenantID, writeKey, _ := createTenant(t, n, "segment-node")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "send.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CONTRAIL_HOST="+n.URL, "CONTRAIL_WRITE_KEY="+writeKey, "CONTRAIL_RUN=nodesdk")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	before := time.Now()
	stdout, err := cmd.Output()
	after := time.Now()
	require.NoError(t, err, "node send.mjs\nstdout: %s\nstderr: %s", stdout, stderr.String())
	var out nodeSendOutput
	require.NoError(t, json.Unmarshal(stdout, &out), "send.mjs output: %s", stdout)
	require.Empty(t, out.Errors)
	require.Len(t, out.MessageIDs, 4)
	require.NotEmpty(t, out.Statuses)
	for _, st := range out.Statuses {
		require.Equal(t, 200, st)
	}

	stored := byMessageID(t, readAll(t, n), tenantID)
	require.Len(t, stored, len(out.MessageIDs))
	require.Len(t, out.Sent, len(out.MessageIDs))
	for _, raw := range out.Sent {
		var sent struct {
			Type        string          `json:"type"`
			MessageID   string          `json:"messageId"`
			UserID      string          `json:"userId"`
			AnonymousID string          `json:"anonymousId"`
			Event       string          `json:"event"`
			Name        string          `json:"name"`
			Timestamp   time.Time       `json:"timestamp"`
			Properties  json.RawMessage `json:"properties"`
			Traits      json.RawMessage `json:"traits"`
			Context     map[string]any  `json:"context"`
		}
		require.NoError(t, json.Unmarshal(raw, &sent))
		id := sent.MessageID
		require.Contains(t, out.MessageIDs, id)
		got, ok := stored[id]
		require.True(t, ok, "message %s is in the log", id)
		e := got.Event
		require.Equal(t, sent.Type, e.Type.String(), id)
		require.Equal(t, sent.UserID, e.UserID, id)
		require.Equal(t, sent.AnonymousID, e.AnonymousID, id)
		require.Equal(t, sent.Event, e.Event, id)
		require.Equal(t, sent.Name, e.Name, id)
		if sent.Properties != nil {
			require.JSONEq(t, string(sent.Properties), string(e.Properties), id)
		} else {
			require.Empty(t, e.Properties, id)
		}
		if sent.Traits != nil {
			require.JSONEq(t, string(sent.Traits), string(e.Traits), id)
		} else {
			require.Empty(t, e.Traits, id)
		}
		var ctx map[string]any
		require.NoError(t, json.Unmarshal(e.Context, &ctx))
		require.Equal(t, sent.Context, ctx, id)
		require.Equal(t, "@segment/analytics-node", libraryName(ctx), id)
		if ip, ok := sent.Context["ip"]; ok {
			require.Equal(t, ip, e.IP, id)
		} else {
			require.Equal(t, "127.0.0.1", e.IP, id)
		}

		require.True(t, e.OriginalTimestamp.Equal(sent.Timestamp), "%s originalTimestamp %s, sent %s", id, e.OriginalTimestamp, sent.Timestamp)
		require.False(t, e.SentAt.IsZero(), id)
		require.False(t, e.ReceivedAt.Before(before.Truncate(time.Microsecond)), "%s receivedAt %s", id, e.ReceivedAt)
		require.False(t, e.ReceivedAt.After(after), "%s receivedAt %s", id, e.ReceivedAt)
		corrected := e.ReceivedAt.Add(-e.SentAt.Sub(e.OriginalTimestamp))
		require.WithinDuration(t, corrected, e.Timestamp, time.Millisecond, id)
		if sent.Timestamp.Year() == 2022 {
			require.WithinDuration(t, sent.Timestamp, e.Timestamp, 5*time.Second, "the historical event keeps its date")
		} else {
			// JavaScript clocks have millisecond resolution.
			require.WithinDuration(t, e.ReceivedAt, e.Timestamp, 5*time.Second, id)
		}
	}
}
