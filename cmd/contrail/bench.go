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
	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/loadgen"
)

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "catchup" {
		return benchCatchup(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "ingest" {
		return errors.New("usage: contrail bench ingest|catchup [flags]  (see contrail bench ingest -h)")
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
	withCampaign := fs.Bool("campaign", false, "before the load, publish in --tenant a campaign that every page view of a known lead triggers "+
		"(change_score +1, add_to_list bench, call_webhook to a receiver this command runs on 127.0.0.1, remove_from_list bench), and pause it after; "+
		"the node must run with --deliver-allow-private-networks")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *withCampaign && *name == "" {
		return errors.New("bench ingest: --campaign needs --tenant")
	}
	if *name != "" {
		if c.server == "" || c.server == "http://127.0.0.1:8080" {
			c.server = o.URL
		}
		t, key, err := benchTenant(ctx, &c, *name)
		if err != nil {
			return err
		}
		o.Tenant = t.ID // the metrics label tenants by id
		if o.WriteKey == "" {
			o.WriteKey = key
		}
	}
	if o.WriteKey == "" {
		return errors.New("bench ingest: --write-key or --tenant is required")
	}
	if *withCampaign {
		recv, err := loadgen.StartReceiver("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := recv.Close(ctx); err != nil {
				fmt.Fprintf(stderr, "bench ingest: stopping the webhook receiver: %v\n", err)
			}
		}()
		id, err := publishBenchCampaign(ctx, &c, o.Tenant, recv.URL()+"/hook")
		if err != nil {
			return err
		}
		defer pauseBenchCampaign(context.WithoutCancel(ctx), &c, o.Tenant, id, stderr)
		o.Receiver = recv
	}
	switch o.MetricsURL {
	case "":
		o.MetricsURL = strings.TrimRight(o.URL, "/") + "/metrics"
	case "none":
		o.MetricsURL = ""
	}
	if !*quiet {
		o.Progress = func(s loadgen.Snapshot) {
			if s.Settling {
				fmt.Fprintf(stderr, "%6.1fs  load over; waiting for campaign runs and webhooks\n", s.Elapsed.Seconds())
				return
			}
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

// benchCampaign is the campaign `bench ingest --campaign` publishes: every
// page view of a known lead (about a tenth of the model's visitors) runs
// three internal steps and one webhook to hook.
func benchCampaign(hook string, now time.Time) campaign.Spec {
	return campaign.Spec{
		Name:          "contrail bench " + now.UTC().Format("2006-01-02T15:04:05.000Z"),
		Description:   "Published by contrail bench ingest --campaign for the length of a run, then paused.",
		Triggers:      []campaign.Trigger{{Type: campaign.TrigVisitsWebPage}},
		Qualification: campaign.QualEveryTime,
		Flow: []campaign.Step{
			{Type: campaign.StepChangeScore, Change: 1},
			{Type: campaign.StepAddToList, List: "bench"},
			{Type: campaign.StepCallWebhook, URL: hook, Body: `{"lead":"{{lead.id}}","path":"{{event.properties.path}}"}`},
			{Type: campaign.StepRemoveFromList, List: "bench"},
		},
	}
}

// publishBenchCampaign creates and publishes benchCampaign in tenant (an
// id) and returns its id.
func publishBenchCampaign(ctx context.Context, c *client, tenant, hook string) (string, error) {
	q := "?tenant=" + url.QueryEscape(tenant)
	var created campaign.Campaign
	if err := c.do(ctx, "POST", "/api/v1/campaigns"+q, benchCampaign(hook, time.Now()), &created); err != nil {
		return "", fmt.Errorf("creating the bench campaign: %w", err)
	}
	if err := c.do(ctx, "POST", "/api/v1/campaigns/"+url.PathEscape(created.ID)+"/publish"+q, nil, nil); err != nil {
		return "", fmt.Errorf("publishing the bench campaign (does the node run with --deliver-allow-private-networks?): %w", err)
	}
	return created.ID, nil
}

// pauseBenchCampaign pauses the bench campaign after the run, so that it
// takes no more leads once its receiver is gone. A failure is only told.
func pauseBenchCampaign(ctx context.Context, c *client, tenant, id string, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	path := "/api/v1/campaigns/" + url.PathEscape(id) + "/pause?tenant=" + url.QueryEscape(tenant)
	if err := c.do(ctx, "POST", path, nil, nil); err != nil {
		fmt.Fprintf(stderr, "bench ingest: pausing campaign %s: %v\n", id, err)
	}
}

// benchTenant looks a tenant up through the admin API and returns it with
// its first write key ("" when it has none).
func benchTenant(ctx context.Context, c *client, name string) (api.TenantView, string, error) {
	var t api.TenantView
	if err := c.do(ctx, "GET", "/api/v1/tenants/"+url.PathEscape(name), nil, &t); err != nil {
		return t, "", err
	}
	for _, k := range t.Keys {
		if k.Kind == "write" && k.Secret != "" {
			return t, k.Secret, nil
		}
	}
	return t, "", nil
}
