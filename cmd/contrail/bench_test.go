package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
