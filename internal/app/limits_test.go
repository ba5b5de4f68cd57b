package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/app"
	"github.com/contrailhq/contrail/internal/config"
)

// events returns a batch body of k track events with messageIds
// prefix-0..k-1. It is safe in require.Eventually conditions.
func events(prefix string, k int, extra map[string]any) []byte {
	evs := make([]any, k)
	for i := range evs {
		e := track(fmt.Sprintf("%s-%d", prefix, i), "a-"+prefix)
		maps.Copy(e, extra)
		evs[i] = e
	}
	b, err := json.Marshal(map[string]any{"batch": evs})
	if err != nil {
		panic(err)
	}
	return b
}

// TestLimitsApplyWithoutRestart changes a tenant's limits and keys through
// the admin API and sees the running collector apply them.
func TestLimitsApplyWithoutRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, key, _ := createTenant(t, n, "live-limits")
	resp := send(t, n, collectReq{basicKey: key, body: events("five", 5, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)

	// max_batch_events: the next batch of 5 is refused.
	patchLimits(t, n, tenantID, map[string]any{"max_batch_events": 3})
	probe := 0
	require.Eventually(t, func() bool {
		probe++
		resp = probeSend(n, collectReq{basicKey: key, body: events(fmt.Sprintf("probe-%d", probe), 5, nil)})
		return resp.Status == http.StatusRequestEntityTooLarge
	}, 10*time.Second, 10*time.Millisecond, "max_batch_events=3 applies without a restart")
	require.Equal(t, "too_many_events", resp.Error.Code)
	resp = send(t, n, collectReq{basicKey: key, body: events("three", 3, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)

	// max_event_bytes: a 3 KB event is rejected inside a 200.
	patchLimits(t, n, tenantID, map[string]any{"max_event_bytes": 2048})
	pad := map[string]any{"properties": map[string]any{"pad": strings.Repeat("p", 3000)}}
	require.Eventually(t, func() bool {
		probe++
		resp = probeSend(n, collectReq{basicKey: key, body: events(fmt.Sprintf("probe-%d", probe), 1, pad)})
		return resp.Status == http.StatusOK && resp.Rejected == 1
	}, 10*time.Second, 10*time.Millisecond, "max_event_bytes=2048 applies without a restart")
	require.Equal(t, "event_too_large", resp.Results[0].Code)
	var limits map[string]any
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/tenants/"+tenantID+"/limits", nil, &limits))
	require.EqualValues(t, 3, limits["max_batch_events"], "PATCH keeps the fields it was not sent")
	require.EqualValues(t, 2048, limits["max_event_bytes"])

	// Raising the limit again lets a batch of 5 through.
	patchLimits(t, n, tenantID, map[string]any{"max_batch_events": 10})
	require.Eventually(t, func() bool {
		probe++
		return probeSend(n, collectReq{basicKey: key, body: events(fmt.Sprintf("probe-%d", probe), 5, nil)}).Status == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "max_batch_events=10 applies without a restart")

	// A new write key works, a revoked one stops working.
	var added struct {
		Secret string `json:"secret"`
	}
	require.Equal(t, http.StatusCreated, adminDo(t, n, http.MethodPost, "/api/v1/tenants/"+tenantID+"/keys", map[string]any{"kind": "write"}, &added))
	require.NotEmpty(t, added.Secret)
	require.Eventually(t, func() bool {
		probe++
		return probeSend(n, collectReq{basicKey: added.Secret, body: events(fmt.Sprintf("probe-%d", probe), 1, nil)}).Status == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "a new write key works without a restart")
	var keys struct {
		Keys []struct {
			ID     string `json:"id"`
			Kind   string `json:"kind"`
			Secret string `json:"secret"`
		} `json:"keys"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/tenants/"+tenantID+"/keys", nil, &keys))
	oldKeyID := ""
	for _, k := range keys.Keys {
		if k.Kind == "write" && k.Secret == key {
			oldKeyID = k.ID
		}
	}
	require.NotEmpty(t, oldKeyID, "the first write key is listed: %+v", keys)
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodDelete, "/api/v1/tenants/"+tenantID+"/keys/"+oldKeyID, nil, nil))
	require.Eventually(t, func() bool {
		probe++
		resp = probeSend(n, collectReq{basicKey: key, body: events(fmt.Sprintf("probe-%d", probe), 1, nil)})
		return resp.Status == http.StatusUnauthorized
	}, 10*time.Second, 10*time.Millisecond, "a revoked write key stops working without a restart")
	require.Equal(t, "invalid_write_key", resp.Error.Code)
	resp = send(t, n, collectReq{basicKey: added.Secret, body: events("after-revoke", 1, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
}

// TestTenantsSurviveRestart stops a node and starts a new one on the same
// data directory: the admin token, the tenant, its key and limits, and the
// stored events are all still there.
func TestTenantsSurviveRestart(t *testing.T) {
	t.Parallel()
	n1 := startNode(t, nil)
	tokenPath := filepath.Join(n1.DataDir, app.TokenFile)
	tokenFile, err := os.ReadFile(tokenPath)
	require.NoError(t, err)
	require.Equal(t, n1.Token, strings.TrimSpace(string(tokenFile)))
	tenantID, key, _ := createTenant(t, n1, "durable")
	patchLimits(t, n1, tenantID, map[string]any{"max_batch_events": 7})
	resp := send(t, n1, collectReq{basicKey: key, body: events("before", 3, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	n1.stop(t)

	n2 := startNodeWith(t, n1.Cfg)
	require.Equal(t, n1.Token, n2.Token, "the admin token is kept in the data dir")
	again, err := os.ReadFile(tokenPath)
	require.NoError(t, err)
	require.Equal(t, tokenFile, again)
	st, err := os.Stat(tokenPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the admin token file is private")

	var got struct {
		ID     string         `json:"id"`
		Name   string         `json:"name"`
		Limits map[string]any `json:"limits"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n2, http.MethodGet, "/api/v1/tenants/"+tenantID, nil, &got))
	require.Equal(t, "durable", got.Name)
	require.EqualValues(t, 7, got.Limits["max_batch_events"])

	// The node is ready only once its tenants are loaded: no waiting here.
	resp = send(t, n2, collectReq{basicKey: key, body: events("after", 2, nil)})
	require.Equal(t, http.StatusOK, resp.Status, "answer: %s", resp.Body)
	resp = send(t, n2, collectReq{basicKey: key, body: events("too-many", 8, nil)})
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.Status, "the tenant's limits survived: %s", resp.Body)
	require.Equal(t, "too_many_events", resp.Error.Code)

	stored := byMessageID(t, readAll(t, n2), tenantID)
	require.Len(t, stored, 5)
	for _, id := range []string{"before-0", "before-1", "before-2", "after-0", "after-1"} {
		require.Contains(t, stored, id)
	}
}

// TestGracefulShutdown stops a node under load and with a request in
// flight: the request in flight is answered 200 once stored, and after a
// restart every request answered 200 has its events in the log, once.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, func(c *config.Config) { c.Log.Partitions = 4 })
	tenantID, key, _ := createTenant(t, n, "shutdown")

	// A request whose body is still on its way when the node is stopped.
	// The server asks for the body (100 Continue) only from the handler.
	pr, pw := io.Pipe()
	got100 := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { close(got100) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/v1/batch", pr)
	require.NoError(t, err)
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Expect", "100-continue")
	slowClient := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}, Timeout: time.Minute}
	type answer struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan answer, 1)
	go func() {
		resp, err := slowClient.Do(req)
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-got100:
	case a := <-inflight:
		require.FailNow(t, "the slow request ended early", "%+v", a)
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the handler never asked for the body")
	}

	// Load from several clients until the node stops taking requests.
	var (
		mu      sync.Mutex
		acked   []string
		unknown []string // answers that are neither 200 nor a refusal to retry
		nAcked  atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				prefix := fmt.Sprintf("load-%d-%d", w, i)
				body, _ := json.Marshal(map[string]any{"batch": []any{ // no t.* calls off the test goroutine
					track(prefix+"-a", fmt.Sprintf("v-%d-%d", w, i%5)), track(prefix+"-b", fmt.Sprintf("v-%d-%d", w, i%3)),
				}})
				resp, err := trySend(n, collectReq{basicKey: key, body: body})
				switch {
				case err != nil:
					return // refused or cut connection: the client would retry
				case resp.Status == http.StatusOK && resp.Accepted == 2:
					mu.Lock()
					acked = append(acked, prefix+"-a", prefix+"-b")
					mu.Unlock()
					nAcked.Add(2)
				case resp.Status == http.StatusServiceUnavailable && resp.Error.Code == "shutting_down":
					return
				default:
					mu.Lock()
					unknown = append(unknown, fmt.Sprintf("%d %s", resp.Status, resp.Body))
					mu.Unlock()
					return
				}
			}
		})
	}
	require.Eventually(t, func() bool { return nAcked.Load() >= 100 }, 30*time.Second, time.Millisecond, "load is flowing")

	// Stop the node; once its listener is closed, send the rest of the slow body.
	n.cancel()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 30*time.Second, time.Millisecond, "the node stops accepting connections")
	_, err = pw.Write([]byte(`{"batch":[{"type":"track","messageId":"in-flight","anonymousId":"a-slow","event":"Slow"}]}`))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	var a answer
	select {
	case a = <-inflight:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the request in flight was not answered")
	}
	require.NoError(t, a.err)
	require.Equal(t, http.StatusOK, a.status, "the request in flight is answered once stored: %s", a.body)
	require.Contains(t, a.body, `"accepted":1`)

	wg.Wait()
	n.stop(t)
	require.Empty(t, unknown, "answers other than 200 or 503 shutting_down")

	// After a restart, everything acknowledged is there, once.
	n2 := startNodeWith(t, n.Cfg)
	stored := byMessageID(t, readAll(t, n2), tenantID)
	require.Contains(t, stored, "in-flight")
	for _, id := range acked {
		require.Contains(t, stored, id, "acknowledged event %s was lost in the shutdown", id)
	}
	t.Logf("%d events acknowledged under load, %d stored", len(acked), len(stored))
}

// TestNewWriteKeyWorksAtOnce checks read-your-writes between the admin API
// and the collector: a write key handed out by POST /api/v1/tenants works on
// the very next request.
func TestNewWriteKeyWorksAtOnce(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	// The race is between the admin API's answer and the watch: give it
	// many chances, from several clients at once.
	const workers, perWorker = 10, 10
	var wg sync.WaitGroup
	failures := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for j := range perWorker {
				tryNewKey(n, w*perWorker+j, failures)
			}
		})
	}
	wg.Wait()
	close(failures)
	var all []string
	for f := range failures {
		all = append(all, f)
	}
	require.Empty(t, all, "a new write key must work as soon as the admin API returned it")
}

// tryNewKey creates tenant i and sends one event with its write key at
// once; it reports what went wrong on failures.
func tryNewKey(n *testNode, i int, failures chan<- string) {
	body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("at-once-%d", i)})
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/api/v1/tenants", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+n.Token)
	resp, err := httpClient.Do(req)
	if err != nil {
		failures <- err.Error()
		return
	}
	var created struct {
		WriteKey string `json:"write_key"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		failures <- fmt.Sprintf("creating tenant: %d %v", resp.StatusCode, err)
		return
	}
	ev, _ := json.Marshal(track(fmt.Sprintf("at-once-%d", i), "a-at-once"))
	got, err := trySend(n, collectReq{path: "/v1/track", basicKey: created.WriteKey, body: ev})
	if err != nil {
		failures <- err.Error()
	} else if got.Status != http.StatusOK {
		failures <- fmt.Sprintf("tenant %d: first request with the new write key: %d %s", i, got.Status, got.Body)
	}
}
