package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sendBatch posts events with writeKey until the collector accepts them all:
// a new tenant reaches the collector through a KV watch.
func sendBatch(t *testing.T, url, writeKey string, events ...map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"batch": events})
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequest("POST", url+"/v1/batch", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, resp.Body.Close())
		require.NoError(t, err)
		var answer struct {
			Accepted int `json:"accepted"`
		}
		_ = json.Unmarshal(b, &answer)
		if resp.StatusCode == http.StatusOK {
			require.Equal(t, len(events), answer.Accepted, "answer: %s", b)
			return
		}
		require.True(t, time.Now().Before(deadline), "batch: got %d %s", resp.StatusCode, b)
		time.Sleep(20 * time.Millisecond)
	}
}

func pageView(anon, path string) map[string]any {
	return map[string]any{"type": "page", "anonymousId": anon,
		"properties": map[string]any{"path": path, "url": "https://shop.example" + path}}
}

func TestCLIReport(t *testing.T) {
	n := startNode(t)
	var shop struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	out := n.mustCLI(t, "tenant", "create", "shop")
	require.NoError(t, json.Unmarshal([]byte(out), &shop), "output: %s", out)

	// A goal; the API answers once this node applies it.
	req, err := http.NewRequest("PATCH", n.url+"/api/v1/tenants/shop/settings",
		strings.NewReader(`{"goals":[{"name":"Pricing","page":"/pricing"}]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	sendBatch(t, n.url, shop.WriteKey,
		pageView("v1", "/"), pageView("v1", "/pricing"),
		pageView("v2", "/pricing"),
		pageView("v3", "/pricing"), pageView("v3", "/docs"),
		map[string]any{"type": "track", "anonymousId": "v3", "event": "Signed Up"},
	)

	now := time.Now().UTC().Truncate(time.Minute)
	span := []string{"--tenant", "shop", "--from", now.Add(-time.Hour).Format(time.RFC3339), "--to", now.Add(time.Hour).Format(time.RFC3339)}
	report := func(args ...string) string {
		t.Helper()
		return n.mustCLI(t, append(append([]string{"report"}, args...), span...)...)
	}

	// Wait until the shards have processed the events.
	var summary struct {
		Pageviews int64    `json:"pageviews"`
		Visitors  int64    `json:"visitors"`
		Sessions  int64    `json:"sessions"`
		Events    int64    `json:"events"`
		Bounce    *float64 `json:"bounce_rate"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := report("summary", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &summary), "output: %s", out)
		if summary.Pageviews == 5 && summary.Events == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the summary did not reach 5 pageviews and 1 event: %s", out)
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, int64(3), summary.Visitors)
	require.Equal(t, int64(3), summary.Sessions)
	require.NotNil(t, summary.Bounce)

	// The summary as a table: one line per number.
	out = report("summary")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 7, "output:\n%s", out)
	require.Equal(t, []string{"pageviews", "5"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"visitors", "3"}, strings.Fields(lines[1]))
	require.Equal(t, []string{"sessions", "3"}, strings.Fields(lines[2]))
	require.Equal(t, []string{"bounce", "rate", "33.3%"}, strings.Fields(lines[3]), "v2 bounced")
	require.Equal(t, []string{"events", "1"}, strings.Fields(lines[5]))

	// Under a page filter, session numbers are not kept.
	out = report("summary", "--filter", "page:/pricing")
	require.Contains(t, out, "pageviews  ")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Equal(t, []string{"pageviews", "3"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"sessions", "-"}, strings.Fields(lines[2]))
	require.Equal(t, []string{"bounce", "rate", "-"}, strings.Fields(lines[3]))

	// Top pages, busiest first, in aligned columns.
	out = report("top", "--dimension", "page")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1+3, "header and three pages:\n%s", out)
	require.Equal(t, []string{"PAGE", "PAGEVIEWS", "VISITORS", "EVENTS", "SESSIONS"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"/pricing", "3", "3", "0", "0"}, strings.Fields(lines[1]))
	require.ElementsMatch(t, []string{"/", "/docs"}, []string{strings.Fields(lines[2])[0], strings.Fields(lines[3])[0]})
	require.Equal(t, strings.Index(lines[0], "PAGEVIEWS"), strings.Index(lines[1], "3"), "columns are aligned:\n%s", out)
	out = report("top", "--dimension", "page", "--limit", "1")
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2, "output:\n%s", out)
	out = report("top", "--dimension", "event")
	require.Contains(t, out, "Signed Up")

	// Goals and the time series.
	out = report("goals")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "output:\n%s", out)
	require.Equal(t, []string{"Pricing", "3", "3", "100.0%"}, strings.Fields(lines[1]))
	var series struct {
		Points []struct {
			T     string `json:"t"`
			Value int64  `json:"value"`
		} `json:"points"`
	}
	out = report("timeseries", "--interval", "minute", "--metric", "pageviews", "--timezone", "Asia/Kolkata", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &series), "output: %s", out)
	require.Len(t, series.Points, 120)
	var total int64
	for _, p := range series.Points {
		total += p.Value
		require.True(t, strings.HasSuffix(p.T, "+05:30"), p.T)
	}
	require.Equal(t, int64(5), total)
	out = report("timeseries")
	require.Contains(t, out, "PAGEVIEWS")

	// Errors come from the API with their codes; the tenant is required.
	_, _, err = cli(t, append([]string{"report", "top", "--dimension", "color", "--server", n.url, "--token", n.token}, span...)...)
	require.ErrorContains(t, err, "invalid_parameter")
	_, _, err = cli(t, "report", "summary", "--tenant", "shop", "--from", "yesterday", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "--from")
	_, _, err = cli(t, "report", "summary", "--tenant", "shop", "--filter", "exit_page:/", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "unsupported_filter")
	_, _, err = cli(t, "report", "summary", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "usage")
	_, _, err = cli(t, "report", "frobnicate")
	require.ErrorContains(t, err, "unknown report command")
	_, _, err = cli(t, "report", "summary", "--tenant", "nope", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "not_found")

	// Defaults: the last 24 hours, to the current minute.
	out = n.mustCLI(t, "report", "summary", "--tenant", "shop")
	require.Contains(t, out, "pageviews")
}
