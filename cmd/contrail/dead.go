package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/contrailhq/contrail/internal/api"
)

const (
	deadListUsage   = "usage: contrail dead list [--tenant NAME] [--after SEQ] [--limit N] [--json]"
	deadReplayUsage = "usage: contrail dead replay --seq N [--seq M ...] | --tenant NAME --all"
)

// deadCmd inspects and replays the events that processors rejected (the
// DEAD stream).
func deadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "dead", "usage: contrail dead list|replay ...",
		[]subcommand{{"list", deadList}, {"replay", deadReplay}}, args, stdout, stderr)
}

// deadLine is a DEAD message as list prints it.
type deadLine struct {
	Seq       uint64    `json:"seq"`
	Tenant    string    `json:"tenant"`
	Time      time.Time `json:"time"`
	Reason    string    `json:"reason"`
	Stream    string    `json:"stream"`
	Partition int       `json:"partition"`
	SourceSeq uint64    `json:"source_seq"`
	Events    []struct {
		Type      string `json:"type"`
		MessageID string `json:"messageId"`
	} `json:"events"`
	Error string `json:"error"`
}

func deadList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dead list", stderr)
	var c client
	c.register(fs)
	name := fs.String("tenant", "", "only this tenant's events (id or name; \"unknown\" for unreadable log messages)")
	after := fs.Uint64("after", 0, "list messages after this DEAD sequence (next page)")
	limit := fs.Int("limit", 100, "most messages to list (at most 1000)")
	asJSON := fs.Bool("json", false, "print each message as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(deadListUsage)
	}
	q := url.Values{}
	if *name != "" {
		q.Set("tenant", *name)
	}
	if *after > 0 {
		q.Set("after", strconv.FormatUint(*after, 10))
	}
	q.Set("limit", strconv.Itoa(*limit))
	var out struct {
		Messages  []json.RawMessage `json:"messages"`
		NextAfter uint64            `json:"next_after"`
	}
	if err := c.do(ctx, "GET", "/api/v1/dead?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if *asJSON {
		for _, m := range out.Messages {
			var line bytes.Buffer
			if err := json.Compact(&line, m); err != nil {
				return fmt.Errorf("decoding dead message: %w", err)
			}
			line.WriteByte('\n')
			if _, err := stdout.Write(line.Bytes()); err != nil {
				return err
			}
		}
		return nil
	}
	if len(out.Messages) == 0 {
		fmt.Fprintln(stdout, "no dead events")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTENANT\tREASON\tSOURCE\tEVENT")
	for _, raw := range out.Messages {
		var m deadLine
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("decoding dead message: %w", err)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Seq, m.Time.Format(time.DateTime), m.Tenant,
			shorten(m.Reason, 60), m.source(), m.event())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Messages) == *limit && out.NextAfter > 0 {
		fmt.Fprintf(stdout, "more may follow: contrail dead list --after %d\n", out.NextAfter)
	}
	return nil
}

// source says where the event was read when it was rejected:
// stream/partition#sequence.
func (m deadLine) source() string {
	if m.Stream == "" && m.Partition < 0 {
		return "-"
	}
	s := m.Stream + "/"
	if m.Partition >= 0 {
		s += strconv.Itoa(m.Partition)
	} else {
		s += "?"
	}
	if m.SourceSeq > 0 {
		s += "#" + strconv.FormatUint(m.SourceSeq, 10)
	}
	return s
}

// event names the first event by type and messageId.
func (m deadLine) event() string {
	if len(m.Events) == 0 {
		if m.Error != "" {
			return "unreadable: " + shorten(m.Error, 60)
		}
		return "-"
	}
	s := m.Events[0].Type + " " + m.Events[0].MessageID
	if len(m.Events) > 1 {
		s += fmt.Sprintf(" (+%d)", len(m.Events)-1)
	}
	return s
}

// shorten keeps a table cell on one line and at most n runes.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// seqList is a repeatable --seq flag.
type seqList []uint64

func (l *seqList) String() string {
	parts := make([]string, len(*l))
	for i, s := range *l {
		parts[i] = strconv.FormatUint(s, 10)
	}
	return strings.Join(parts, ",")
}

func (l *seqList) Set(v string) error {
	s, err := strconv.ParseUint(v, 10, 64)
	if err != nil || s == 0 {
		return fmt.Errorf("%q is not a DEAD sequence", v)
	}
	*l = append(*l, s)
	return nil
}

func deadReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dead replay", stderr)
	var c client
	c.register(fs)
	var seqs seqList
	fs.Var(&seqs, "seq", "DEAD sequence of a message to replay (repeat for more)")
	name := fs.String("tenant", "", "tenant whose dead events to replay, with --all")
	all := fs.Bool("all", false, "replay all dead events of --tenant")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var body map[string]any
	switch {
	case fs.NArg() > 0:
		return errors.New(deadReplayUsage)
	case len(seqs) > 0 && *name == "" && !*all:
		body = map[string]any{"seqs": seqs}
	case len(seqs) == 0 && *name != "" && *all:
		body = map[string]any{"tenant": *name, "all": true}
	default:
		return errors.New(deadReplayUsage)
	}
	var out api.ReplayResult
	if err := c.do(ctx, "POST", "/api/v1/dead/replay", body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d %s (%d %s)\n", out.ReplayedMessages, plural(out.ReplayedMessages, "message"),
		out.ReplayedEvents, plural(out.ReplayedEvents, "event"))
	for _, e := range out.Errors {
		fmt.Fprintf(stdout, "seq %d: %s: %s\n", e.Seq, e.Code, e.Message)
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("%d dead %s not replayed", len(out.Errors), plural(len(out.Errors), "message"))
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
