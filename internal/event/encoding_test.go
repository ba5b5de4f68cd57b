package event

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleEvent() Event {
	recv := time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)
	return Event{
		Tenant:            "tn_abc",
		Type:              TypeTrack,
		MessageID:         "m-1",
		AnonymousID:       "a-1",
		UserID:            "u-1",
		Event:             "Signed Up",
		IP:                "203.0.113.9",
		Timestamp:         recv.Add(-2 * time.Second),
		OriginalTimestamp: recv.Add(-3 * time.Second),
		SentAt:            recv.Add(-time.Second),
		ReceivedAt:        recv,
		Properties:        json.RawMessage(`{"plan":"pro"}`),
		Context:           json.RawMessage(`{"library":{"name":"x"}}`),
	}
}

func TestBatchRoundTrip(t *testing.T) {
	a := sampleEvent()
	b := sampleEvent()
	b.Type, b.MessageID, b.Name, b.Event = TypePage, "m-2", "Pricing", ""
	b.OriginalTimestamp, b.SentAt = time.Time{}, time.Time{}
	b.Properties = nil
	msg := EncodeBatch([]Event{a, b})
	require.Equal(t, Version, msg[0])
	got, err := DecodeBatch(msg)
	require.NoError(t, err)
	require.Equal(t, []Event{a, b}, got)
}

func TestDecodeRejects(t *testing.T) {
	good := EncodeBatch([]Event{sampleEvent()})
	f := func(name string, msg []byte, want error) {
		t.Helper()
		_, err := DecodeBatch(msg)
		require.ErrorIs(t, err, want, name)
	}
	f("empty", nil, ErrCorrupt)
	f("future version", append([]byte{Version + 1}, good[1:]...), ErrVersion)
	f("truncated", good[:len(good)-1], ErrCorrupt)
	f("trailing", append(append([]byte{}, good...), 0), ErrCorrupt)
	f("count too large", []byte{Version, 100}, ErrCorrupt)
	bad := append([]byte{}, good...)
	bad[3] = 0 // type of the first record (header 2 bytes, frame length 1 byte)
	f("unknown type", bad, ErrCorrupt)
}

func TestPartitionStable(t *testing.T) {
	// These values pin the hash: changing it would move visitors between
	// partitions of an existing log.
	require.Equal(t, Partition("tn_a", "visitor-1", 16), Partition("tn_a", "visitor-1", 16))
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		seen[Partition("tn_a", "v"+string(rune('a'+i%26))+string(rune('a'+i/26)), 16)] = true
	}
	require.Len(t, seen, 16, "visitors spread over all partitions")
	require.NotEqual(t, Partition("tn_a", "bc", 1<<30), Partition("tn_ab", "c", 1<<30), "tenant and key are separated")
}

func TestEnrichmentRoundTrip(t *testing.T) {
	a := sampleEvent()
	a.Enrichment = Enrichment{
		Path: "/pricing", Browser: "Chrome", OS: "macOS", Device: "desktop", Bot: true,
		Channel: "search", ReferrerDomain: "www.google.com", UTMSource: "google", UTMMedium: "cpc",
		UTMCampaign: "spring", UTMTerm: "t", UTMContent: "c", Country: "FR",
		SessionID: "s1", SessionStart: a.ReceivedAt, LandingPage: "/", PageCount: 3,
		NewSession: true, LeadID: "ld_x", Backfill: true,
	}
	b := sampleEvent()
	b.Enrichment = Enrichment{Country: "DE"}
	got, err := DecodeBatch(EncodeBatch([]Event{a, b, sampleEvent()}))
	require.NoError(t, err)
	require.Equal(t, []Event{a, b, sampleEvent()}, got)
}

func TestLeadIDAndRecord(t *testing.T) {
	a := LeadID("tn_a", "user-1")
	require.Equal(t, a, LeadID("tn_a", "user-1"))
	require.Len(t, a, 29)
	require.NotEqual(t, a, LeadID("tn_b", "user-1"))
	require.NotEqual(t, LeadID("tn_a", "b\x00c"), LeadID("tn_a\x00b", "c"))

	e := sampleEvent()
	var got Event
	require.NoError(t, DecodeRecord(AppendRecord(nil, &e), &got))
	require.Equal(t, e, got)
	require.ErrorIs(t, DecodeRecord([]byte{1}, &got), ErrCorrupt)
}
