package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/contrailhq/contrail/internal/api"
)

// status prints the progress and lag of the node's shards.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	var c client
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Partitions       []api.PartitionStatus `json:"partitions"`
		Tenants          []api.TenantStatus    `json:"tenants"`
		ProcessingPaused bool                  `json:"processing_paused"`
	}
	if err := c.do(ctx, "GET", "/api/v1/status", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	if len(out.Partitions) == 0 {
		fmt.Fprintln(stdout, "no shards run on this node (started with --process=false)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STREAM\tPARTITION\tPOSITION\tLAST\tLAG\tPARKED\t")
	var lag, parked uint64
	for _, p := range out.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", p.Stream, p.Partition, p.Position, p.Last, p.Lag, p.Parked)
		lag += p.Lag
		parked += p.Parked
	}
	fmt.Fprintf(tw, "total\t\t\t\t%d\t%d\t\n", lag, parked)
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.ProcessingPaused {
		fmt.Fprintln(stdout, "\nprocessing is PAUSED on this node (POST /api/v1/processing/resume)")
	}
	if len(out.Tenants) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TENANT\tSTATE\tACCEPTED\tREJECTED\tSTREAM\tPROCESSED\tPARKED\tDEAD\tLAG EVENTS\tLAG S\tP99 S\tTRIGGERS\tWEBHOOK FAILURES\t")
	for _, t := range out.Tenants {
		state := "active"
		if t.Paused {
			state = "paused"
		}
		rejected := 0.0
		for _, v := range t.Rejected {
			rejected += v
		}
		for i, s := range t.Stages {
			name, st, acc, rej, trig, fail := t.Name, state, fmt.Sprint(t.Accepted), fmt.Sprint(rejected), fmt.Sprint(t.TriggersFired), fmt.Sprint(t.WebhookFailures)
			if i > 0 {
				name, st, acc, rej, trig, fail = "", "", "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\t%.3f\t%s\t%s\t\n", name, st, acc, rej,
				s.Stream, s.Processed, s.Parked, s.Dead, s.LagEvents, s.LagSeconds, s.P99Seconds, trig, fail)
		}
	}
	return tw.Flush()
}
