package collect

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
)

var recv = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func input() *eventInput {
	return &eventInput{tenant: "tn_x", receivedAt: recv, peerIP: "192.0.2.1", maxFutureSkew: time.Minute, maxEventBytes: 32 << 10}
}

func TestDecodeEventCodes(t *testing.T) {
	f := func(raw string, want Code) {
		t.Helper()
		var e event.Event
		code, msg := decodeEvent(raw, input(), &e)
		require.Equal(t, want, code, "%s: %s", raw, msg)
	}
	f(`{"type":"track","userId":"u","event":"E"}`, "")
	f(`{"type":"track","userId":42,"event":"E"}`, "")
	f(`{"type":"page","anonymousId":"a"}`, "")
	f(`{"type":"identify","userId":"u","traits":{"a":1}}`, "")
	f(`{"type":"alias","userId":"u","previousId":"p"}`, "")
	f(`{"type":"group","userId":"u","groupId":"g"}`, "")
	f(`{"type":"nope","userId":"u"}`, CodeInvalidType)
	f(`{"userId":"u"}`, CodeInvalidType)
	f(`{"type":"track","event":"E"}`, CodeMissingID)
	f(`{"type":"track","userId":null,"anonymousId":null,"event":"E"}`, CodeMissingID)
	f(`{"type":"track","userId":"u"}`, CodeMissingEvent)
	f(`{"type":"track","userId":"u","event":"  "}`, CodeMissingEvent)
	f(`{"type":"alias","userId":"u"}`, CodeMissingPreviousID)
	f(`{"type":"alias","anonymousId":"a","previousId":"p"}`, CodeMissingID)
	f(`{"type":"group","userId":"u"}`, CodeMissingGroupID)
	for _, id := range []string{`"anonymous"`, `"NULL"`, `"undefined"`, `"0"`, `0`, `"[object Object]"`, `""`, `"  "`} {
		f(`{"type":"page","userId":`+id+`}`, CodeBlockedID)
		f(`{"type":"page","anonymousId":`+id+`}`, CodeBlockedID)
	}
	f(`{"type":"page","userId":true}`, CodeInvalidEvent)
	f(`{"type":"page","userId":{"a":1}}`, CodeInvalidEvent)
	f(`{"type":"track","userId":"u","event":5}`, CodeInvalidEvent)
	f(`{"type":"page","userId":"u","properties":"x"}`, CodeInvalidField)
	f(`{"type":"page","userId":"u","context":[1]}`, CodeInvalidField)
	f(`{"type":"page","userId":"u","timestamp":"yesterday"}`, CodeInvalidTimestamp)
	f(`{"type":"page","userId":"u","sentAt":"2026-13-01T00:00:00Z"}`, CodeInvalidTimestamp)
	f(`{"type":"page","userId":"u","messageId":""}`, CodeInvalidID)
	long := make([]byte, maxIDLen+1)
	for i := range long {
		long[i] = 'x'
	}
	f(`{"type":"page","userId":"`+string(long)+`"}`, CodeInvalidID)
	f(`[1]`, CodeInvalidEvent)
	f(`"x"`, CodeInvalidEvent)
}

func TestMergeObjects(t *testing.T) {
	f := func(own, defaults, want string) {
		t.Helper()
		got := mergeObjects(own, defaults)
		require.True(t, json.Valid(got), string(got))
		require.JSONEq(t, want, string(got))
	}
	f(`{}`, `{"a":1}`, `{"a":1}`)
	f(`{ }`, `{"a":1,"b":{"c":[1]}}`, `{"a":1,"b":{"c":[1]}}`)
	f(`{"a":2}`, `{"a":1,"b":2}`, `{"a":2,"b":2}`)
	f(`{"a":2}`, ``, `{"a":2}`)
	f(`{"a\"x":2}`, `{"a\"x":1}`, `{"a\"x":2}`)
}

func TestDecodeEventFields(t *testing.T) {
	in := input()
	in.batch = &batchDefaults{context: `{"library":{"name":"b"},"locale":"fr"}`, sentAt: "2026-11-23T11:00:10Z"}
	var e event.Event
	code, msg := decodeEvent(`{"type":"track","messageId":"m1","anonymousId":"a","userId":7,"event":"Bought",
		"properties":{"n":1},"context":{"locale":"de","ip":"203.0.113.5"},"timestamp":"2026-11-23T11:00:00Z"}`, in, &e)
	require.Empty(t, code, msg)
	require.Equal(t, "m1", e.MessageID)
	require.Equal(t, "7", e.UserID, "numeric ids become strings")
	require.Equal(t, "203.0.113.5", e.IP, "an explicit context.ip wins over the peer")
	require.JSONEq(t, `{"library":{"name":"b"},"locale":"de","ip":"203.0.113.5"}`, string(e.Context), "batch context merged, event keys win")
	require.Equal(t, time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), e.OriginalTimestamp)
	require.Equal(t, time.Date(2026, 11, 23, 11, 0, 10, 0, time.UTC), e.SentAt)
	require.Equal(t, recv.Add(-10*time.Second), e.Timestamp, "skew corrected: receivedAt - (sentAt - original)")
	require.Equal(t, "tn_x", e.Tenant)

	code, _ = decodeEvent(`{"type":"page","anonymousId":"a"}`, input(), &e)
	require.Empty(t, code)
	require.Equal(t, "192.0.2.1", e.IP, "peer address when the client sent none")
	require.Nil(t, e.Context)
}

func TestSetTimes(t *testing.T) {
	f := func(ts, orig, sent string, want time.Time) {
		t.Helper()
		e := event.Event{ReceivedAt: recv}
		code, msg := setTimes(&e, ts, orig, sent, time.Minute)
		require.Empty(t, code, msg)
		require.Equal(t, want, e.Timestamp, "ts=%q orig=%q sent=%q", ts, orig, sent)
	}
	f("", "", "", recv)
	f("", "", "2026-11-23T10:00:00Z", recv)
	// A client clock one hour behind: corrected by the send delay.
	f("2026-11-23T10:59:58Z", "", "2026-11-23T11:00:00Z", recv.Add(-2*time.Second))
	f("", "2026-11-23T10:59:58Z", "2026-11-23T11:00:00Z", recv.Add(-2*time.Second))
	// Historical import, with or without sentAt.
	f("2020-01-01T00:00:00Z", "", "", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	f("2020-01-01T00:00:00Z", "", "2026-11-23T12:00:00Z", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	// Future times are clamped to receivedAt.
	f("2030-01-01T00:00:00Z", "", "", recv)
	f("2026-11-23T12:00:30Z", "", "", recv.Add(30*time.Second)) // within the allowed skew
	f("2026-11-23T12:00:00Z", "", "2026-11-23T11:00:00Z", recv) // sentAt before the call
	// Offsets and other ISO forms.
	f("2026-11-23T13:00:00+01:00", "", "", recv)
	f("2026-11-23T13:00:00.000+0100", "", "", recv)
}

func TestPixelEvent(t *testing.T) {
	q := map[string][]string{"writeKey": {"wk"}, "event": {"Open"}, "anonymousId": {"a"}, "properties.plan": {"pro"}, "context.locale": {"fr"}, "junk": {"x"}}
	raw, key, e := pixelEvent(q)
	require.Nil(t, e)
	require.Equal(t, "wk", key)
	require.JSONEq(t, `{"event":"Open","anonymousId":"a","properties":{"plan":"pro"},"context":{"locale":"fr"}}`, string(raw))

	// Segment's ?data=<base64 JSON>.
	raw, key, e = pixelEvent(map[string][]string{"data": {"eyJ3cml0ZUtleSI6IndrMiIsImV2ZW50IjoiWCJ9"}})
	require.Nil(t, e)
	require.Equal(t, "wk2", key)
	require.JSONEq(t, `{"writeKey":"wk2","event":"X"}`, string(raw))

	_, _, e = pixelEvent(map[string][]string{"data": {"not base64!"}})
	require.Equal(t, CodeInvalidJSON, e.code)
}

func TestClientIP(t *testing.T) {
	c := &Collector{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	f := func(remote, xff, want string) {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/track", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		require.Equal(t, want, c.clientIP(r))
	}
	f("198.51.100.7:1234", "", "198.51.100.7")
	f("198.51.100.7:1234", "1.2.3.4", "198.51.100.7") // untrusted peer: header ignored
	f("10.0.0.1:1234", "1.2.3.4", "1.2.3.4")
	f("10.0.0.1:1234", "6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4") // right-most untrusted hop
	f("10.0.0.1:1234", "garbage", "10.0.0.1")
	f("[::1]:80", "", "::1")
}

func TestAppendResults(t *testing.T) {
	req := &request{accepted: 1, results: []result{{messageID: "a"}, {messageID: `b"`, code: CodeMissingID, msg: "no id"}}}
	var got map[string]any
	require.NoError(t, json.Unmarshal(appendResults(nil, req), &got))
	require.Equal(t, map[string]any{"success": true, "accepted": 1.0, "rejected": 1.0, "results": []any{
		map[string]any{"messageId": "a", "status": "accepted"},
		map[string]any{"messageId": `b"`, "status": "rejected", "code": "missing_id", "message": "no id"},
	}}, got)
}

func TestBlockedIDIsDroppedWhenAnotherIDRemains(t *testing.T) {
	var e event.Event
	code, msg := decodeEvent(`{"type":"page","userId":"u-1","anonymousId":"undefined"}`, input(), &e)
	require.Empty(t, code, msg)
	require.Equal(t, "u-1", e.UserID)
	require.Empty(t, e.AnonymousID, "the blocked value is not kept as an id")
	require.Equal(t, "u-1", e.VisitorKey())

	code, _ = decodeEvent(`{"type":"alias","userId":"null","anonymousId":"a","previousId":"p"}`, input(), &e)
	require.Equal(t, CodeMissingID, code, "alias still needs a usable userId")
}

func TestRejectedEventKeepsItsMessageID(t *testing.T) {
	in := input()
	in.maxEventBytes = 100
	f := func(raw, want string) {
		t.Helper()
		e := event.Event{MessageID: "left-over"}
		code, _ := decodeEvent(raw, in, &e)
		require.NotEmpty(t, code)
		require.Equal(t, want, e.MessageID, raw)
	}
	f(`{"event":42,"messageId":"m1","type":"track","userId":"u"}`, "m1")
	f(`{"messageId":7,"properties":"x","type":"track","userId":"u"}`, "7")
	f(`{"type":"track","userId":"u","messageId":"big","properties":{"pad":"`+strings.Repeat("x", 100)+`"}}`, "big")
	f(`{"type":"track","userId":"u"}`, "")
}
