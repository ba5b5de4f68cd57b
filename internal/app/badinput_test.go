package app_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gzipped compresses b.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// gzipBomb returns a small gzip body that inflates to mib MiB of zeros: one
// gzip member of 1 MiB repeated (readers decode concatenated members).
func gzipBomb(t testing.TB, mib int) []byte {
	t.Helper()
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return bytes.Repeat(member.Bytes(), mib)
}

// track is a valid track event.
func track(messageID, anonymousID string) map[string]any {
	return map[string]any{"type": "track", "messageId": messageID, "anonymousId": anonymousID, "event": "Clicked"}
}

// waitForLimits waits until the collector applies a tenant's new limits
// (they arrive through a KV watch): probe must eventually be answered want.
func waitForLimits(t testing.TB, n *testNode, probe collectReq, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return probeSend(n, probe).Status == want
	}, 10*time.Second, 10*time.Millisecond, "the collector applies the new limits")
}

// TestCollectRefusesBadRequests sends requests that cannot be accepted as a
// whole and checks the exact status and error code of each, and that every
// refusal is counted.
func TestCollectRefusesBadRequests(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	mainID, mainKey, _ := createTenant(t, n, "bad-requests")
	smallID, smallKey, _ := createTenant(t, n, "small-limits")
	patchLimits(t, n, smallID, map[string]any{"max_batch_bytes": 4096, "max_event_bytes": 1024, "max_batch_events": 5})

	big := func(size int) map[string]any { // a valid event of about size bytes
		e := track("big-"+strconv.Itoa(size), "a-big")
		e["properties"] = map[string]any{"pad": strings.Repeat("x", size)}
		return e
	}
	oversized := batchBody(t, nil, big(5000))
	waitForLimits(t, n, collectReq{basicKey: smallKey, body: oversized}, http.StatusRequestEntityTooLarge)

	good := track("never-stored", "a-1")
	goodBatch := batchBody(t, nil, good)
	withKey := func(key string, events ...any) []byte {
		return batchBody(t, map[string]any{"writeKey": key}, events...)
	}
	sixEvents := make([]any, 6)
	for i := range sixEvents {
		sixEvents[i] = track("six-"+strconv.Itoa(i), "a-six")
	}
	truncatedGzip := gzipped(t, goodBatch)
	truncatedGzip = truncatedGzip[:len(truncatedGzip)-6]
	badChecksum := gzipped(t, goodBatch)
	badChecksum[len(badChecksum)-8] ^= 0xff // CRC-32 in the trailer
	// A valid gzip header, then a deflate block of the reserved type 11.
	corruptDeflate := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x07, 0x00, 0x00, 0x00}
	bomb := gzipBomb(t, 200) // ~200 KB that inflates to 200 MiB

	const unknown = "unknown"
	cases := []struct {
		name     string
		req      collectReq
		status   int
		code     string
		tenantID string // label of contrail_collect_requests_refused_total
	}{
		{"malformed JSON", collectReq{basicKey: mainKey, body: []byte(`{"batch":[{"type":"track",`)}, 400, "invalid_json", mainID},
		{"malformed JSON, key in body", collectReq{body: []byte(`{"writeKey":"` + mainKey + `","batch":[`)}, 400, "invalid_json", unknown},
		{"body not JSON at all", collectReq{basicKey: mainKey, body: []byte(`type=track&event=x`)}, 400, "invalid_json", mainID},
		{"empty body", collectReq{basicKey: mainKey, body: nil}, 400, "invalid_json", mainID},
		{"malformed JSON on /v1/track", collectReq{path: "/v1/track", basicKey: mainKey, body: []byte(`{"event":"x"`)}, 400, "invalid_json", mainID},
		{"batch is an object", collectReq{basicKey: mainKey, body: []byte(`{"batch":{"type":"track","event":"x","anonymousId":"a"}}`)}, 400, "invalid_batch", mainID},
		{"batch is a string", collectReq{basicKey: mainKey, body: []byte(`{"batch":"[]"}`)}, 400, "invalid_batch", mainID},
		{"batch context is a string", collectReq{basicKey: mainKey, body: []byte(`{"batch":[{"type":"track","event":"x","anonymousId":"a"}],"context":"x"}`)}, 400, "invalid_batch", mainID},
		{"empty batch", collectReq{basicKey: mainKey, body: []byte(`{"batch":[]}`)}, 400, "empty_batch", mainID},
		{"no batch field", collectReq{basicKey: mainKey, body: []byte(`{"sentAt":"2026-01-01T00:00:00Z"}`)}, 400, "empty_batch", mainID},
		{"no write key", collectReq{body: goodBatch}, 401, "missing_write_key", unknown},
		{"no write key on /v1/track", collectReq{path: "/v1/track", body: mustJSON(t, good)}, 401, "missing_write_key", unknown},
		{"wrong write key as Basic auth", collectReq{basicKey: "wk_not_a_key", body: goodBatch}, 401, "invalid_write_key", unknown},
		{"wrong write key in body", collectReq{body: withKey("wk_not_a_key", good)}, 401, "invalid_write_key", unknown},
		{"wrong write key in body of /v1/track", collectReq{path: "/v1/track", body: mustJSON(t, map[string]any{"writeKey": "wk_nope", "event": "x", "anonymousId": "a"})}, 401, "invalid_write_key", unknown},
		{"batch over the tenant's max_batch_bytes", collectReq{basicKey: smallKey, body: oversized}, 413, "batch_too_large", smallID},
		{"batch over max_batch_bytes, key in body", collectReq{body: withKey(smallKey, big(5000))}, 413, "batch_too_large", smallID},
		{"gzipped batch inflating over max_batch_bytes", collectReq{basicKey: smallKey, body: gzipped(t, oversized), encoding: "gzip"}, 413, "batch_too_large", smallID},
		{"too many events", collectReq{basicKey: smallKey, body: batchBody(t, nil, sixEvents...)}, 413, "too_many_events", smallID},
		{"event over max_event_bytes on /v1/track", collectReq{path: "/v1/track", basicKey: smallKey, body: mustJSON(t, big(2000))}, 413, "event_too_large", smallID},
		{"event over the default 32 KB on /v1/track", collectReq{path: "/v1/track", basicKey: mainKey, body: mustJSON(t, big(40<<10))}, 413, "event_too_large", mainID},
		{"event over 32 KB on /v1/identify, key in body", collectReq{path: "/v1/identify", body: mustJSON(t, map[string]any{"writeKey": mainKey, "userId": "u", "traits": map[string]any{"pad": strings.Repeat("y", 40<<10)}})}, 413, "event_too_large", mainID},
		{"Content-Encoding br", collectReq{basicKey: mainKey, body: goodBatch, encoding: "br"}, 415, "unsupported_encoding", mainID},
		{"Content-Encoding deflate", collectReq{basicKey: mainKey, body: goodBatch, encoding: "deflate"}, 415, "unsupported_encoding", mainID},
		{"gzip bomb", collectReq{basicKey: mainKey, body: bomb, encoding: "gzip"}, 413, "batch_too_large", mainID},
		{"gzip bomb without auth", collectReq{body: bomb, encoding: "gzip"}, 413, "batch_too_large", unknown},
		{"not gzip", collectReq{basicKey: mainKey, body: goodBatch, encoding: "gzip"}, 400, "invalid_gzip", mainID},
		{"truncated gzip", collectReq{basicKey: mainKey, body: truncatedGzip, encoding: "gzip"}, 400, "invalid_gzip", mainID},
		{"gzip with a bad checksum", collectReq{basicKey: mainKey, body: badChecksum, encoding: "gzip"}, 400, "invalid_gzip", mainID},
		{"gzip with corrupt deflate data", collectReq{basicKey: mainKey, body: corruptDeflate, encoding: "gzip"}, 400, "invalid_gzip", mainID},
	}
	before := metrics(t, n, "contrail_collect_requests_refused_total") // the probes
	storedBefore := len(readAll(t, n))                                 // probes that passed before the limits applied
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				resp := send(t, n, tc.req)
				require.Equal(t, tc.status, resp.Status, "answer: %s", resp.Body)
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				require.False(t, resp.Success, "answer: %s", resp.Body)
				require.Equal(t, tc.code, resp.Error.Code, "answer: %s", resp.Body)
				require.NotEmpty(t, resp.Error.Message)
				require.Empty(t, resp.Header.Get("Retry-After"), "only rate and quota refusals say when to retry")
			})
		}
	})

	// Nothing of a refused request was stored.
	for _, l := range readAll(t, n)[storedBefore:] {
		require.Fail(t, "an event of a refused request was stored", "%s of tenant %s", l.Event.MessageID, l.Event.Tenant)
	}

	// Every refusal is counted by tenant and reason.
	want := map[string]float64{}
	for _, tc := range cases {
		want[labels("reason", tc.code, "tenant", tc.tenantID)]++
	}
	got := metrics(t, n, "contrail_collect_requests_refused_total")
	for k, v := range want {
		assert.Equal(t, v, got[k]-before[k], "contrail_collect_requests_refused_total{%s}", k)
	}
}

// TestGzipBombMemory checks that a gzip bomb is refused without inflating
// it: the node reads up to the limit (500 KB, or 4 MiB before the tenant is
// known), not the 200 MiB each bomb expands to.
// It is not parallel, so that the allocation count is the node's own.
func TestGzipBombMemory(t *testing.T) {
	n := startNode(t, nil)
	_, key, _ := createTenant(t, n, "bomb")
	bomb := gzipBomb(t, 200)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, r := range []collectReq{
		{basicKey: key, body: bomb, encoding: "gzip"}, // stops at the tenant's 500 KB
		{body: bomb, encoding: "gzip"},                // stops at the node's 4 MiB
	} {
		resp := send(t, n, r)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.Status, "answer: %s", resp.Body)
		require.Equal(t, "batch_too_large", resp.Error.Code)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB while refusing two 200 MiB gzip bombs", allocated>>10)
	require.Less(t, allocated, uint64(128<<20), "the bombs were inflated")
}

// TestCollectRejectsBadEvents sends batches mixing good events with events
// that each break one rule: the request is answered 200 with a result per
// event, the good events are stored and the bad ones are not.
func TestCollectRejectsBadEvents(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "bad-events")

	type ev = map[string]any
	skewedSent := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	skewedOrig := time.Now().Add(time.Hour - 5*time.Second).UTC().Format(time.RFC3339Nano)
	goods := []ev{
		{"type": "track", "messageId": "good-track", "anonymousId": "a-1", "event": "Viewed", "properties": ev{"n": 1}},
		{"type": "page", "messageId": "good-page", "userId": "u-2", "name": "Home"},
		{"type": "identify", "messageId": "good-identify", "userId": "u-3", "traits": ev{"email": "u3@example.com"}},
		{"type": "alias", "messageId": "good-alias", "userId": "u-4", "previousId": "a-4"},
		{"type": "group", "messageId": "good-group", "userId": "u-5", "groupId": "g-5"},
		{"type": "screen", "messageId": "good-screen", "anonymousId": "a-6", "name": "Main"},
		{"type": "track", "messageId": "good-numeric-user", "userId": 12345, "event": "Numeric Id"},
		{"type": "track", "messageId": "good-null-anonymous", "userId": "u-8", "anonymousId": nil, "event": "Null Anonymous", "properties": nil},
		{"type": "track", "messageId": "good-old", "anonymousId": "a-9", "event": "Old", "timestamp": "2020-05-06T07:08:09.123Z"},
		// A client whose clock is an hour ahead: sentAt corrects it.
		{"type": "track", "messageId": "good-skewed", "anonymousId": "a-10", "event": "Skewed", "originalTimestamp": skewedOrig, "sentAt": skewedSent},
		// An event time in the future without sentAt is clamped.
		{"type": "track", "messageId": "good-future", "anonymousId": "a-11", "event": "Future", "timestamp": skewedSent},
	}
	bad := func(code string, e ev) struct {
		code string
		ev   ev
	} {
		return struct {
			code string
			ev   ev
		}{code, e}
	}
	trackWith := func(id string, kv ...any) ev {
		e := ev{"type": "track", "messageId": id, "anonymousId": "a-bad", "event": "Bad"}
		for i := 0; i+1 < len(kv); i += 2 {
			k := kv[i].(string)
			if kv[i+1] == "<delete>" {
				delete(e, k)
				continue
			}
			e[k] = kv[i+1]
		}
		return e
	}
	bads := []struct {
		code string
		ev   ev
	}{
		bad("missing_id", trackWith("bad-no-ids", "anonymousId", "<delete>")),
		bad("missing_id", trackWith("bad-null-ids", "anonymousId", nil, "userId", nil)),
		bad("missing_id", ev{"type": "alias", "messageId": "bad-alias-no-user", "previousId": "p-1"}),
		bad("missing_event", trackWith("bad-no-event", "event", "<delete>")),
		bad("missing_event", trackWith("bad-empty-event", "event", "")),
		bad("missing_event", trackWith("bad-blank-event", "event", "  ")),
		bad("missing_previous_id", ev{"type": "alias", "messageId": "bad-no-previous", "userId": "u-1"}),
		bad("missing_group_id", ev{"type": "group", "messageId": "bad-no-group", "userId": "u-1"}),
		bad("invalid_type", trackWith("bad-type", "type", "purchase")),
		bad("invalid_type", trackWith("bad-no-type", "type", "<delete>")),
		bad("invalid_event", trackWith("bad-event-number", "event", 42)),
		bad("invalid_field", trackWith("bad-properties-string", "properties", "plan=pro")),
		bad("invalid_field", ev{"type": "identify", "messageId": "bad-traits-array", "userId": "u-1", "traits": []any{1, 2}}),
		bad("invalid_field", trackWith("bad-context-string", "context", "ctx")),
		bad("invalid_timestamp", trackWith("bad-timestamp", "timestamp", "yesterday")),
		bad("invalid_timestamp", trackWith("bad-original-timestamp", "originalTimestamp", "2021-13-45T99:00:00Z")),
		bad("invalid_id", trackWith("bad-long-id", "anonymousId", strings.Repeat("x", 300))),
		bad("event_too_large", trackWith("bad-too-large", "properties", ev{"pad": strings.Repeat("z", 33<<10)})),
	}
	for i, id := range []string{"anonymous", "null", "undefined", "0", "[object Object]", "", "   ", "NULL", "Undefined"} {
		bads = append(bads, bad("blocked_id", trackWith(fmt.Sprintf("bad-blocked-anon-%d", i), "anonymousId", id)))
	}
	for i, id := range []string{"anonymous", "null", "undefined", "0", "[object Object]", "", "   "} {
		bads = append(bads, bad("blocked_id", ev{"type": "identify", "messageId": fmt.Sprintf("bad-blocked-user-%d", i), "userId": id}))
	}
	bads = append(bads,
		bad("blocked_id", ev{"type": "alias", "messageId": "bad-blocked-previous", "userId": "u-1", "previousId": "undefined"}),
		bad("blocked_id", ev{"type": "group", "messageId": "bad-blocked-group", "userId": "u-1", "groupId": "null"}),
	)

	// Interleave: a bad event follows a good one, so a result that names
	// the previous event's messageId would show.
	type item struct {
		id, code string
		ev       ev
	}
	var items []item
	for i := 0; i < len(goods) || i < len(bads); i++ {
		if i < len(goods) {
			items = append(items, item{id: goods[i]["messageId"].(string), ev: goods[i]})
		}
		if i < len(bads) {
			items = append(items, item{id: bads[i].ev["messageId"].(string), code: bads[i].code, ev: bads[i].ev})
		}
	}
	events := make([]any, len(items))
	for i, it := range items {
		events[i] = it.ev
	}
	resp := send(t, n, collectReq{basicKey: key, body: batchBody(t, nil, events...)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	require.True(t, resp.Success)
	require.Equal(t, len(goods), resp.Accepted)
	require.Equal(t, len(bads), resp.Rejected)
	require.Len(t, resp.Results, len(items))
	for i, it := range items {
		r := resp.Results[i]
		if it.code == "" {
			require.Equal(t, "accepted", r.Status, "%s: %+v", it.id, r)
			require.Equal(t, it.id, r.MessageID)
			continue
		}
		require.Equal(t, "rejected", r.Status, "%s: %+v", it.id, r)
		require.Equal(t, it.code, r.Code, "%s: %+v", it.id, r)
		require.NotEmpty(t, r.Message, it.id)
		// Not fatal, so that a wrong id does not hide the checks below.
		if it.code == "event_too_large" {
			// The collector may refuse to parse it, but must not name another event.
			assert.Contains(t, []string{it.id, ""}, r.MessageID, "result %d (%s) names messageId %q", i, it.id, r.MessageID)
		} else {
			assert.Equal(t, it.id, r.MessageID, "result %d (%s) names messageId %q", i, it.id, r.MessageID)
		}
	}

	// A single-event endpoint reports an event-level rejection the same way.
	single := send(t, n, collectReq{path: "/v1/track", basicKey: key, body: []byte(`{"messageId":"bad-single","anonymousId":"undefined","event":"x"}`)})
	require.Equal(t, http.StatusOK, single.Status, "answer: %s", single.Body)
	require.Equal(t, 0, single.Accepted)
	require.Len(t, single.Results, 1)
	require.Equal(t, "blocked_id", single.Results[0].Code)
	require.Equal(t, "bad-single", single.Results[0].MessageID)

	// The good events are stored, the bad ones are not.
	stored := byMessageID(t, readAll(t, n), tenantID)
	require.Len(t, stored, len(goods))
	for _, g := range goods {
		id := g["messageId"].(string)
		require.Contains(t, stored, id)
		require.Equal(t, g["type"], stored[id].Event.Type.String())
	}
	require.Equal(t, "12345", stored["good-numeric-user"].Event.UserID)
	require.Empty(t, stored["good-null-anonymous"].Event.AnonymousID)
	require.Empty(t, stored["good-null-anonymous"].Event.Properties)
	require.Equal(t, "a-4", stored["good-alias"].Event.PreviousID)
	require.Equal(t, "g-5", stored["good-group"].Event.GroupID)
	require.Equal(t, time.Date(2020, 5, 6, 7, 8, 9, 123000000, time.UTC), stored["good-old"].Event.Timestamp.UTC(),
		"without sentAt an explicit timestamp is kept as it is")
	skewed := stored["good-skewed"].Event
	micro := func(s string) time.Time { // the log keeps times to the microsecond
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v.Truncate(time.Microsecond)
	}
	require.Equal(t, micro(skewedOrig), skewed.OriginalTimestamp)
	require.Equal(t, micro(skewedSent), skewed.SentAt)
	require.WithinDuration(t, skewed.ReceivedAt.Add(-5*time.Second), skewed.Timestamp, time.Millisecond,
		"timestamp = receivedAt - (sentAt - originalTimestamp) corrects the client's clock")
	future := stored["good-future"].Event
	require.Equal(t, future.ReceivedAt, future.Timestamp, "a time over max_future_skew ahead is clamped to receivedAt")

	// Every rejection is counted by tenant and reason; the accepted events too.
	want := map[string]float64{}
	for _, b := range bads {
		want[labels("reason", b.code, "tenant", tenantID)]++
	}
	want[labels("reason", "blocked_id", "tenant", tenantID)]++ // the single-event request
	got := metrics(t, n, "contrail_collect_events_rejected_total")
	for k, v := range want {
		assert.Equal(t, v, got[k], "contrail_collect_events_rejected_total{%s}", k)
	}
	require.Equal(t, float64(len(goods)), metrics(t, n, "contrail_collect_events_accepted_total")[labels("tenant", tenantID)])
}

// TestRateLimit checks that a tenant over its events per second is answered
// 429 rate_limited with Retry-After, that the refused events are not stored,
// and that the tenant may send again once the bucket has refilled.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "rate-limited")
	patchLimits(t, n, tenantID, map[string]any{"events_per_second": 10, "burst": 10})
	// Requests of 2 events without pause: once the new limit is applied
	// (it arrives through a KV watch), the burst of 10 is spent within a few
	// requests.
	probes := 0
	var limited collectResp
	var unexpected []string
	require.Eventually(t, func() bool {
		probes++
		body, _ := json.Marshal(map[string]any{"batch": []any{track(fmt.Sprintf("rl-%d-a", probes), "a-rl"), track(fmt.Sprintf("rl-%d-b", probes), "a-rl")}})
		limited = probeSend(n, collectReq{basicKey: key, body: body})
		if limited.Status != http.StatusOK && limited.Status != http.StatusTooManyRequests {
			unexpected = append(unexpected, fmt.Sprintf("%d %s", limited.Status, limited.Body))
		}
		return limited.Status == http.StatusTooManyRequests
	}, 10*time.Second, time.Millisecond, "a tenant sending without pause reaches its 10/s limit")
	require.Empty(t, unexpected)
	require.Equal(t, "rate_limited", limited.Error.Code)
	retry, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", limited.Header.Get("Retry-After"))
	require.GreaterOrEqual(t, retry, 1)
	require.LessOrEqual(t, retry, 2, "the bucket refills at 10 events a second")

	// The next request right away is refused too.
	resp := send(t, n, collectReq{basicKey: key, body: batchBody(t, nil, track("rl-next", "a-rl"))})
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, "rate_limited", resp.Error.Code)

	// Within Retry-After, the tenant may send again.
	deadline := time.Now().Add(time.Duration(retry)*time.Second + 2*time.Second)
	require.Eventually(t, func() bool {
		return probeSend(n, collectReq{basicKey: key, body: []byte(`{"batch":[{"type":"track","messageId":"rl-later","anonymousId":"a-rl","event":"Later"}]}`)}).Status == http.StatusOK
	}, time.Until(deadline), 20*time.Millisecond, "the bucket refills")

	stored := byMessageID(t, readAll(t, n), tenantID)
	require.NotContains(t, stored, fmt.Sprintf("rl-%d-a", probes), "the refused request's events are not stored")
	require.NotContains(t, stored, fmt.Sprintf("rl-%d-b", probes))
	require.NotContains(t, stored, "rl-next")
	require.Contains(t, stored, "rl-later")
	refused := metrics(t, n, "contrail_collect_requests_refused_total")
	require.GreaterOrEqual(t, refused[labels("reason", "rate_limited", "tenant", tenantID)], 2.0)
	rejected := metrics(t, n, "contrail_collect_events_rejected_total")
	require.GreaterOrEqual(t, rejected[labels("reason", "rate_limited", "tenant", tenantID)], 3.0, "refused events are counted")
}

// TestDailyQuota checks the daily quota: 429 quota_exceeded once a batch
// would pass it, while a batch that still fits passes.
func TestDailyQuota(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "quota")
	patchLimits(t, n, tenantID, map[string]any{"daily_quota": 5})
	batch := func(prefix string, k int) []byte {
		evs := make([]any, k)
		for i := range evs {
			evs[i] = track(fmt.Sprintf("%s-%d", prefix, i), "a-q")
		}
		return batchBody(t, nil, evs...)
	}
	six := func(prefix string) []byte {
		b, _ := json.Marshal(map[string]any{"batch": []any{
			track(prefix+"-0", "a-q"), track(prefix+"-1", "a-q"), track(prefix+"-2", "a-q"),
			track(prefix+"-3", "a-q"), track(prefix+"-4", "a-q"), track(prefix+"-5", "a-q"),
		}})
		return b
	}
	// A batch of 6 is over a quota of 5: once it is refused, the quota
	// applies. Probes that passed before did not count against it.
	probes := 0
	require.Eventually(t, func() bool {
		probes++
		return probeSend(n, collectReq{basicKey: key, body: six(fmt.Sprintf("probe-%d", probes))}).Status == http.StatusTooManyRequests
	}, 10*time.Second, 10*time.Millisecond, "the collector applies the quota")
	before := len(byMessageID(t, readAll(t, n), tenantID))

	resp := send(t, n, collectReq{basicKey: key, body: batch("q-a", 3)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	resp = send(t, n, collectReq{basicKey: key, body: batch("q-b", 3)})
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "3 + 3 > 5: answer: %s", resp.Body)
	require.Equal(t, "quota_exceeded", resp.Error.Code)
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	require.InDelta(t, midnight.Sub(now).Seconds(), float64(retry), 5, "Retry-After points at the next UTC midnight")
	resp = send(t, n, collectReq{basicKey: key, body: batch("q-c", 2)})
	require.Equal(t, http.StatusOK, resp.Status, "3 + 2 fits the quota: answer: %s", resp.Body)
	resp = send(t, n, collectReq{basicKey: key, body: batch("q-d", 1)})
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "answer: %s", resp.Body)
	require.Equal(t, "quota_exceeded", resp.Error.Code)

	ids := byMessageID(t, readAll(t, n), tenantID)
	require.Len(t, ids, before+5)
	for _, id := range []string{"q-a-0", "q-a-1", "q-a-2", "q-c-0", "q-c-1"} {
		require.Contains(t, ids, id)
	}
	require.NotContains(t, ids, "q-b-0")
	require.NotContains(t, ids, "q-d-0")
	got := metrics(t, n, "contrail_collect_requests_refused_total")
	require.GreaterOrEqual(t, got[labels("reason", "quota_exceeded", "tenant", tenantID)], 3.0)
}
