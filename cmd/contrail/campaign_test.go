package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const campaignYAML = `# Visitors of the pricing page.
name: pricing visitors
triggers:
  - type: visits_web_page
    constraint: "event.properties.path == '/pricing'"
qualification: once
flow:
  - type: change_score
    change: 10
  - type: add_to_list
    list: Hot
  - type: wait
    duration: 1d
`

// rowWith returns the fields of the first line of out that has all of
// words, or nil.
func rowWith(out string, words ...string) []string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		ok := len(f) > 0
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return f
		}
	}
	return nil
}

func TestCLICampaign(t *testing.T) {
	n := startNode(t)
	var shop struct {
		WriteKey string `json:"write_key"`
		APIKey   string `json:"api_key"`
	}
	out := n.mustCLI(t, "tenant", "create", "shop")
	require.NoError(t, json.Unmarshal([]byte(out), &shop), "output: %s", out)
	file := filepath.Join(t.TempDir(), "campaign.yaml")
	require.NoError(t, os.WriteFile(file, []byte(campaignYAML), 0o600))

	// Apply creates and publishes; applying it again changes nothing.
	out = n.mustCLI(t, "campaign", "apply", "-f", file, "--tenant", "shop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "output:\n%s", out)
	require.Equal(t, []string{"ID", "NAME", "VERSION", "STATUS", "DONE"}, strings.Fields(lines[0]))
	row := strings.Fields(lines[1])
	id := row[0]
	require.True(t, strings.HasPrefix(id, "cmp_"), out)
	require.Equal(t, []string{"pricing", "visitors", "1", "active", "created,", "published"}, row[1:])
	out = n.mustCLI(t, "campaign", "apply", "-f", file, "--tenant", "shop")
	require.Equal(t, []string{id, "pricing", "visitors", "1", "active", "unchanged"}, rowWith(out, id))

	// A known lead visits /pricing and enters the campaign.
	sendBatch(t, n.url, shop.WriteKey, map[string]any{"type": "identify", "userId": "u-1", "traits": map[string]any{"email": "ann@shop.test"}})
	sendBatch(t, n.url, shop.WriteKey, map[string]any{"type": "page", "userId": "u-1", "properties": map[string]any{"path": "/pricing"}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var runs struct {
			Runs []struct {
				Status string `json:"status"`
			} `json:"runs"`
		}
		out = n.mustCLI(t, "campaign", "runs", id, "--tenant", "shop", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &runs), "output: %s", out)
		if len(runs.Runs) == 1 && runs.Runs[0].Status == "waiting" {
			break
		}
		require.True(t, time.Now().Before(deadline), "no waiting run: %s", out)
		time.Sleep(50 * time.Millisecond)
	}

	// Runs as a table, one row per run; with --steps, one per step.
	out = n.mustCLI(t, "campaign", "runs", id, "--tenant", "shop")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "output:\n%s", out)
	require.Equal(t, []string{"RUN", "LEAD", "VERSION", "STATUS", "STARTED", "STEPS", "LAST", "STEP", "DELIVERIES"}, strings.Fields(lines[0]))
	row = strings.Fields(lines[1])
	require.True(t, strings.HasPrefix(row[1], "ld_"), out)
	require.Equal(t, []string{"1", "waiting"}, row[2:4])
	require.Equal(t, []string{"3", "flow[2]", "wait", "-"}, row[6:])
	out = n.mustCLI(t, "campaign", "runs", id, "--tenant", "shop", "--steps", "--lead", "ann@shop.test")
	require.NotNil(t, rowWith(out, "flow[0]", "change_score", "score +10"), out)
	require.NotNil(t, rowWith(out, "flow[1]", "add_to_list", "Hot"), out)
	out = n.mustCLI(t, "campaign", "runs", id, "--tenant", "shop", "--status", "completed")
	require.Equal(t, "no runs", strings.TrimSpace(out))

	// The list, with a tenant API key instead of the admin token.
	out = n.mustCLI(t, "campaign", "list", "--api-key", shop.APIKey)
	require.Equal(t, []string{"ID", "NAME", "STATUS", "VERSION", "DRAFT", "UPDATED"}, strings.Fields(strings.Split(out, "\n")[0]))
	require.Equal(t, []string{id, "pricing", "visitors", "active", "1", "-"}, rowWith(out, id)[:6])

	// Show: the spec as YAML and the counters per step.
	out = n.mustCLI(t, "campaign", "show", id, "--tenant", "shop")
	require.Equal(t, []string{"status", "active"}, rowWith(out, "status"))
	require.Contains(t, out, "    - type: change_score\n      change: 10\n")
	require.Contains(t, out, "constraint: event.properties.path == '/pricing'")
	require.Equal(t, []string{"1", "0", "0", "0", "1"}, strings.Fields(strings.Split(out[strings.Index(out, "ENTERED"):], "\n")[1]))
	require.Equal(t, []string{"flow[0]", "change_score", "1", "0"}, rowWith(out, "flow[0]"))
	require.Equal(t, []string{"flow[2]", "wait", "1", "1"}, rowWith(out, "flow[2]"))

	// Pause and resume.
	out = n.mustCLI(t, "campaign", "pause", id, "--tenant", "shop")
	require.Contains(t, out, "paused")
	out = n.mustCLI(t, "campaign", "resume", id, "--tenant", "shop")
	require.Contains(t, out, "active (version 1)")

	// A changed file makes a new version; --draft stores it unpublished.
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(campaignYAML, "change: 10", "change: 20", 1)), 0o600))
	out = n.mustCLI(t, "campaign", "apply", "-f", file, "--tenant", "shop", "--draft")
	require.Equal(t, []string{id, "pricing", "visitors", "1", "active", "replaced"}, rowWith(out, id))
	out = n.mustCLI(t, "campaign", "list", "--tenant", "shop")
	require.Contains(t, out, "unpublished changes")
	out = n.mustCLI(t, "campaign", "apply", "-f", file, "--tenant", "shop")
	require.Equal(t, []string{id, "pricing", "visitors", "2", "active", "published"}, rowWith(out, id))

	// Errors: an invalid file with its problems, a missing tenant.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: bad\ntriggers: [{type: visits_web_page}]\nflow: [{type: teleport}]\n"), 0o600))
	_, _, err := cli(t, "campaign", "apply", "-f", bad, "--tenant", "shop", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "invalid_campaign")
	require.ErrorContains(t, err, "flow[0].type")
	_, _, err = cli(t, "campaign", "list", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "--tenant is required")
	_, _, err = cli(t, "campaign", "show", "cmp_nope", "--tenant", "shop", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "campaign_not_found")
	_, _, err = cli(t, "campaign", "frobnicate")
	require.ErrorContains(t, err, "unknown campaign command")
}
