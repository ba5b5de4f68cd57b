package collect

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/tenant"
)

// benchEvent is a realistic browser page call of about 600 bytes.
const benchEvent = `{"type":"page","messageId":"ajs-next-1700000000000-8d3c0f2e-1b7a-4c1d-9f0e-3a2b1c0d9e8f","anonymousId":"5c2b9a3e-7f41-4d2a-8e6b-1f0c9d8e7a6b","name":"Pricing","properties":{"path":"/pricing","referrer":"https://www.google.com/","search":"?utm_source=google&utm_medium=cpc","title":"Pricing - Acme","url":"https://acme.example/pricing?utm_source=google&utm_medium=cpc"},"context":{"ip":"203.0.113.42","locale":"en-US","page":{"path":"/pricing","referrer":"https://www.google.com/","title":"Pricing - Acme","url":"https://acme.example/pricing"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","campaign":{"source":"google","medium":"cpc"},"library":{"name":"analytics.js","version":"next-1.70.0"}},"timestamp":"2026-11-23T11:59:58.123Z","sentAt":"2026-11-23T11:59:58.200Z"}`

// BenchmarkDecodeEvent measures decode + validate of one event.
func BenchmarkDecodeEvent(b *testing.B) {
	raw := benchEvent
	in := input()
	var e event.Event
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if code, msg := decodeEvent(raw, in, &e); code != "" {
			b.Fatal(code, msg)
		}
	}
}

// BenchmarkDecodeEventBatchContext adds the merge of a batch-level context,
// as the Go SDK sends it.
func BenchmarkDecodeEventBatchContext(b *testing.B) {
	raw := benchEvent
	var e event.Event
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		in := input()
		in.batch = &batchDefaults{context: `{"library":{"name":"analytics-go","version":"3.0.0"}}`}
		if code, msg := decodeEvent(raw, in, &e); code != "" {
			b.Fatal(code, msg)
		}
	}
}

// BenchmarkFrameEvent measures encoding one event into a batch frame.
func BenchmarkFrameEvent(b *testing.B) {
	var e event.Event
	if code, _ := decodeEvent(benchEvent, input(), &e); code != "" {
		b.Fatal(code)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = event.AppendFrame(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

func benchBatch(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"batch":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(benchEvent)
	}
	buf.WriteString(`],"sentAt":"2026-11-23T11:59:58.300Z"}`)
	return buf.Bytes()
}

// BenchmarkHandleBatch measures a whole /v1/batch request of 100 events
// through the handler (auth, read, parse, validate, frame, group commit) with
// a log that acknowledges at once. It reports ns and allocations per event.
func BenchmarkHandleBatch(b *testing.B) {
	tn := &tenant.Tenant{ID: "tn_bench", Limits: tenant.DefaultLimits()}
	c, err := New(DefaultConfig(), Deps{Log: nopLog{}, Partitions: 16, Tenants: fakeTenants{"wk": tn}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	mux := http.NewServeMux()
	c.Register(mux)
	const n = 100
	body := benchBatch(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/v1/batch", bytes.NewReader(body))
			req.SetBasicAuth("wk", "")
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			if w.Code != 200 {
				panic(fmt.Sprint(w.Code, w.Body.String()))
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

type nopLog struct{}

func (nopLog) Append(context.Context, int, string, []byte) (uint64, error) { return 1, nil }
