package event

import "testing"

// BenchmarkEncodeBatch measures building a log message of 100 events.
func BenchmarkEncodeBatch(b *testing.B) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sampleEvent()
	}
	size := len(EncodeBatch(evs))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		EncodeBatch(evs)
	}
}

// BenchmarkDecodeBatch measures reading a log message of 100 events without
// copying them (EachEvent), as processors will.
func BenchmarkDecodeBatch(b *testing.B) {
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = sampleEvent()
	}
	msg := EncodeBatch(evs)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := EachEvent(msg, func(*Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
