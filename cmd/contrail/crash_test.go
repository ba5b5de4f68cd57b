package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// TestCrash is the crash test of DESIGN.md §11: it runs `contrail serve` as
// a process under load, kills it with SIGKILL while requests are in flight
// and shards are processing, restarts it on the same data directory, and
// checks that every acknowledged event was stored exactly once in the log
// and processed exactly once: the visitor shards' state and their LEADS
// outputs equal those of an uninterrupted run over the same log.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		durability string
		kills      int
		load       time.Duration // per incarnation of the process
	}{
		{config.DurabilityDefault, 3, 1500 * time.Millisecond},
		{config.DurabilityStrict, 2, time.Second},
	} {
		t.Run(tc.durability, func(t *testing.T) {
			crashTest(t, bin, tc.durability, tc.kills, tc.load)
		})
	}
}

// buildBinary builds this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build contrail: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "contrail")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, gobin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

func crashTest(t *testing.T, bin, durability string, kills int, load time.Duration) {
	dataDir := t.TempDir()
	logDir := t.TempDir()
	srv := &crashServer{t: t, bin: bin, dataDir: dataDir, logDir: logDir, args: []string{"--durability", durability}}
	t.Cleanup(srv.cleanup)

	p := srv.start()
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	require.NoError(t, err)
	tenantID, writeKey := createTenant(t, p.url, strings.TrimSpace(string(tok)))

	tr := newCrashTracker()
	l := &crashLoader{tr: tr, writeKey: writeKey, run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	l.url.Store(p.url)
	l.up = make(chan struct{})
	close(l.up)
	l.client = &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
	}
	defer l.client.CloseIdleConnections()

	// The tenant reaches the collector through a KV watch: wait until an
	// event is acknowledged before loading.
	probes := 0
	waitFor(t, 10*time.Second, "the new tenant is accepted", func() bool {
		probes++
		l.send(context.Background(), "probe", probes)
		return tr.ackedCount() > 0
	})

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { l.work(ctx, w) })
	}
	// API writes go through LEADS too: one worker adds to a lead's score.
	scores := &scoreWorker{client: l.client, token: strings.TrimSpace(string(tok)), tenant: tenantID, lead: event.LeadID(tenantID, "user-0")}
	wg.Go(func() { scores.work(ctx, l) })
	// Stop the load before the deferred cleanups kill the process.
	defer func() {
		stopLoad()
		wg.Wait()
	}()

	// runLoad lets the load run for at least d and until some more events
	// were acknowledged by this incarnation of the process.
	runLoad := func(d time.Duration) {
		start, base := time.Now(), tr.ackedCount()
		ok := poll(d+20*time.Second, func() bool {
			return time.Since(start) >= d && tr.ackedCount() >= base+200
		})
		if !ok {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			require.FailNow(t, "load makes no progress", "acknowledged %d events in %s; requests ok=%d failed=%d (%s); in flight %d",
				len(tr.acked)-base, time.Since(start).Round(time.Millisecond), tr.okRequests, tr.failedRequests, tr.failureSummary(), l.inflight.Load())
		}
	}
	var inflightAtKill []int64
	for range kills {
		runLoad(load)
		inflightAtKill = append(inflightAtKill, l.inflight.Load())
		l.down()
		p.kill()
		p = srv.start()
		l.url.Store(p.url)
		l.open()
	}
	runLoad(load)

	// A graceful stop under load answers the requests in flight; what it
	// acknowledged is stored too. Workers send nothing new meanwhile.
	l.stopping.Store(true)
	inflightAtTerm := l.inflight.Load()
	tr.mu.Lock()
	okBefore, failedBefore := tr.okRequests, tr.failedRequests
	tr.mu.Unlock()
	p.terminate()
	wg.Wait()
	tr.mu.Lock()
	okAtTerm, failedAtTerm := tr.okRequests-okBefore, tr.failedRequests-failedBefore
	tr.mu.Unlock()

	// Let the shards finish: one more incarnation, without load, until
	// every partition's position is the log's last message.
	token := strings.TrimSpace(string(tok))
	p = srv.start()
	waitProcessed(t, p.url, token)
	p.terminate()

	st := readCrashLog(t, dataDir, tenantID)
	score := checkProcessing(t, dataDir, tenantID, scores.lead)
	t.Logf("score of %s: %d; score requests applied=%d stored-not-yet-applied=%d unknown=%d",
		scores.lead, score, scores.applied.Load(), scores.accepted.Load(), scores.unknown.Load())
	acked := scores.applied.Load() + scores.accepted.Load()
	require.Positive(t, acked, "score requests were acknowledged")
	require.GreaterOrEqual(t, score, acked, "every acknowledged score change is applied")
	require.LessOrEqual(t, score, acked+scores.unknown.Load(), "no score change is applied twice")
	tr.mu.Lock()
	defer tr.mu.Unlock()

	var lost, phantom, unackedStored []string
	for id := range tr.acked {
		if st.count[id] == 0 {
			lost = append(lost, id)
		}
	}
	var twice []string
	for id, n := range st.count {
		if !tr.sent[id] {
			phantom = append(phantom, id)
		}
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s×%d (acknowledged: %v)", id, n, tr.acked[id]))
		}
		if !tr.acked[id] {
			unackedStored = append(unackedStored, id)
		}
	}
	t.Logf("durability=%s kills=%d (requests in flight at each kill: %v; at SIGTERM: %d, then answered %d, failed %d)",
		durability, kills, inflightAtKill, inflightAtTerm, okAtTerm, failedAtTerm)
	t.Logf("events sent=%d acknowledged=%d stored=%d unacknowledged-but-stored=%d; log messages=%d; requests ok=%d failed=%d (%s)",
		len(tr.sent), len(tr.acked), st.events, len(unackedStored), st.messages, tr.okRequests, tr.failedRequests, tr.failureSummary())

	require.Empty(t, firstFew(lost), "%d acknowledged events are missing from the log", len(lost))
	require.Empty(t, firstFew(twice), "%d events are stored more than once", len(twice))
	require.Empty(t, firstFew(st.dupMsgIDs), "%d log messages share a Nats-Msg-Id", len(st.dupMsgIDs))
	require.Empty(t, firstFew(phantom), "%d stored events were never sent", len(phantom))
	require.Empty(t, st.otherTenants, "events of another tenant in the log")
}

// firstFew returns at most 10 elements of s, for failure messages.
func firstFew(s []string) []string { return s[:min(len(s), 10)] }

// crashServer starts incarnations of `contrail serve` on one data directory.
type crashServer struct {
	t       *testing.T
	bin     string
	dataDir string
	logDir  string
	args    []string
	mu      sync.Mutex
	procs   []*crashProc
}

// crashProc is one running `contrail serve`.
type crashProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // of Wait, once done is closed
}

// start starts the server on a free port and waits until /readyz answers 200.
func (s *crashServer) start() *crashProc {
	t := s.t
	t.Helper()
	s.mu.Lock()
	n := len(s.procs)
	s.mu.Unlock()
	addr := freeAddr(t)
	logPath := filepath.Join(s.logDir, fmt.Sprintf("serve-%d.log", n))
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close() // the child has its own descriptor
	args := append([]string{"serve", "--data-dir", s.dataDir, "--http", addr, "--node-name", "crash", "--log-level", "warn"}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	for _, kv := range os.Environ() { // the test's flags, not the caller's settings
		if !strings.HasPrefix(kv, "CONTRAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := &crashProc{t: t, cmd: cmd, url: "http://" + addr, logPath: logPath, done: make(chan struct{})}
	require.NoError(t, cmd.Start())
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	start := time.Now()
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	waitFor(t, 30*time.Second, "contrail serve is ready", func() bool {
		select {
		case <-p.done:
			require.FailNow(t, "contrail serve exited while starting", "%v\n%s", p.err, p.logTail())
		default:
		}
		resp, err := hc.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Logf("contrail serve #%d ready in %s", n, time.Since(start).Round(time.Millisecond))
	return p
}

// kill sends SIGKILL and waits for the process to end.
func (p *crashProc) kill() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Kill())
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		require.FailNow(p.t, "killed process did not exit in 10s")
	}
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *crashProc) terminate() {
	p.t.Helper()
	start := time.Now()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		require.FailNow(p.t, "contrail serve did not stop in 30s after SIGTERM", p.logTail())
	}
	require.NoError(p.t, p.err, "contrail serve must exit 0 after SIGTERM\n%s", p.logTail())
	p.t.Logf("graceful stop took %s", time.Since(start).Round(time.Millisecond))
}

// logTail returns the end of the process's output.
func (p *crashProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cleanup kills every process still running and, when the test failed,
// shows their output.
func (s *crashServer) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.procs {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if s.t.Failed() {
			s.t.Logf("output of contrail serve #%d (%v):\n%s", i, p.err, p.logTail())
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		require.FailNow(t, "timed out waiting: "+what, "after %s", timeout)
	}
}

// poll calls cond every 10ms until it holds or timeout passes, and reports
// whether it held.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// createTenant creates a tenant through the admin API and returns its id and write key.
func createTenant(t *testing.T, url, token string) (string, string) {
	t.Helper()
	return createNamedTenant(t, url, token, "crash")
}

// createNamedTenant creates tenant name and returns its id and write key.
func createNamedTenant(t *testing.T, url, token, name string) (string, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url+"/api/v1/tenants", strings.NewReader(`{"name":"`+name+`"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "create tenant: %s", b)
	var c struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	require.NoError(t, json.Unmarshal(b, &c))
	require.NotEmpty(t, c.WriteKey)
	return c.ID, c.WriteKey
}

// crashTracker records what was sent and what was acknowledged.
type crashTracker struct {
	mu             sync.Mutex
	sent           map[string]bool
	acked          map[string]bool
	okRequests     int
	failedRequests int
	failures       map[string]int // reason → requests
}

func newCrashTracker() *crashTracker {
	return &crashTracker{sent: map[string]bool{}, acked: map[string]bool{}, failures: map[string]int{}}
}

func (tr *crashTracker) ackedCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.acked)
}

func (tr *crashTracker) failureSummary() string {
	var parts []string
	for reason, n := range tr.failures {
		parts = append(parts, fmt.Sprintf("%s: %d", reason, n))
	}
	return strings.Join(parts, ", ")
}

// crashLoader sends Segment batches to the current incarnation of the server.
type crashLoader struct {
	tr       *crashTracker
	writeKey string
	run      string // makes message ids unique across test runs
	client   *http.Client
	url      atomic.Value // string
	inflight atomic.Int64
	stopping atomic.Bool // set: send no more requests

	mu sync.Mutex
	up chan struct{} // closed while the server is up
}

// down makes workers that fail wait until open is called.
func (l *crashLoader) down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.up:
		l.up = make(chan struct{})
	default:
	}
}

func (l *crashLoader) open() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.up:
	default:
		close(l.up)
	}
}

func (l *crashLoader) upC() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

// work sends batches until ctx ends. After a failed request it waits until
// the server is up (again).
func (l *crashLoader) work(ctx context.Context, worker int) {
	for i := 0; ctx.Err() == nil && !l.stopping.Load(); i++ {
		if l.send(ctx, "w"+strconv.Itoa(worker), i) {
			continue
		}
		select {
		case <-l.upC():
		case <-ctx.Done():
		}
	}
}

const batchSize = 20

// send posts one batch and records its events; it reports whether the
// request got an answer.
func (l *crashLoader) send(ctx context.Context, worker string, n int) bool {
	type ev struct {
		Type        string         `json:"type"`
		Event       string         `json:"event,omitempty"`
		Name        string         `json:"name,omitempty"`
		MessageID   string         `json:"messageId"`
		AnonymousID string         `json:"anonymousId"`
		UserID      string         `json:"userId,omitempty"`
		Properties  map[string]any `json:"properties"`
	}
	var batch struct {
		Batch []ev `json:"batch"`
	}
	ids := make([]string, batchSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%s-%d-%d", l.run, worker, n, i)
		v := (n*batchSize + i) % 50
		e := ev{Type: "track", Event: "Crash Test", MessageID: ids[i], AnonymousID: "visitor-" + strconv.Itoa(v),
			Properties: map[string]any{"worker": worker, "n": n, "i": i}}
		if i%5 == 0 {
			e.Type, e.Event, e.Name = "page", "", "Pricing"
		}
		switch {
		case v%10 == 0: // known leads: every event goes to LEADS
			e.UserID = "user-" + strconv.Itoa(v)
		case v%10 == 5 && n%4 == 3: // promoted now and then: back-fills
			e.Type, e.Event, e.Name, e.UserID = "identify", "", "", "user-"+strconv.Itoa(v)
		}
		batch.Batch = append(batch.Batch, e)
	}
	body, _ := json.Marshal(batch)

	l.tr.mu.Lock()
	for _, id := range ids {
		l.tr.sent[id] = true
	}
	l.tr.mu.Unlock()

	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	status, results, err := l.post(ctx, body)

	l.tr.mu.Lock()
	defer l.tr.mu.Unlock()
	if err != nil {
		l.tr.failedRequests++
		reason := failureReason(err)
		if l.stopping.Load() {
			reason = "during graceful stop: " + reason
		}
		l.tr.failures[reason]++
		return false
	}
	if status != http.StatusOK {
		l.tr.failedRequests++
		l.tr.failures["status "+strconv.Itoa(status)]++
		return true
	}
	l.tr.okRequests++
	for _, r := range results {
		if r.Status == "accepted" {
			l.tr.acked[r.MessageID] = true
		} else {
			l.tr.failures["event "+r.Status]++
		}
	}
	return true
}

// failureReason names the kind of a failed request, for the summary.
func failureReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return "transport error"
}

type crashResult struct {
	MessageID string `json:"messageId"`
	Status    string `json:"status"`
}

func (l *crashLoader) post(ctx context.Context, body []byte) (int, []crashResult, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", l.url.Load().(string)+"/v1/batch", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(l.writeKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err // the answer was cut: not an acknowledgement
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	var answer struct {
		Results []crashResult `json:"results"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return 0, nil, fmt.Errorf("decoding answer %q: %w", b, err)
	}
	return resp.StatusCode, answer.Results, nil
}

// crashLog is what the log holds.
type crashLog struct {
	messages     int
	events       int
	count        map[string]int // messageId → times stored
	dupMsgIDs    []string
	otherTenants int
}

// readCrashLog opens the stopped node's JetStream store in this process and
// reads the whole EVENTS stream.
func readCrashLog(t *testing.T, dataDir, tenantID string) crashLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, closeLog := openStoppedLog(t, ctx, dataDir)
	defer closeLog()
	def := config.Default().Log

	st := crashLog{count: map[string]int{}}
	msgIDs := map[string]bool{}
	err := l.ReadAll(ctx, func(m eventlog.Message) error {
		st.messages++
		if msgIDs[m.MsgID] {
			st.dupMsgIDs = append(st.dupMsgIDs, m.MsgID)
		}
		msgIDs[m.MsgID] = true
		return event.EachEvent(m.Data, func(e *event.Event) error {
			st.events++
			if e.Tenant != tenantID {
				st.otherTenants++
			}
			if p := event.Partition(e.Tenant, e.VisitorKey(), def.Partitions); p != m.Partition {
				return fmt.Errorf("event %s of visitor %s is in partition %d, want %d", e.MessageID, e.VisitorKey(), m.Partition, p)
			}
			st.count[e.MessageID]++
			return nil
		})
	})
	require.NoError(t, err)
	return st
}
