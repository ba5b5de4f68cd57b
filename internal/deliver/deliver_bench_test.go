package deliver

import (
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"lead":"l_0123456789","campaign":"welcome","step":3,"fields":{"email":"ann@example.org","score":42}}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sign(key, "0f1e2d3c4b5a69788796a5b4c3d2e1f0", 1767323045, body)
	}
}

func BenchmarkComposeEmail(b *testing.B) {
	j := emailJob("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
	date := time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := composeEmail(&j, date); err != nil {
			b.Fatal(err)
		}
	}
}
