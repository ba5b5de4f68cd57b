package report_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// TestOnCore: work under a querier's limit never runs on more goroutines
// at once than the limit, and a caller that gives up while waiting for a
// core does not run.
func TestOnCore(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			q := report.NewQuerier(nil, 1, nil, 0)
			q.Limit(limit)
			var in, most atomic.Int32
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for range 20 {
						err := report.OnCore(context.Background(), q, func() error {
							n := in.Add(1)
							for {
								m := most.Load()
								if n <= m || most.CompareAndSwap(m, n) {
									break
								}
							}
							time.Sleep(100 * time.Microsecond) // let the others try
							in.Add(-1)
							return nil
						})
						require.NoError(t, err)
					}
				})
			}
			wg.Wait()
			require.LessOrEqual(t, int(most.Load()), limit)
			require.Positive(t, most.Load())
		})
	}

	q := report.NewQuerier(nil, 1, nil, 0)
	q.Limit(1)
	hold, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = report.OnCore(context.Background(), q, func() error { close(hold); <-release; return nil })
	}()
	<-hold
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := report.OnCore(ctx, q, func() error { ran = true; return nil })
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, ran, "no core was free: fn must not run")
	close(release)
}

// TestQueriesOnOneCore: with every query limited to one core, many
// queries at once, each reading partitions and merging buckets under the
// limit, all finish (no query holds a core while it waits for another)
// and answer as an unlimited querier does.
func TestQueriesOnOneCore(t *testing.T) {
	pl := newPipeline(t, 4, tenant.Settings{})
	var evs []event.Event
	for i := range 2400 { // two hours and more, so that hours compact and merge
		evs = append(evs, page(fmt.Sprintf("v%d", i%37), fmt.Sprintf("/p%d", i%11), time.Duration(i)*4*time.Second, nil))
	}
	pl.Run(evs, 50)
	r := report.Range{From: t0, To: t0.Add(3 * time.Hour)}
	limited := pl.Querier()
	limited.Limit(1)
	plain := pl.QuerierCache(0)

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, name := range report.DimNames() {
		d, _ := report.ParseDim(name)
		wg.Go(func() {
			if _, err := limited.Top(ctx, testTenant, d, r, nil, 10); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if _, err := limited.Summary(ctx, testTenant, r, nil); err != nil {
				errs <- err
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a liveness bound: they take a second or two
		t.Fatal("queries under a limit of one core did not finish: one holds a core while it waits for another")
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, limited.CacheStats().Entries, "the test merges buckets under the limit")
	sameReports(t, limited, plain, r)
}
