package loadgen

import (
	"testing"
	"time"
)

// BenchmarkAppendBatch measures the client-side cost of one default-sized
// request body: the generator's share of the CPU in `contrail bench`.
func BenchmarkAppendBatch(b *testing.B) {
	m := NewModel(ModelConfig{Seed: 1})
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	buf := m.AppendBatch(nil, DefaultBatchSize, now)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendBatch(buf[:0], DefaultBatchSize, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/DefaultBatchSize, "ns/event")
}
