package eventlog_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/eventlog"
)

// BenchmarkAppend measures one acknowledged append (publish, store, ack) on
// an embedded server, in the two durability modes of DESIGN.md §5. The
// parallel variants (8 appenders per core) show what group commit can expect
// from several partitions publishing at once.
func BenchmarkAppend(b *testing.B) {
	modes := []struct {
		name string
		opts eventlog.EmbeddedOptions
	}{
		{"default", eventlog.EmbeddedOptions{SyncInterval: 100 * time.Millisecond}},
		{"strict", eventlog.EmbeddedOptions{SyncAlways: true}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			for _, size := range []int{1 << 10, 256 << 10} {
				b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
					benchAppend(b, mode.opts, size, false)
				})
				b.Run(fmt.Sprintf("size=%dKiB/parallel", size>>10), func(b *testing.B) {
					benchAppend(b, mode.opts, size, true)
				})
			}
		})
	}
}

func benchAppend(b *testing.B, o eventlog.EmbeddedOptions, size int, parallel bool) {
	n := startNode(b, o)
	ctx := context.Background()
	const partitions = 16
	// Bound the disk a long run may fill; old messages are discarded.
	l, err := eventlog.Open(ctx, n.nc, eventlog.Options{Partitions: partitions, MaxBytes: 512 << 20, DuplicateWindow: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	var seq atomic.Uint64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := 0; b.Loop(); i++ {
			if _, err := l.Append(ctx, i%partitions, "b-"+strconv.Itoa(i), data); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(8) // like several partitions of group commit publishing at once
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			if _, err := l.Append(ctx, int(i%partitions), "b-"+strconv.FormatUint(i, 10), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
