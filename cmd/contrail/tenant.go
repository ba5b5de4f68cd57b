package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/tenant"
)

func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "tenant", "usage: contrail tenant create|list|keys|limits|settings|pause|resume ...", []subcommand{
		{"create", tenantCreate}, {"list", tenantList}, {"keys", tenantKeys}, {"settings", tenantSettings}, {"limits", tenantLimits},
		{"pause", tenantPause("pause")}, {"resume", tenantPause("resume")},
	}, args, stdout, stderr)
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("tenant create acme --daily-quota 5" and the reverse).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// limitFlags binds limits to flags and remembers which were set.
type limitFlags struct {
	l   tenant.Limits
	set map[string]any
}

func (lf *limitFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&lf.l.EventsPerSecond, "events-per-second", 0, "sustained events/s admitted (0: unlimited)")
	fs.IntVar(&lf.l.Burst, "burst", 0, "events admitted in a burst above the rate")
	fs.IntVar(&lf.l.MaxEventBytes, "max-event-bytes", 0, "largest event (default 32 KiB)")
	fs.IntVar(&lf.l.MaxBatchBytes, "max-batch-bytes", 0, "largest request body (default 500 KiB)")
	fs.IntVar(&lf.l.MaxBatchEvents, "max-batch-events", 0, "most events per request (default 2500)")
	fs.Int64Var(&lf.l.DailyQuota, "daily-quota", 0, "events accepted per UTC day (0: unlimited)")
	fs.IntVar(&lf.l.Weight, "weight", 0, "share of processing when tenants compete (1-1000, default 1)")
	fs.IntVar(&lf.l.WebhookConcurrency, "webhook-concurrency", 0, "webhook calls in flight per node (0: the node's default)")
	fs.IntVar(&lf.l.MaxActiveCampaigns, "max-active-campaigns", 0, "active campaigns at most (0: unlimited)")
}

// patch returns the limits given on the command line as a JSON patch.
func (lf *limitFlags) patch(fs *flag.FlagSet) map[string]any {
	all := map[string]any{}
	b, _ := json.Marshal(lf.l)
	_ = json.Unmarshal(b, &all)
	out := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		key := map[string]string{
			"events-per-second": "events_per_second", "burst": "burst", "max-event-bytes": "max_event_bytes",
			"max-batch-bytes": "max_batch_bytes", "max-batch-events": "max_batch_events", "daily-quota": "daily_quota",
			"weight": "weight", "webhook-concurrency": "webhook_concurrency", "max-active-campaigns": "max_active_campaigns",
		}[f.Name]
		if key != "" {
			out[key] = all[key]
		}
	})
	return out
}

func tenantCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenant create", stderr)
	var c client
	c.register(fs)
	var lf limitFlags
	lf.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: contrail tenant create NAME [limit flags]")
	}
	var out struct {
		ID       string        `json:"id"`
		Name     string        `json:"name"`
		WriteKey string        `json:"write_key"`
		APIKey   string        `json:"api_key"`
		Limits   tenant.Limits `json:"limits"`
	}
	if err := c.do(ctx, "POST", "/api/v1/tenants", map[string]any{"name": pos[0], "limits": lf.patch(fs)}, &out); err != nil {
		return err
	}
	return printJSON(stdout, out)
}

func tenantList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenant list", stderr)
	var c client
	c.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Tenants []api.TenantView `json:"tenants"`
	}
	if err := c.do(ctx, "GET", "/api/v1/tenants", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED\tEVENTS/S\tDAILY QUOTA\tWEIGHT\tKEYS\tSTATE")
	for _, t := range out.Tenants {
		state := "active"
		if t.Paused {
			state = "paused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", t.ID, t.Name, t.CreatedAt.Format(time.DateTime),
			unlimited(t.Limits.EventsPerSecond), unlimited(float64(t.Limits.DailyQuota)), max(t.Limits.Weight, 1), len(t.Keys), state)
	}
	return tw.Flush()
}

func unlimited(v float64) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprint(v)
}

func tenantKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenant keys", stderr)
	var c client
	c.register(fs)
	create := fs.String("create", "", "create a key of this kind: write or api")
	revoke := fs.String("revoke", "", "revoke the key with this id")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: contrail tenant keys NAME [--create write|api] [--revoke KEY_ID]")
	}
	base := "/api/v1/tenants/" + url.PathEscape(pos[0]) + "/keys"
	switch {
	case *create != "":
		var out map[string]any
		if err := c.do(ctx, "POST", base, map[string]string{"kind": *create}, &out); err != nil {
			return err
		}
		return printJSON(stdout, out)
	case *revoke != "":
		if err := c.do(ctx, "DELETE", base+"/"+url.PathEscape(*revoke), nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", *revoke)
		return nil
	}
	var out struct {
		Keys []api.KeyView `json:"keys"`
	}
	if err := c.do(ctx, "GET", base, nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tKEY\tCREATED")
	for _, k := range out.Keys {
		shown := k.Secret
		if shown == "" {
			shown = k.Prefix + "… (secret shown only at creation)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Kind, shown, k.CreatedAt.Format(time.DateTime))
	}
	return tw.Flush()
}

func tenantLimits(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenant limits", stderr)
	var c client
	c.register(fs)
	var lf limitFlags
	lf.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: contrail tenant limits NAME [--events-per-second N] [--burst N] [--max-event-bytes N] [--max-batch-bytes N] [--max-batch-events N] [--daily-quota N]")
	}
	var out tenant.Limits
	return showOrPatch(ctx, &c, "/api/v1/tenants/"+url.PathEscape(pos[0])+"/limits", lf.patch(fs), &out, stdout)
}

// showOrPatch prints the resource at path after a PATCH with patch, or
// as it is when there is nothing to change.
func showOrPatch(ctx context.Context, c *client, path string, patch map[string]any, out any, stdout io.Writer) error {
	var err error
	if len(patch) > 0 {
		err = c.do(ctx, "PATCH", path, patch, out)
	} else {
		err = c.do(ctx, "GET", path, nil, out)
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, out)
}

// tenantSettings shows a tenant's processing settings, or changes those
// given as flags (a PATCH: the others keep their values).
func tenantSettings(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenant settings", stderr)
	var c client
	c.register(fs)
	ipPolicy := fs.String("ip-policy", "", "keep, anonymize (zero the last IPv4 octet, last 80 IPv6 bits) or drop")
	timeout := fs.String("session-timeout", "", "idle time that ends a session, e.g. 30m")
	maxLen := fs.String("session-max-length", "", "longest session, e.g. 24h")
	split := fs.String("split-session-on-campaign", "", "true or false: a new UTM campaign starts a new session")
	histLimit := fs.Int("history-limit", 0, "anonymous events kept per visitor for promotion")
	histWindow := fs.String("history-window", "", "how far back the history handed to a new lead goes, e.g. 30d")
	retention := fs.String("visitor-retention", "", "drop a visitor's state after this long without activity, e.g. 30d")
	blocked := fs.String("blocked-ids", "", "comma-separated ids to refuse, in addition to the defaults (\"-\" for none)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: contrail tenant settings NAME [--ip-policy keep|anonymize|drop] [--session-timeout D] [--session-max-length D] [--split-session-on-campaign true|false] [--history-limit N] [--history-window D] [--visitor-retention D] [--blocked-ids a,b]")
	}
	patch := map[string]any{}
	var badFlag error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "ip-policy":
			patch["ip_policy"] = *ipPolicy
		case "session-timeout":
			patch["session_timeout"] = *timeout
		case "session-max-length":
			patch["session_max_length"] = *maxLen
		case "split-session-on-campaign":
			if *split != "true" && *split != "false" {
				badFlag = fmt.Errorf("--split-session-on-campaign %q: want true or false", *split)
			}
			patch["split_session_on_campaign"] = *split == "true"
		case "history-limit":
			patch["history_limit"] = *histLimit
		case "history-window":
			patch["history_window"] = *histWindow
		case "visitor-retention":
			patch["visitor_retention"] = *retention
		case "blocked-ids":
			ids := []string{}
			if *blocked != "-" {
				for _, id := range strings.Split(*blocked, ",") {
					if id = strings.TrimSpace(id); id != "" {
						ids = append(ids, id)
					}
				}
			}
			patch["blocked_ids"] = ids
		}
	})
	if badFlag != nil {
		return badFlag
	}
	var out tenant.Settings
	return showOrPatch(ctx, &c, "/api/v1/tenants/"+url.PathEscape(pos[0])+"/settings", patch, &out, stdout)
}

// tenantPause pauses or resumes a tenant: paused, its events are kept in
// PARKED and replayed in order on resume.
func tenantPause(action string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet("tenant "+action, stderr)
		var c client
		c.register(fs)
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("usage: contrail tenant %s NAME", action)
		}
		var t api.TenantView
		if err := c.do(ctx, "POST", "/api/v1/tenants/"+url.PathEscape(pos[0])+"/"+action, nil, &t); err != nil {
			return err
		}
		if t.Paused {
			fmt.Fprintf(stdout, "%s (%s) paused: its events are parked until it is resumed\n", t.Name, t.ID)
		} else {
			fmt.Fprintf(stdout, "%s (%s) resumed: its parked events are replayed first, in order\n", t.Name, t.ID)
		}
		return nil
	}
}
