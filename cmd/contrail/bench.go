package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/loadgen"
)

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "ingest" {
		return errors.New("usage: contrail bench ingest [flags]  (see contrail bench ingest -h)")
	}
	fs := newFlagSet("bench ingest", stderr)
	var o loadgen.Options
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "collector base URL")
	fs.StringVar(&o.WriteKey, "write-key", "", "tenant write key (or --tenant to look it up through the admin API)")
	name := fs.String("tenant", "", "tenant whose first write key to use and whose events to count as processed, looked up with --server/--token")
	var c client
	c.register(fs)
	fs.Float64Var(&o.Rate, "rate", 0, "target events/s, open loop (0: as fast as possible, closed loop)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the run")
	fs.IntVar(&o.Concurrency, "concurrency", loadgen.DefaultConcurrency, "requests in flight at most")
	fs.IntVar(&o.BatchSize, "batch-size", loadgen.DefaultBatchSize, "events per request")
	fs.IntVar(&o.Visitors, "visitors", loadgen.DefaultVisitors, "size of the visitor pool")
	fs.Uint64Var(&o.Seed, "seed", 1, "traffic model seed")
	fs.BoolVar(&o.Gzip, "gzip", false, "gzip request bodies")
	fs.StringVar(&o.MetricsURL, "metrics-url", "", "server /metrics for CPU cost and processing (default: <url>/metrics; \"none\" to skip)")
	fs.DurationVar(&o.Drain, "drain", loadgen.DefaultDrain, "after the load, wait at most this long for the shards to process what was accepted (0: don't wait)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name != "" {
		if c.server == "" || c.server == "http://127.0.0.1:8080" {
			c.server = o.URL
		}
		var t api.TenantView
		if err := c.do(ctx, "GET", "/api/v1/tenants/"+url.PathEscape(*name), nil, &t); err != nil {
			return err
		}
		o.Tenant = t.ID // the metrics label tenants by id
		for _, k := range t.Keys {
			if o.WriteKey == "" && k.Kind == "write" && k.Secret != "" {
				o.WriteKey = k.Secret
			}
		}
	}
	if o.WriteKey == "" {
		return errors.New("bench ingest: --write-key or --tenant is required")
	}
	switch o.MetricsURL {
	case "":
		o.MetricsURL = strings.TrimRight(o.URL, "/") + "/metrics"
	case "none":
		o.MetricsURL = ""
	}
	if !*quiet {
		o.Progress = func(s loadgen.Snapshot) {
			if s.Draining {
				fmt.Fprintf(stderr, "%6.1fs  load over; %d events not processed yet\n", s.Elapsed.Seconds(), s.Backlog)
				return
			}
			fmt.Fprintf(stderr, "%6.1fs  sent %d  accepted %d  %.0f ev/s  failed requests %d\n",
				s.Elapsed.Seconds(), s.Sent, s.Accepted, s.AcceptedPerSec, s.Failed)
		}
	}
	rep, err := loadgen.Run(ctx, o)
	if werr := rep.WriteText(stdout); werr != nil && err == nil {
		err = werr
	}
	return err
}
