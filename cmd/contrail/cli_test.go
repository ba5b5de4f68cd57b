package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/app"
	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// testNode is a node running in this process.
type testNode struct {
	url     string
	dataDir string
	token   string
	log     *eventlog.Log // for what no HTTP call can store, e.g. events a processor rejected
}

// startNode runs a node on a fresh data directory and a random port until
// the test ends.
func startNode(t *testing.T, configure ...func(*config.Config)) *testNode {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.NodeName = "cli-test"
	cfg.Log.Partitions = 4
	for _, c := range configure {
		c(&cfg)
	}
	require.NoError(t, cfg.Validate())

	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := app.New(ctx, cfg, logger)
	if err != nil {
		cancel()
		require.NoError(t, err)
	}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("node did not stop in 30s")
		}
	})
	select {
	case a := <-addr:
		return &testNode{url: "http://" + a, dataDir: cfg.DataDir, token: node.AdminTokenValue(), log: node.Log()}
	case err := <-done:
		require.FailNow(t, "node stopped before it was ready", "err: %v", err)
	case <-time.After(30 * time.Second):
		require.FailNow(t, "node not ready in 30s")
	}
	return nil
}

// cli runs the contrail command with args and returns its output.
func cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustCLI runs the contrail command against n with the admin token and
// fails the test if it fails.
func (n *testNode) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, append(args, "--server", n.url, "--token", n.token)...)
	require.NoError(t, err, "contrail %s\nstderr: %s", strings.Join(args, " "), errOut)
	return out
}

// track posts one track call with writeKey and returns the status and the
// error code of the answer, if any.
func track(t *testing.T, url, writeKey string) (int, string) {
	t.Helper()
	body := `{"event":"CLI Test","anonymousId":"visitor-1","properties":{"ok":true}}`
	req, err := http.NewRequest("POST", url+"/v1/track", strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer struct {
		Error struct{ Code string } `json:"error"`
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &answer), "answer: %s", b)
	return resp.StatusCode, answer.Error.Code
}

// waitTrack waits until a track call with writeKey gets status and code:
// tenants reach the collector through a KV watch, a moment after the API answered.
func waitTrack(t *testing.T, url, writeKey string, status int, code string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, c := track(t, url, writeKey)
		if st == status && c == code {
			return
		}
		require.True(t, time.Now().Before(deadline), "track with %s: got %d %q, want %d %q", writeKey, st, c, status, code)
	}
}

// waitTrackAnon waits until a track call from anonymousId anon gets the
// event-level result code (settings reach the collector through a KV watch).
func waitTrackAnon(t *testing.T, url, writeKey, anon, code string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := `{"event":"CLI Test","anonymousId":"` + anon + `"}`
		req, err := http.NewRequest("POST", url+"/v1/track", strings.NewReader(body))
		require.NoError(t, err)
		req.SetBasicAuth(writeKey, "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var answer struct {
			Results []struct{ Code string } `json:"results"`
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		_ = json.Unmarshal(b, &answer)
		if len(answer.Results) == 1 && answer.Results[0].Code == code {
			return
		}
		require.True(t, time.Now().Before(deadline), "track from %s: got %d %s, want result code %q", anon, resp.StatusCode, b, code)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCLITenantLifecycle(t *testing.T) {
	n := startNode(t)

	// create prints the tenant and its secrets.
	var created struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		WriteKey string `json:"write_key"`
		APIKey   string `json:"api_key"`
		Limits   struct {
			DailyQuota int64 `json:"daily_quota"`
		} `json:"limits"`
	}
	out := n.mustCLI(t, "tenant", "create", "acme")
	require.NoError(t, json.Unmarshal([]byte(out), &created), "output: %s", out)
	require.True(t, strings.HasPrefix(created.ID, "tn_"), created.ID)
	require.Equal(t, "acme", created.Name)
	require.True(t, strings.HasPrefix(created.WriteKey, "wk_"), created.WriteKey)
	require.True(t, strings.HasPrefix(created.APIKey, "ak_"), created.APIKey)

	// Flags after the name are limits.
	out = n.mustCLI(t, "tenant", "create", "globex", "--daily-quota", "7")
	var globex struct {
		Limits struct {
			DailyQuota int64 `json:"daily_quota"`
		} `json:"limits"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &globex), "output: %s", out)
	require.Equal(t, int64(7), globex.Limits.DailyQuota)

	// The first write key collects.
	waitTrack(t, n.url, created.WriteKey, http.StatusOK, "")

	// list shows both, as a table and as JSON.
	out = n.mustCLI(t, "tenant", "list")
	require.Contains(t, out, "NAME")
	require.Contains(t, out, created.ID)
	require.Contains(t, out, "acme")
	require.Contains(t, out, "globex")
	var list struct {
		Tenants []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Keys []struct {
				Kind   string `json:"kind"`
				Secret string `json:"secret"`
			} `json:"keys"`
		} `json:"tenants"`
	}
	out = n.mustCLI(t, "tenant", "list", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &list), "output: %s", out)
	require.Len(t, list.Tenants, 2)
	require.Equal(t, "acme", list.Tenants[0].Name)
	require.Equal(t, created.ID, list.Tenants[0].ID)
	require.NotContains(t, out, created.APIKey, "an API key is shown only at creation")

	// keys --create adds a write key that collects.
	var added struct {
		Tenant string `json:"tenant"`
		Secret string `json:"secret"`
		Key    struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"key"`
	}
	out = n.mustCLI(t, "tenant", "keys", "acme", "--create", "write")
	require.NoError(t, json.Unmarshal([]byte(out), &added), "output: %s", out)
	require.Equal(t, created.ID, added.Tenant)
	require.Equal(t, "write", added.Key.Kind)
	require.True(t, strings.HasPrefix(added.Secret, "wk_"), added.Secret)
	waitTrack(t, n.url, added.Secret, http.StatusOK, "")

	out = n.mustCLI(t, "tenant", "keys", "acme")
	require.Contains(t, out, added.Key.ID)
	require.Contains(t, out, added.Secret, "write keys are public and listed")
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 1+3, "header and three keys:\n%s", out)

	// keys --revoke makes it stop working; the other key goes on.
	out = n.mustCLI(t, "tenant", "keys", "acme", "--revoke", added.Key.ID)
	require.Contains(t, out, added.Key.ID)
	waitTrack(t, n.url, added.Secret, http.StatusUnauthorized, "invalid_write_key")
	st, code := track(t, n.url, created.WriteKey)
	require.Equal(t, http.StatusOK, st, code)
	_, _, err := cli(t, "tenant", "keys", "acme", "--revoke", added.Key.ID, "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "not_found", "a key is revoked once")

	// limits changes only the limits given, and prints all of them.
	var limits map[string]any
	out = n.mustCLI(t, "tenant", "limits", "acme", "--daily-quota", "5")
	require.NoError(t, json.Unmarshal([]byte(out), &limits), "output: %s", out)
	require.EqualValues(t, 5, limits["daily_quota"])
	require.EqualValues(t, 32<<10, limits["max_event_bytes"], "defaults stay")
	out = n.mustCLI(t, "tenant", "limits", "acme", "--events-per-second", "100")
	limits = nil
	require.NoError(t, json.Unmarshal([]byte(out), &limits), "output: %s", out)
	require.EqualValues(t, 5, limits["daily_quota"], "a PATCH keeps the quota")
	require.EqualValues(t, 100, limits["events_per_second"])
	out = n.mustCLI(t, "tenant", "limits", "acme")
	limits = nil
	require.NoError(t, json.Unmarshal([]byte(out), &limits), "output: %s", out)
	require.EqualValues(t, 5, limits["daily_quota"])
	_, _, err = cli(t, "tenant", "limits", "acme", "--daily-quota", "-1", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "invalid_request")

	// settings works the same way, with durations as text.
	var set map[string]any
	out = n.mustCLI(t, "tenant", "settings", "acme", "--ip-policy", "anonymize", "--session-timeout", "45m", "--blocked-ids", "guest, nobody")
	require.NoError(t, json.Unmarshal([]byte(out), &set), "output: %s", out)
	require.Equal(t, "anonymize", set["ip_policy"])
	require.Equal(t, "45m0s", set["session_timeout"])
	require.Equal(t, "30d", set["visitor_retention"], "defaults are shown")
	require.Equal(t, []any{"guest", "nobody"}, set["blocked_ids"])
	out = n.mustCLI(t, "tenant", "settings", "acme", "--visitor-retention", "90d")
	set = nil
	require.NoError(t, json.Unmarshal([]byte(out), &set), "output: %s", out)
	require.Equal(t, "anonymize", set["ip_policy"], "a PATCH keeps the others")
	require.Equal(t, "90d", set["visitor_retention"])
	_, _, err = cli(t, "tenant", "settings", "acme", "--ip-policy", "hash", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "invalid_request")
	// The tenant's own blocked ids are refused by the collector.
	waitTrackAnon(t, n.url, created.WriteKey, "nobody", "blocked_id")

	// A second tenant with the same name is a conflict.
	_, _, err = cli(t, "tenant", "create", "acme", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "conflict")
	_, _, err = cli(t, "tenant", "create", "ACME", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "conflict", "names are case-insensitive")

	// Unknown tenants and bad tokens are errors.
	_, _, err = cli(t, "tenant", "keys", "nope", "--server", n.url, "--token", n.token)
	require.ErrorContains(t, err, "not_found")
	_, _, err = cli(t, "tenant", "list", "--server", n.url, "--token", "wrong")
	require.ErrorContains(t, err, "unauthorized")
}

func TestCLITokenFromDataDir(t *testing.T) {
	// Tokens from the environment would win over the data directory.
	t.Setenv("CONTRAIL_ADMIN_TOKEN", "")
	t.Setenv("CONTRAIL_SERVER", "")
	t.Setenv("CONTRAIL_DATA_DIR", "")
	n := startNode(t)

	out, errOut, err := cli(t, "tenant", "create", "acme", "--server", n.url, "--data-dir", n.dataDir)
	require.NoError(t, err, "stderr: %s", errOut)
	require.Contains(t, out, `"write_key"`)
	out, errOut, err = cli(t, "tenant", "list", "--data-dir", n.dataDir, "--server", n.url)
	require.NoError(t, err, "stderr: %s", errOut)
	require.Contains(t, out, "acme")

	// The environment works too.
	t.Setenv("CONTRAIL_SERVER", n.url)
	t.Setenv("CONTRAIL_ADMIN_TOKEN", n.token)
	out, errOut, err = cli(t, "tenant", "list")
	require.NoError(t, err, "stderr: %s", errOut)
	require.Contains(t, out, "acme")
	t.Setenv("CONTRAIL_ADMIN_TOKEN", "")

	// No token anywhere: a clear error, before any request.
	_, _, err = cli(t, "tenant", "list", "--server", n.url, "--data-dir", filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "no admin token")
}

func TestCLIWithoutNode(t *testing.T) {
	t.Parallel()

	out, _, err := cli(t, "version")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "contrail"), out)

	out, _, err = cli(t, "help")
	require.NoError(t, err)
	require.Contains(t, out, "Usage:")

	_, errOut, err := cli(t, "frobnicate")
	require.ErrorContains(t, err, `unknown command "frobnicate"`)
	require.Contains(t, errOut, "Usage:")

	_, _, err = cli(t)
	require.Error(t, err, "no command")

	_, _, err = cli(t, "tenant")
	require.Error(t, err)
	_, _, err = cli(t, "tenant", "frobnicate")
	require.ErrorContains(t, err, "unknown tenant command")
	_, _, err = cli(t, "tenant", "create", "--token", "x")
	require.ErrorContains(t, err, "usage", "create needs a name")
	_, _, err = cli(t, "tenant", "create", "a", "b", "--token", "x")
	require.ErrorContains(t, err, "usage", "create takes one name")
	_, _, err = cli(t, "tenant", "list", "--no-such-flag")
	require.Error(t, err)
}

// TestCLIUnreachableNode checks the hint given when nothing listens at
// --server: a refused connection is not a timeout.
func TestCLIUnreachableNode(t *testing.T) {
	t.Parallel()
	_, _, err := cli(t, "tenant", "list", "--server", "http://127.0.0.1:1", "--token", "x")
	require.ErrorContains(t, err, "is a node running at http://127.0.0.1:1")
	require.NotContains(t, err.Error(), "timed out")
}
