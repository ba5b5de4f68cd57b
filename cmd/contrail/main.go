// Command contrail runs and manages Contrail nodes.
//
//	contrail serve                 run a node (embedded NATS JetStream, no other service)
//	contrail tenant create NAME    create a tenant and print its keys
//	contrail tenant list|keys|limits
//	contrail tail --tenant NAME    follow a tenant's accepted events
//	contrail status                shards' position and lag per partition
//	contrail dead list|replay      inspect and replay events that processors rejected
//	contrail report summary|top|timeseries|goals --tenant NAME
//	                               a tenant's web reports
//	contrail campaign apply|list|show|runs|pause|resume --tenant NAME
//	                               a tenant's trigger campaigns
//	contrail bench ingest          drive a node with realistic Segment traffic
//	contrail version
//
// The management commands talk to a running node over its admin API, as
// kubectl talks to a cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `contrail: real-time event tracking and trigger campaigns

Usage:
  contrail serve [flags]                 run a node (see contrail serve -h)
  contrail tenant create NAME [limits]   create a tenant; prints {"id","name","write_key","api_key"}
  contrail tenant list                   list tenants
  contrail tenant keys NAME [--create write|api] [--revoke KEY_ID]
  contrail tenant limits NAME [--events-per-second N ...]
  contrail tenant settings NAME [--ip-policy anonymize] [--session-timeout 30m] [--visitor-retention 30d] ...
  contrail tail --tenant NAME [--from-start] [--type TYPE]
  contrail status [--json]               progress and lag of the node's shards per partition
  contrail dead list [--tenant NAME] [--after SEQ] [--limit N] [--json]
                                         events that processors rejected (the DEAD stream)
  contrail dead replay --seq N [--seq M ...] | --tenant NAME --all
                                         append dead events to the log again and drop them from DEAD
  contrail report summary|top|timeseries|goals --tenant NAME [--from RFC3339] [--to RFC3339] [--json]
                                         a tenant's web reports (default: the last 24 hours);
                                         summary [--filter dim:value], top [--dimension page]
                                         [--limit 10] [--filter dim:value], timeseries [--metric
                                         pageviews] [--interval hour] [--timezone ZONE], goals
  contrail campaign apply -f campaign.yaml --tenant NAME [--draft]
                                         create the campaign of a YAML or JSON file, or replace
                                         the draft of the one with its name, then publish it
  contrail campaign list|show ID|runs ID|pause ID|resume ID --tenant NAME
                                         campaigns, a campaign's spec and counters, its runs
                                         [--lead L] [--status S] [--steps]; --api-key KEY
                                         instead of the admin token and --tenant
  contrail bench ingest [flags]          load-test a node's collector
  contrail version

Management commands take --server (default http://127.0.0.1:8080, env CONTRAIL_SERVER)
and --token (env CONTRAIL_ADMIN_TOKEN, else read from <--data-dir>/admin-token).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "contrail:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "tenant":
		return tenantCmd(ctx, rest, stdout, stderr)
	case "tail":
		return tail(ctx, rest, stdout, stderr)
	case "status":
		return status(ctx, rest, stdout, stderr)
	case "dead":
		return deadCmd(ctx, rest, stdout, stderr)
	case "report":
		return reportCmd(ctx, rest, stdout, stderr)
	case "campaign":
		return campaignCmd(ctx, rest, stdout, stderr)
	case "bench":
		return bench(ctx, rest, stdout, stderr)
	case "version":
		return version(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// subcommand is one command of a group such as "contrail tenant".
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// dispatch runs the command of group that args[0] names, with the rest of
// args; usage is the error without one.
func dispatch(ctx context.Context, group, usage string, cmds []subcommand, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	names := make([]string, 0, len(cmds))
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
		names = append(names, c.name)
	}
	return fmt.Errorf("unknown %s command %q: want %s", group, args[0], strings.Join(names, ", "))
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("contrail "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
