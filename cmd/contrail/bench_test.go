package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
)

// TestBenchIngestReportsProcessing drives a real node briefly and checks
// that the report reads its shards' metrics: the names the bench reads are
// the names the node exposes.
func TestBenchIngestReportsProcessing(t *testing.T) {
	n := startNode(t)
	var created struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(n.mustCLI(t, "tenant", "create", "bench")), &created))
	// The collector learns of the tenant a moment later. The event that
	// tells is processed before the run, so that the run counts its own.
	waitTrack(t, n.url, created.WriteKey, http.StatusOK, "")
	waitProcessed(t, n.url, n.token)
	out := n.mustCLI(t, "bench", "ingest", "--url", n.url, "--tenant", "bench",
		"--rate", "1000", "--duration", "1s", "--batch-size", "50", "--drain", "20s", "--quiet")
	for _, want := range []string{
		"accepted          1000 (",
		"processing        kept up: ",
		"processed         1000 of 1000 accepted events of tenant " + created.ID + " (",
		"ingest→processed  p50 ~",
		"bucket-interpolated, buckets 100µs to 10s, up to 2.5× apart)\n",
		"drain             back to real time ",
		"cpu with drain    ",
	} {
		require.Contains(t, out, want)
	}
	require.False(t, strings.Contains(out, "not running"), out)
}

// TestBenchIngestCampaign runs the bench with --campaign against a node
// that lets webhooks reach loopback: the campaign runs for the known
// leads' page views, its webhooks reach the bench's receiver, the report
// says so, and the campaign is paused after the run.
func TestBenchIngestCampaign(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Deliver.AllowPrivateNetworks = true })
	var created struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(n.mustCLI(t, "tenant", "create", "bench")), &created))
	waitTrack(t, n.url, created.WriteKey, http.StatusOK, "")
	waitProcessed(t, n.url, n.token)
	out := n.mustCLI(t, "bench", "ingest", "--url", n.url, "--tenant", "bench", "--campaign",
		"--rate", "1000", "--duration", "1s", "--batch-size", "50", "--drain", "20s", "--quiet")
	for _, want := range []string{
		"ingest→trigger    p50 ~",
		"ingest→delivered  p50 ~",
		"outbox writes     ",
		"campaigns         settled ",
	} {
		require.Contains(t, out, want)
	}
	// Every run took four steps and delivered its webhook once.
	var entered, completed, steps, external, delivered, requests, keys int
	_, err := fmt.Sscanf(strings.Join(rowWith(out, "campaign runs"), " "), "campaign runs %d entered, %d completed,", &entered, &completed)
	require.NoError(t, err, out)
	_, err = fmt.Sscanf(strings.Join(rowWith(out, "campaign steps"), " "), "actions %d campaign steps, %d of them external", &steps, &external)
	require.NoError(t, err, out)
	_, err = fmt.Sscanf(strings.Join(rowWith(out, "failed for good"), " "), "webhooks %d delivered, 0 failed", &delivered)
	require.NoError(t, err, out)
	_, err = fmt.Sscanf(strings.Join(rowWith(out, "webhook receiver"), " "), "webhook receiver %d requests, %d distinct", &requests, &keys)
	require.NoError(t, err, out)
	require.Positive(t, entered, out)
	require.Equal(t, []int{entered, 4 * entered, entered, entered, entered, entered}, []int{completed, steps, external, delivered, requests, keys}, out)

	list := n.mustCLI(t, "campaign", "list", "--tenant", "bench")
	require.NotNil(t, rowWith(list, "contrail bench", "paused"), list)
}

// TestBenchIngestCampaignRefused checks that --campaign says what is
// missing: a tenant, or a node that lets webhooks reach loopback.
func TestBenchIngestCampaignRefused(t *testing.T) {
	_, _, err := cli(t, "bench", "ingest", "--write-key", "wk_x", "--campaign")
	require.ErrorContains(t, err, "--campaign needs --tenant")

	n := startNode(t)
	n.mustCLI(t, "tenant", "create", "bench")
	_, _, err = cli(t, "bench", "ingest", "--url", n.url, "--tenant", "bench", "--campaign", "--duration", "1s",
		"--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "publishing the bench campaign (does the node run with --deliver-allow-private-networks?)")
}

// TestBenchCatchup builds a small backlog with processing paused, resumes
// and reports the catch-up; the node processes everything and is left
// running.
func TestBenchCatchup(t *testing.T) {
	n := startNode(t)
	var created struct {
		WriteKey string `json:"write_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(n.mustCLI(t, "tenant", "create", "bench")), &created))
	waitTrack(t, n.url, created.WriteKey, http.StatusOK, "")
	waitProcessed(t, n.url, n.token)
	out := n.mustCLI(t, "bench", "catchup", "--url", n.url, "--tenant", "bench", "--events", "3000", "--batch-size", "100", "--quiet")
	for _, want := range []string{"backlog        3000 events built in ", "caught up      ", "catch-up rate  "} {
		require.Contains(t, out, want)
	}
	status := n.mustCLI(t, "status", "--json")
	require.Contains(t, status, `"processing_paused": false`, "the bench resumes processing")
	require.Contains(t, n.mustCLI(t, "status"), "bench")
}
