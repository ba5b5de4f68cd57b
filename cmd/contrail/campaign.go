package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/deliver"
)

const campaignUsage = "usage: contrail campaign apply|list|show|runs|pause|resume ... --tenant NAME"

// campaignCmd manages a tenant's trigger campaigns.
func campaignCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "campaign", campaignUsage, []subcommand{
		{"apply", campaignApply}, {"list", campaignList}, {"show", campaignShow}, {"runs", campaignRuns},
		{"pause", campaignStatus("pause")}, {"resume", campaignStatus("resume")},
	}, args, stdout, stderr)
}

// campaignFlags are the flags every campaign command takes: the campaign
// endpoints need a tenant, named with the admin token or implied by a
// tenant API key.
type campaignFlags struct {
	c      client
	tenant string
	apiKey string
	asJSON bool
}

func (cf *campaignFlags) register(fs *flag.FlagSet) {
	cf.c.register(fs)
	fs.StringVar(&cf.tenant, "tenant", os.Getenv("CONTRAIL_TENANT"), "tenant id or name (required with the admin token; env CONTRAIL_TENANT)")
	fs.StringVar(&cf.apiKey, "api-key", os.Getenv("CONTRAIL_API_KEY"), "a tenant API key to use instead of the admin token (env CONTRAIL_API_KEY)")
	fs.BoolVar(&cf.asJSON, "json", false, "print the API's JSON answer")
}

// parse parses args and returns the positional ones, of which there must
// be want.
func (cf *campaignFlags) parse(fs *flag.FlagSet, args []string, want int, usage string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, errors.New(usage)
	}
	if cf.apiKey != "" {
		cf.c.token = cf.apiKey
	} else if cf.tenant == "" {
		return nil, errors.New(usage + " (--tenant is required with the admin token)")
	}
	return pos, nil
}

// path returns the API path of endpoint (below /api/v1/campaigns) with
// the tenant and query.
func (cf *campaignFlags) path(endpoint string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	if cf.tenant != "" && cf.apiKey == "" {
		q.Set("tenant", cf.tenant)
	}
	p := "/api/v1/campaigns" + endpoint
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// campaignApply creates the campaign of a file, or replaces the draft of
// the tenant's campaign of the same name, then publishes it unless
// --draft. Applying an unchanged, published campaign does nothing.
func campaignApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("campaign apply", stderr)
	var cf campaignFlags
	cf.register(fs)
	file := fs.String("f", "", "the campaign, a YAML or JSON file")
	draft := fs.Bool("draft", false, "store the draft without publishing it")
	if _, err := cf.parse(fs, args, 0, "usage: contrail campaign apply -f campaign.yaml --tenant NAME [--draft]"); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("usage: contrail campaign apply -f campaign.yaml --tenant NAME [--draft]")
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	spec, err := campaign.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, describe(err))
	}
	var list struct {
		Campaigns []campaign.Campaign `json:"campaigns"`
	}
	if err := cf.c.do(ctx, "GET", cf.path("", nil), nil, &list); err != nil {
		return err
	}
	var c campaign.Campaign
	var done []string
	found := false
	for _, x := range list.Campaigns {
		if strings.EqualFold(x.Name, spec.Name) {
			c, found = x, true
			break
		}
	}
	switch {
	case !found:
		if err := cf.c.do(ctx, "POST", cf.path("", nil), spec, &c); err != nil {
			return describe(err)
		}
		done = append(done, "created")
	case !sameSpec(c.Spec, spec):
		if err := cf.c.do(ctx, "PUT", cf.path("/"+url.PathEscape(c.ID), nil), spec, &c); err != nil {
			return describe(err)
		}
		done = append(done, "replaced")
	case *draft || c.Version > 0 && !c.Unpublished:
		done = append(done, "unchanged")
		*draft = true // nothing to publish
	}
	if !*draft {
		if err := cf.c.do(ctx, "POST", cf.path("/"+url.PathEscape(c.ID)+"/publish", nil), nil, &c); err != nil {
			return describe(err)
		}
		done = append(done, "published")
	}
	if cf.asJSON {
		return printJSON(stdout, c)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tVERSION\tSTATUS\tDONE")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", c.ID, c.Name, c.Version, c.Status, strings.Join(done, ", "))
	return tw.Flush()
}

// sameSpec reports whether two specs are the same campaign.
func sameSpec(a, b campaign.Spec) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// describe puts each problem of an invalid campaign on a line of its own.
func describe(err error) error {
	ve, ok := errors.AsType[*campaign.ValidationError](err)
	if !ok {
		return err
	}
	var b strings.Builder
	b.WriteString("invalid campaign:")
	for _, p := range ve.Problems {
		b.WriteString("\n  " + p.Error())
	}
	return errors.New(b.String())
}

func campaignList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("campaign list", stderr)
	var cf campaignFlags
	cf.register(fs)
	if _, err := cf.parse(fs, args, 0, "usage: contrail campaign list --tenant NAME [--json]"); err != nil {
		return err
	}
	var out struct {
		Campaigns []campaign.Campaign `json:"campaigns"`
	}
	if err := cf.c.do(ctx, "GET", cf.path("", nil), nil, &out); err != nil {
		return err
	}
	if cf.asJSON {
		return printJSON(stdout, out)
	}
	if len(out.Campaigns) == 0 {
		fmt.Fprintln(stdout, "no campaigns: create one with contrail campaign apply -f campaign.yaml")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tVERSION\tDRAFT\tUPDATED")
	for _, c := range out.Campaigns {
		draft := "-"
		if c.Unpublished {
			draft = "unpublished changes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", c.ID, shorten(c.Name, 60), c.Status, c.Version, draft, c.UpdatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// campaignShow prints a campaign's draft as YAML and its counters per step.
func campaignShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("campaign show", stderr)
	var cf campaignFlags
	cf.register(fs)
	pos, err := cf.parse(fs, args, 1, "usage: contrail campaign show ID --tenant NAME [--json]")
	if err != nil {
		return err
	}
	base := "/" + url.PathEscape(pos[0])
	var c campaign.Campaign
	if err := cf.c.do(ctx, "GET", cf.path(base, nil), nil, &c); err != nil {
		return err
	}
	var stats *api.StatsView
	var s api.StatsView
	statsErr := cf.c.do(ctx, "GET", cf.path(base+"/stats", nil), nil, &s)
	if statsErr == nil {
		stats = &s
	}
	if cf.asJSON {
		return printJSON(stdout, map[string]any{"campaign": c, "stats": stats})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", c.ID)
	fmt.Fprintf(tw, "name\t%s\n", c.Name)
	fmt.Fprintf(tw, "status\t%s\n", c.Status)
	version := fmt.Sprint(c.Version)
	if c.Unpublished && c.Version > 0 {
		version += " (the draft has unpublished changes)"
	}
	fmt.Fprintf(tw, "version\t%s\n", version)
	if c.PublishedAt != nil {
		fmt.Fprintf(tw, "published\t%s\n", c.PublishedAt.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	y, err := specYAML(c.Spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nspec (draft):\n%s", indent(y, "  "))
	if stats == nil {
		fmt.Fprintf(stdout, "\nno stats: %v\n", statsErr)
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTERED\tCOMPLETED\tFAILED\tREMOVED\tWAITING")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\n", s.Entered, s.Completed, s.Failed, s.Removed, s.Waiting)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Steps) == 0 {
		return nil
	}
	fmt.Fprintf(stdout, "\nsteps of version %d:\n", s.Version)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tTYPE\tDONE\tWAITING")
	for _, st := range s.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", st.Path, st.Type, st.Done, st.Waiting)
	}
	return tw.Flush()
}

// specYAML renders a spec as YAML in the order of its fields.
func specYAML(spec campaign.Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil { // JSON is YAML; the node keeps the key order
		return "", err
	}
	var block func(*yaml.Node)
	block = func(n *yaml.Node) {
		n.Style &^= yaml.FlowStyle | yaml.DoubleQuotedStyle
		for _, c := range n.Content {
			block(c)
		}
	}
	block(&n)
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return "", err
	}
	return out.String(), enc.Close()
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" && l != "\n" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// campaignRuns prints a campaign's runs, newest first, or with --steps
// every step they took and how its webhook or email went.
func campaignRuns(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("campaign runs", stderr)
	var cf campaignFlags
	cf.register(fs)
	leadKey := fs.String("lead", "", "only the runs of this lead (id, email or user id)")
	status := fs.String("status", "", "only runs in this status: running, waiting, waiting_event, completed, failed or removed")
	limit := fs.Int("limit", 100, "most runs (1 to 1000)")
	steps := fs.Bool("steps", false, "print every step of the runs")
	pos, err := cf.parse(fs, args, 1, "usage: contrail campaign runs ID --tenant NAME [--lead L] [--status S] [--limit N] [--steps] [--json]")
	if err != nil {
		return err
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *leadKey != "" {
		q.Set("lead", *leadKey)
	}
	if *status != "" {
		q.Set("status", *status)
	}
	var out struct {
		Runs []api.RunView `json:"runs"`
	}
	if err := cf.c.do(ctx, "GET", cf.path("/"+url.PathEscape(pos[0])+"/runs", q), nil, &out); err != nil {
		return err
	}
	if cf.asJSON {
		return printJSON(stdout, out)
	}
	if len(out.Runs) == 0 {
		fmt.Fprintln(stdout, "no runs")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if *steps {
		fmt.Fprintln(tw, "RUN\tSTEP\tTYPE\tAT\tRESULT\tDELIVERY")
		for _, r := range out.Runs {
			for _, s := range r.Steps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, s.Path, s.Type, s.At.Local().Format(time.DateTime), shorten(s.Result, 60), delivery(s.Delivery))
			}
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "RUN\tLEAD\tVERSION\tSTATUS\tSTARTED\tSTEPS\tLAST STEP\tDELIVERIES")
	for _, r := range out.Runs {
		last := "-"
		if n := len(r.Steps); n > 0 {
			last = r.Steps[n-1].Path + " " + r.Steps[n-1].Type
		}
		if r.Error != "" {
			last += " (" + shorten(r.Error, 40) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Lead, r.Version, r.Status,
			r.Started.Local().Format(time.DateTime), len(r.Steps), last, deliveries(r.Steps))
	}
	return tw.Flush()
}

// delivery describes one external step's delivery.
func delivery(d *api.DeliveryView) string {
	switch {
	case d == nil:
		return "-"
	case d.Status == deliver.StatusFailed && d.Error != "":
		return fmt.Sprintf("failed after %d attempts: %s", d.Attempts, shorten(d.Error, 50))
	case d.HTTPStatus != 0:
		return fmt.Sprintf("%s (HTTP %d, %d attempts)", d.Status, d.HTTPStatus, d.Attempts)
	case d.Attempts > 0:
		return fmt.Sprintf("%s (%d attempts)", d.Status, d.Attempts)
	}
	return d.Status
}

// deliveries counts a run's external steps by delivery status.
func deliveries(steps []api.StepView) string {
	counts := map[string]int{}
	var order []string
	for _, s := range steps {
		if s.Delivery == nil {
			continue
		}
		if counts[s.Delivery.Status] == 0 {
			order = append(order, s.Delivery.Status)
		}
		counts[s.Delivery.Status]++
	}
	if len(order) == 0 {
		return "-"
	}
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[st], st)
	}
	return strings.Join(parts, ", ")
}

// campaignStatus pauses or resumes a campaign.
func campaignStatus(action string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet("campaign "+action, stderr)
		var cf campaignFlags
		cf.register(fs)
		pos, err := cf.parse(fs, args, 1, "usage: contrail campaign "+action+" ID --tenant NAME")
		if err != nil {
			return err
		}
		var c campaign.Campaign
		if err := cf.c.do(ctx, "POST", cf.path("/"+url.PathEscape(pos[0])+"/"+action, nil), nil, &c); err != nil {
			return err
		}
		if cf.asJSON {
			return printJSON(stdout, c)
		}
		fmt.Fprintf(stdout, "%s %s: %s (version %d)\n", c.ID, c.Name, c.Status, c.Version)
		return nil
	}
}
