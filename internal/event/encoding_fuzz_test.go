package event

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzRoundTrip encodes events built from fuzzed fields and checks that they
// decode to the same events.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(1), "tn", "m", "a", "u", "ev", int64(1_700_000_000_000_000), int64(-5), int64(3), []byte(`{"a":1}`), 2)
	f.Add(uint8(6), "", "", "", "", "", int64(0), int64(0), int64(0), []byte(nil), 1)
	f.Fuzz(func(t *testing.T, typ uint8, tenant, mid, anon, user, name string, recv, d1, d2 int64, blob []byte, n int) {
		typ = typ%uint8(typeEnd-1) + 1
		n = int(uint(n)%5) + 1
		recv %= 1 << 52 // stay inside time.UnixMicro's range
		d1 %= 1 << 40
		d2 %= 1 << 40
		in := make([]Event, n)
		for i := range in {
			e := Event{
				Tenant: tenant, Type: Type(typ), MessageID: mid, AnonymousID: anon, UserID: user,
				Event: name, Name: name, PreviousID: user, GroupID: anon, IP: mid,
				ReceivedAt: time.UnixMicro(recv).UTC(),
				Timestamp:  time.UnixMicro(recv + d1).UTC(),
			}
			if i%2 == 0 {
				e.OriginalTimestamp = time.UnixMicro(recv + d2).UTC()
				e.SentAt = time.UnixMicro(recv - d2).UTC()
			}
			if len(blob) > 0 {
				e.Properties, e.Traits, e.Context, e.Integrations = blob, blob, json.RawMessage(blob), blob
			}
			in[i] = e
		}
		out, err := DecodeBatch(EncodeBatch(in))
		require.NoError(t, err)
		require.Equal(t, in, out)
	})
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must return an error or
// events, never panic, and what it decodes must encode back to the input.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeBatch([]Event{sampleEvent()}))
	f.Add([]byte{Version, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		evs, err := DecodeBatch(msg)
		if err != nil {
			return
		}
		for i := range evs { // nil and empty blobs encode alike
			for _, b := range []*json.RawMessage{&evs[i].Properties, &evs[i].Traits, &evs[i].Context, &evs[i].Integrations} {
				if len(*b) == 0 {
					*b = nil
				}
			}
		}
		again, err := DecodeBatch(EncodeBatch(evs))
		require.NoError(t, err)
		require.Equal(t, evs, again)
	})
}
