package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tail", stderr)
	var c client
	c.register(fs)
	name := fs.String("tenant", "", "tenant id or name (required)")
	fromStart := fs.Bool("from-start", false, "start at the oldest event in the log instead of now")
	typ := fs.String("type", "", "only events of this type (track, page, screen, identify, alias, group)")
	raw := fs.Bool("json", false, "print each event as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("usage: contrail tail --tenant NAME [--from-start] [--type TYPE] [--json]")
	}
	q := url.Values{}
	if *fromStart {
		q.Set("from", "start")
	}
	if *typ != "" {
		q.Set("type", *typ)
	}
	resp, err := c.send(ctx, "GET", "/api/v1/tenants/"+url.PathEscape(*name)+"/tail?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("tail: %s: %s", resp.Status, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		if *raw {
			fmt.Fprintln(stdout, sc.Text())
			continue
		}
		var l struct {
			Partition int    `json:"partition"`
			Seq       uint64 `json:"seq"`
			Event     struct {
				Type        string          `json:"type"`
				MessageID   string          `json:"messageId"`
				AnonymousID string          `json:"anonymousId"`
				UserID      string          `json:"userId"`
				Event       string          `json:"event"`
				Name        string          `json:"name"`
				Timestamp   time.Time       `json:"timestamp"`
				Properties  json.RawMessage `json:"properties"`
			} `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("decoding tail line: %w", err)
		}
		e := l.Event
		label := e.Event
		if label == "" {
			label = e.Name
		}
		fmt.Fprintf(stdout, "%s p%-3d #%-8d %-8s anon=%s user=%s %q %s\n", e.Timestamp.Format(time.RFC3339Nano),
			l.Partition, l.Seq, e.Type, e.AnonymousID, e.UserID, label, e.Properties)
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
