package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/app"
	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
)

// testNode is a real Contrail node running in this process: embedded (or
// external) NATS JetStream with a file store, HTTP on a loopback port.
type testNode struct {
	URL     string // http://127.0.0.1:<port>
	Addr    string // 127.0.0.1:<port>
	Token   string // admin token
	Node    *app.Node
	Cfg     config.Config
	DataDir string

	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// startNode starts a node on a fresh data directory. mutate, if not nil,
// adjusts the configuration first. The node is stopped when the test ends.
func startNode(t testing.TB, mutate func(*config.Config)) *testNode {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.NodeName = "test"
	cfg.LogLevel = "warn"
	if mutate != nil {
		mutate(&cfg)
	}
	return startNodeWith(t, cfg)
}

// startNodeWith starts a node with exactly cfg, e.g. to restart on the data
// directory of a stopped node.
func startNodeWith(t testing.TB, cfg config.Config) *testNode {
	t.Helper()
	require.NoError(t, cfg.Validate())
	ctx, cancel := context.WithCancel(context.Background())
	logger := testLogger(t)
	node, err := app.New(ctx, cfg, logger)
	if err != nil {
		cancel()
		require.NoError(t, err, "app.New")
	}
	n := &testNode{Node: node, Cfg: cfg, DataDir: cfg.DataDir, Token: node.AdminTokenValue(), cancel: cancel, done: make(chan error, 1)}
	addrC := make(chan string, 1)
	go func() {
		n.done <- node.Run(ctx, func(addr string) { addrC <- addr })
	}()
	t.Cleanup(func() { n.stop(t) })
	select {
	case n.Addr = <-addrC:
	case err := <-n.done:
		n.stopped = true
		require.FailNow(t, "node stopped before listening", "err: %v", err)
	case <-time.After(30 * time.Second):
		require.FailNow(t, "node did not start listening within 30s")
	}
	n.URL = "http://" + n.Addr
	return n
}

// stop cancels the node and waits for Run to return. It is idempotent.
func (n *testNode) stop(t testing.TB) {
	t.Helper()
	if n.stopped {
		return
	}
	n.stopped = true
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node.Run returned an error on shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("node did not stop within 30s of its context being cancelled")
	}
}

// testLogger logs warnings and errors of the node to the test log, and
// nothing once the test has finished (late goroutines must not panic it).
func testLogger(t testing.TB) *slog.Logger {
	w := &tbWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// httpClient is shared by the tests; the collector is on loopback.
var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// adminDo sends an admin API request with the node's token and decodes a
// JSON answer into out (if not nil). It returns the status.
func adminDo(t testing.TB, n *testNode, method, path string, body any, out any) int {
	t.Helper()
	st, _ := apiDo(t, n, n.Token, method, path, body, out)
	return st
}

// apiDo sends a JSON request with a bearer key (a tenant's API key or the
// admin token), decodes a 2xx JSON answer into out (if not nil), and
// returns the status and the body.
func apiDo(t testing.TB, n *testNode, key, method, path string, body any, out any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.URL+path, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(b, out), "decoding %s %s: %s", method, path, b)
	}
	return resp.StatusCode, b
}

// createTenant creates a tenant through the admin API and returns its id,
// write key and API key.
func createTenant(t testing.TB, n *testNode, name string) (id, writeKey, apiKey string) {
	t.Helper()
	var out struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		WriteKey string `json:"write_key"`
		APIKey   string `json:"api_key"`
	}
	st := adminDo(t, n, http.MethodPost, "/api/v1/tenants", map[string]any{"name": name}, &out)
	require.Equal(t, http.StatusCreated, st, "creating tenant %q", name)
	require.NotEmpty(t, out.ID)
	require.NotEmpty(t, out.WriteKey)
	require.NotEmpty(t, out.APIKey)
	require.Equal(t, name, out.Name)
	// The collector learns of new tenants through a KV watch, moments after
	// the admin API answered (see TestNewWriteKeyWorksAtOnce). Wait until the
	// key is known: an empty batch is refused after authentication (400
	// empty_batch), before it (401). It is counted as a refused request.
	require.Eventually(t, func() bool {
		return probeSend(n, collectReq{basicKey: out.WriteKey, body: []byte(`{"batch":[]}`)}).Status == http.StatusBadRequest
	}, 10*time.Second, 5*time.Millisecond, "the collector learns the new write key")
	return out.ID, out.WriteKey, out.APIKey
}

// patchLimits changes some of a tenant's limits through the admin API.
func patchLimits(t testing.TB, n *testNode, tenantID string, limits map[string]any) {
	t.Helper()
	st := adminDo(t, n, http.MethodPatch, "/api/v1/tenants/"+tenantID+"/limits", limits, nil)
	require.Equal(t, http.StatusOK, st, "patching limits of %s", tenantID)
}

// logged is one event read back from the log, with where it was stored.
type logged struct {
	Partition int
	Seq       uint64 // stream sequence of the message holding the event
	Index     int    // position of the event inside that message
	MsgID     string // Nats-Msg-Id of that message
	Event     event.Event
}

// readAll reads every event stored in the node's log, in stream order.
func readAll(t testing.TB, n *testNode) []logged {
	t.Helper()
	return readLog(t, n.Node.Log())
}

func readLog(t testing.TB, l *eventlog.Log) []logged {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []logged
	err := l.ReadAll(ctx, func(m eventlog.Message) error {
		if shard.IsOutputID(m.MsgID) {
			return nil // forwarded by a visitor shard, not accepted by the collector
		}
		i := 0
		return event.EachEvent(m.Data, func(e *event.Event) error {
			out = append(out, logged{Partition: m.Partition, Seq: m.Seq, Index: i, MsgID: m.MsgID, Event: cloneEvent(e)})
			i++
			return nil
		})
	})
	require.NoError(t, err, "reading the log")
	return out
}

// cloneEvent copies e: EachEvent reuses the event and its byte slices alias
// the message.
func cloneEvent(e *event.Event) event.Event {
	c := *e
	c.Properties = bytes.Clone(e.Properties)
	c.Traits = bytes.Clone(e.Traits)
	c.Context = bytes.Clone(e.Context)
	c.Integrations = bytes.Clone(e.Integrations)
	return c
}

// byMessageID indexes the events of one tenant by messageId; it fails on a
// messageId stored twice.
func byMessageID(t testing.TB, all []logged, tenantID string) map[string]logged {
	t.Helper()
	out := map[string]logged{}
	for _, l := range all {
		if l.Event.Tenant != tenantID {
			continue
		}
		_, dup := out[l.Event.MessageID]
		require.False(t, dup, "messageId %q stored twice", l.Event.MessageID)
		out[l.Event.MessageID] = l
	}
	return out
}

// collectReq describes a request to the collector.
type collectReq struct {
	path     string // default /v1/batch
	basicKey string // Basic auth user; empty sends no Authorization
	body     []byte
	encoding string // Content-Encoding
}

// collectResp is an answer of the collector.
type collectResp struct {
	Status int
	Header http.Header
	Body   []byte
	// The JSON body: an error, or per-event results.
	Success  bool `json:"success"`
	Accepted int  `json:"accepted"`
	Rejected int  `json:"rejected"`
	Results  []struct {
		MessageID string `json:"messageId"`
		Status    string `json:"status"`
		Code      string `json:"code"`
		Message   string `json:"message"`
	} `json:"results"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func send(t testing.TB, n *testNode, r collectReq) collectResp {
	t.Helper()
	resp, err := trySend(n, r)
	require.NoError(t, err)
	return resp
}

// probeSend is send for conditions polled by require.Eventually, which run
// on another goroutine and must not call FailNow: a failed request has
// Status 0.
func probeSend(n *testNode, r collectReq) collectResp {
	resp, err := trySend(n, r)
	if err != nil {
		return collectResp{Body: []byte(err.Error())}
	}
	return resp
}

// trySend is send for goroutines that must not call FailNow.
func trySend(n *testNode, r collectReq) (collectResp, error) {
	path := r.path
	if path == "" {
		path = "/v1/batch"
	}
	req, err := http.NewRequest(http.MethodPost, n.URL+path, bytes.NewReader(r.body))
	if err != nil {
		return collectResp{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.basicKey != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(r.basicKey+":")))
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return collectResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return collectResp{}, err
	}
	out := collectResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &out); err != nil {
			return out, fmt.Errorf("decoding answer %d %s: %w", resp.StatusCode, b, err)
		}
		out.Status, out.Header, out.Body = resp.StatusCode, resp.Header, b
	}
	return out, nil
}

// batchBody builds a /v1/batch body from events (already JSON-encodable).
func batchBody(t testing.TB, extra map[string]any, events ...any) []byte {
	t.Helper()
	m := map[string]any{"batch": events}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// metrics scrapes /metrics and returns the samples of name, keyed by their
// labels in Prometheus' sorted form (`a="x",b="y"`).
func metrics(t testing.TB, n *testNode, name string) map[string]float64 {
	t.Helper()
	resp, err := httpClient.Get(n.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			require.Positive(t, end, "metric line %q", line)
			labels, rest = rest[1:end], rest[end+1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		require.NoError(t, err, "metric line %q", line)
		out[normLabels(labels)] = v
	}
	require.NoError(t, sc.Err())
	return out
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// labels renders label pairs the way metrics keys them: sorted by name.
func labels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+`="`+kv[i+1]+`"`)
	}
	return normLabels(strings.Join(parts, ","))
}

func normLabels(s string) string {
	ms := labelRE.FindAllStringSubmatch(s, -1)
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, m[1]+`="`+m[2]+`"`)
	}
	slices.Sort(parts) // Prometheus sorts already; labels() callers need not
	return strings.Join(parts, ",")
}
