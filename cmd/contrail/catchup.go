package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/loadgen"
)

// benchCatchup measures how fast a node catches up after an outage: it
// pauses processing (not collection), builds a backlog of N events,
// resumes, and reports the catch-up rate and the time back to real time.
func benchCatchup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench catchup", stderr)
	var c client
	c.register(fs)
	var o loadgen.Options
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "collector base URL")
	name := fs.String("tenant", "", "tenant to send as (its first write key)")
	fs.Int64Var(&o.Events, "events", 200000, "events in the backlog")
	fs.IntVar(&o.Concurrency, "concurrency", loadgen.DefaultConcurrency, "requests in flight at most while building the backlog")
	fs.IntVar(&o.BatchSize, "batch-size", loadgen.DefaultBatchSize, "events per request")
	fs.IntVar(&o.Visitors, "visitors", loadgen.DefaultVisitors, "size of the visitor pool")
	fs.Uint64Var(&o.Seed, "seed", 1, "traffic model seed")
	live := fs.Float64("live-rate", 0, "events/s of live traffic sent while the backlog drains (0: none)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up when not caught up after this long")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("bench catchup: --tenant is required")
	}
	if c.server == "" || c.server == "http://127.0.0.1:8080" {
		c.server = o.URL
	}
	t, key, err := benchTenant(ctx, &c, *name)
	if err != nil {
		return err
	}
	if o.WriteKey = key; o.WriteKey == "" {
		return fmt.Errorf("bench catchup: tenant %s has no write key", *name)
	}
	progress := func(format string, a ...any) {
		if !*quiet {
			fmt.Fprintf(stderr, format+"\n", a...)
		}
	}

	if err := c.do(ctx, "POST", "/api/v1/processing/pause", nil, nil); err != nil {
		return fmt.Errorf("pausing processing: %w", err)
	}
	resumed := false
	defer func() {
		if !resumed {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := c.do(rctx, "POST", "/api/v1/processing/resume", nil, nil); err != nil {
				fmt.Fprintf(stderr, "bench catchup: resuming processing: %v\n", err)
			}
		}
	}()
	before, err := catchupStatus(ctx, &c, t.ID)
	if err != nil {
		return err
	}
	progress("processing paused; building a backlog of %d events", o.Events)
	o.Duration = 0
	rep, err := loadgen.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("building the backlog: %w", err)
	}
	progress("backlog: %d events accepted in %s (%.0f ev/s)", rep.Accepted, rep.Elapsed.Round(time.Millisecond), rep.AcceptedPerSec)

	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan loadgen.Report, 1)
	if *live > 0 {
		lo := o
		lo.Events, lo.Rate, lo.Seed, lo.RunID = 0, *live, o.Seed+1, ""
		go func() {
			r, _ := loadgen.Run(liveCtx, lo)
			liveDone <- r
		}()
	} else {
		close(liveDone)
	}
	defer stopLive()

	start := time.Now()
	if err := c.do(ctx, "POST", "/api/v1/processing/resume", nil, nil); err != nil {
		return fmt.Errorf("resuming processing: %w", err)
	}
	resumed = true
	// Caught up: every backlog event applied by the visitor shards, and
	// no partition more than a message behind (the live traffic's).
	want := before.processed + float64(rep.Accepted)
	deadline := start.Add(*timeout)
	var caught time.Duration
	lastPrint, lastProcessed, peak := start, before.processed, 0.0
	for {
		st, err := catchupStatus(ctx, &c, t.ID)
		if err != nil {
			return err
		}
		now := time.Now()
		if now.Sub(lastPrint) >= time.Second {
			rate := (st.processed - lastProcessed) / now.Sub(lastPrint).Seconds()
			peak = max(peak, rate)
			progress("%6.1fs  %.0f of %d backlog events applied  %.0f ev/s",
				now.Sub(start).Seconds(), st.processed-before.processed, rep.Accepted, rate)
			lastPrint, lastProcessed = now, st.processed
		}
		if st.processed >= want && st.lag <= int64(st.partitions) && st.parked == 0 {
			caught = now.Sub(start)
			break
		}
		if now.After(deadline) {
			return fmt.Errorf("bench catchup: not caught up after %s: %d log messages behind", *timeout, st.lag)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopLive()
	liveRep := <-liveDone

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("backlog", "%d events built in %s (%.0f events/s accepted)", rep.Accepted, rep.Elapsed.Round(time.Millisecond), rep.AcceptedPerSec)
	row("caught up", "%s after resume", caught.Round(time.Millisecond))
	row("catch-up rate", "%.0f events/s (backlog events / time back to real time)", float64(rep.Accepted)/caught.Seconds())
	if peak > 0 {
		row("peak", "%.0f events/s in one second", peak)
	}
	if *live > 0 {
		row("live traffic", "%.0f events/s target, %d accepted during the catch-up", *live, liveRep.Accepted)
	}
	return tw.Flush()
}

// catchupState is what the catch-up watches: the tenant's events applied
// by the visitor shards, and the log messages not yet applied.
type catchupState struct {
	processed  float64
	lag        int64
	parked     int64
	partitions int
}

func catchupStatus(ctx context.Context, c *client, tenantID string) (catchupState, error) {
	var out struct {
		Partitions []api.PartitionStatus `json:"partitions"`
		Tenants    []api.TenantStatus    `json:"tenants"`
	}
	if err := c.do(ctx, "GET", "/api/v1/status", nil, &out); err != nil {
		return catchupState{}, err
	}
	if len(out.Partitions) == 0 {
		return catchupState{}, errors.New("bench catchup: the node runs no shards (--process=false)")
	}
	st := catchupState{partitions: len(out.Partitions)}
	for _, p := range out.Partitions {
		st.lag += int64(p.Lag)
		st.parked += int64(p.Parked)
	}
	for _, t := range out.Tenants {
		if t.ID != tenantID {
			continue
		}
		for _, s := range t.Stages {
			if strings.EqualFold(s.Stream, eventlog.StreamEvents) {
				st.processed = s.Processed + s.Dead
			}
		}
	}
	return st, nil
}
