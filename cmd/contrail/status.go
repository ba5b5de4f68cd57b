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
		Partitions []api.PartitionStatus `json:"partitions"`
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
	fmt.Fprintln(tw, "STREAM\tPARTITION\tPOSITION\tLAST\tLAG\t")
	var lag uint64
	for _, p := range out.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", p.Stream, p.Partition, p.Position, p.Last, p.Lag)
		lag += p.Lag
	}
	fmt.Fprintf(tw, "total\t\t\t\t%d\t\n", lag)
	return tw.Flush()
}
