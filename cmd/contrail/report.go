package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/report"
)

const reportUsage = "usage: contrail report summary|top|timeseries|goals --tenant NAME [--from RFC3339] [--to RFC3339] [--json] ..."

// reportCmd prints a tenant's web reports, read with the admin token.
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "report", reportUsage, []subcommand{
		{"summary", reportSummary}, {"top", reportTop}, {"timeseries", reportTimeseries}, {"goals", reportGoals},
	}, args, stdout, stderr)
}

// reportFlags are the flags every report command takes.
type reportFlags struct {
	c        client
	tenant   string
	from, to string
	asJSON   bool
}

func (rf *reportFlags) register(fs *flag.FlagSet) {
	rf.c.register(fs)
	fs.StringVar(&rf.tenant, "tenant", "", "tenant id or name (required)")
	fs.StringVar(&rf.from, "from", "", "start of the range, RFC 3339 (default: --to minus 24h)")
	fs.StringVar(&rf.to, "to", "", "end of the range, excluded, RFC 3339 (default: now, to the minute)")
	fs.BoolVar(&rf.asJSON, "json", false, "print the API's JSON answer")
}

// parse parses args and returns the query with tenant, from and to.
func (rf *reportFlags) parse(fs *flag.FlagSet, args []string, usage string) (url.Values, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 || rf.tenant == "" {
		return nil, errors.New(usage)
	}
	to := time.Now().Truncate(time.Minute)
	if rf.to != "" {
		t, err := time.Parse(time.RFC3339, rf.to)
		if err != nil {
			return nil, fmt.Errorf("--to %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", rf.to)
		}
		to = t
	}
	from := to.Add(-24 * time.Hour)
	if rf.from != "" {
		t, err := time.Parse(time.RFC3339, rf.from)
		if err != nil {
			return nil, fmt.Errorf("--from %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", rf.from)
		}
		from = t
	}
	q := url.Values{}
	q.Set("tenant", rf.tenant)
	q.Set("from", from.Format(time.RFC3339))
	q.Set("to", to.Format(time.RFC3339))
	return q, nil
}

// get asks the report endpoint and decodes the answer into out; with
// --json it prints the answer instead and reports printed.
func (rf *reportFlags) get(ctx context.Context, stdout io.Writer, endpoint string, q url.Values, out any) (printed bool, err error) {
	var raw json.RawMessage
	if err := rf.c.do(ctx, "GET", "/api/v1/reports/"+endpoint+"?"+q.Encode(), nil, &raw); err != nil {
		return false, err
	}
	if rf.asJSON {
		return true, printJSON(stdout, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("decoding %s report: %w", endpoint, err)
	}
	return false, nil
}

func reportSummary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report summary", stderr)
	var rf reportFlags
	rf.register(fs)
	filter := fs.String("filter", "", "only one value of a dimension, dim:value (e.g. page:/pricing)")
	q, err := rf.parse(fs, args, "usage: contrail report summary --tenant NAME [--from T] [--to T] [--filter dim:value] [--json]")
	if err != nil {
		return err
	}
	if *filter != "" {
		q.Set("filter", *filter)
	}
	var s api.SummaryView
	if printed, err := rf.get(ctx, stdout, "summary", q, &s); err != nil || printed {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "pageviews\t%d\n", s.Pageviews)
	fmt.Fprintf(tw, "visitors\t%d\n", s.Visitors)
	fmt.Fprintf(tw, "sessions\t%s\n", sessionCount(s))
	fmt.Fprintf(tw, "bounce rate\t%s\n", optional(s.BounceRate, percent))
	fmt.Fprintf(tw, "avg session\t%s\n", optional(s.AvgSessionSeconds, seconds))
	fmt.Fprintf(tw, "events\t%d\n", s.Events)
	fmt.Fprintf(tw, "bots\t%d\n", s.Bots)
	return tw.Flush()
}

// sessionCount shows "-" where the sessions are not counted (under a page
// or event filter).
func sessionCount(s api.SummaryView) string {
	if s.BounceRate == nil && s.Sessions == 0 {
		return "-"
	}
	return strconv.FormatInt(s.Sessions, 10)
}

func optional(v *float64, format func(float64) string) string {
	if v == nil {
		return "-"
	}
	return format(*v)
}

func percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

func seconds(f float64) string {
	return time.Duration(f * float64(time.Second)).Round(time.Second).String()
}

func reportTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report top", stderr)
	var rf reportFlags
	rf.register(fs)
	dim := fs.String("dimension", "page", "what to break down by: "+strings.Join(report.DimNames(), ", "))
	limit := fs.Int("limit", 10, "most rows (1 to 1000)")
	filter := fs.String("filter", "", "only one value of the same dimension, dim:value")
	q, err := rf.parse(fs, args, "usage: contrail report top --tenant NAME [--dimension page] [--limit 10] [--from T] [--to T] [--filter dim:value] [--json]")
	if err != nil {
		return err
	}
	q.Set("dimension", *dim)
	q.Set("limit", strconv.Itoa(*limit))
	if *filter != "" {
		q.Set("filter", *filter)
	}
	var out struct {
		Rows []api.TopRowView `json:"rows"`
	}
	if printed, err := rf.get(ctx, stdout, "top", q, &out); err != nil || printed {
		return err
	}
	if len(out.Rows) == 0 {
		fmt.Fprintf(stdout, "no %s in %s to %s\n", *dim, q.Get("from"), q.Get("to"))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tPAGEVIEWS\tVISITORS\tEVENTS\tSESSIONS\n", strings.ToUpper(strings.ReplaceAll(*dim, "_", " ")))
	for _, r := range out.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", shorten(r.Value, 80), r.Pageviews, r.Visitors, r.Events, r.Sessions)
	}
	return tw.Flush()
}

func reportTimeseries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report timeseries", stderr)
	var rf reportFlags
	rf.register(fs)
	metric := fs.String("metric", "pageviews", "pageviews, visitors, sessions or events")
	interval := fs.String("interval", "hour", "minute, hour or day")
	tz := fs.String("timezone", "", "IANA time zone of the steps (default: the tenant's)")
	q, err := rf.parse(fs, args, "usage: contrail report timeseries --tenant NAME [--metric pageviews] [--interval hour] [--timezone Europe/Paris] [--from T] [--to T] [--json]")
	if err != nil {
		return err
	}
	q.Set("metric", *metric)
	q.Set("interval", *interval)
	if *tz != "" {
		q.Set("timezone", *tz)
	}
	var out struct {
		Points []api.PointView `json:"points"`
	}
	if printed, err := rf.get(ctx, stdout, "timeseries", q, &out); err != nil || printed {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TIME\t%s\n", strings.ToUpper(*metric))
	for _, p := range out.Points {
		fmt.Fprintf(tw, "%s\t%d\n", p.T, p.Value)
	}
	return tw.Flush()
}

func reportGoals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report goals", stderr)
	var rf reportFlags
	rf.register(fs)
	q, err := rf.parse(fs, args, "usage: contrail report goals --tenant NAME [--from T] [--to T] [--json]")
	if err != nil {
		return err
	}
	var out struct {
		Rows []api.GoalView `json:"rows"`
	}
	if printed, err := rf.get(ctx, stdout, "goals", q, &out); err != nil || printed {
		return err
	}
	if len(out.Rows) == 0 {
		fmt.Fprintf(stdout, "%s has no goals: set them with PATCH /api/v1/tenants/{id}/settings {\"goals\":[...]}\n", rf.tenant)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GOAL\tCONVERSIONS\tVISITORS\tRATE")
	for _, g := range out.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", shorten(g.Goal, 60), g.Conversions, g.Visitors, percent(g.Rate))
	}
	return tw.Flush()
}
