package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
)

// TestCrashPauseResume pauses one of two tenants under load, kills the
// process with SIGKILL while it is paused and again while its parked
// events replay, and checks that every acknowledged event of both tenants
// was applied exactly once and in order per visitor: the node's visitor
// state, web reports and LEADS outputs equal those of an uninterrupted
// replay of the log, and its lead state that of the LEADS log.
func TestCrashPauseResume(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	// CRASH_SERVE_ARGS adds flags to contrail serve: "--fair=true" runs the
	// test with overflow parking, which still loses events across a crash
	// now and then (see docs/fairness.md, Known problem).
	srv := &crashServer{t: t, bin: bin, dataDir: dataDir, logDir: t.TempDir(), args: strings.Fields(os.Getenv("CRASH_SERVE_ARGS"))}
	t.Cleanup(srv.cleanup)
	p := srv.start()
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tok))
	aID, aKey := createNamedTenant(t, p.url, token, "paused")
	bID, bKey := createNamedTenant(t, p.url, token, "steady")
	t.Logf("paused tenant %s, steady tenant %s", aID, bID)

	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	defer client.CloseIdleConnections()
	newLoader := func(key string) *crashLoader {
		l := &crashLoader{tr: newCrashTracker(), writeKey: key, run: strconv.FormatInt(time.Now().UnixNano(), 36), client: client}
		l.url.Store(p.url)
		l.up = make(chan struct{})
		close(l.up)
		return l
	}
	la, lb := newLoader(aKey), newLoader(bKey)
	loaders := []*crashLoader{la, lb}
	for _, l := range loaders {
		probes := 0
		waitFor(t, 10*time.Second, "the new tenant is accepted", func() bool {
			probes++
			l.send(context.Background(), "probe", probes)
			return l.tr.ackedCount() > 0
		})
	}
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var wg sync.WaitGroup
	for _, l := range loaders {
		for w := range 4 {
			wg.Go(func() { l.work(ctx, w) })
		}
	}
	defer func() { stopLoad(); wg.Wait() }()

	// runLoad lets the load run for d and until both tenants had some
	// more events acknowledged by this incarnation.
	runLoad := func(d time.Duration) {
		t.Helper()
		start, baseA, baseB := time.Now(), la.tr.ackedCount(), lb.tr.ackedCount()
		require.True(t, poll(d+20*time.Second, func() bool {
			return time.Since(start) >= d && la.tr.ackedCount() >= baseA+200 && lb.tr.ackedCount() >= baseB+200
		}), "load makes no progress")
	}
	admin := func(path string) {
		t.Helper()
		req, err := http.NewRequest("POST", p.url+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	restart := func() {
		t.Helper()
		for _, l := range loaders {
			l.down()
		}
		p.kill()
		p = srv.start()
		for _, l := range loaders {
			l.url.Store(p.url)
			l.open()
		}
	}
	backlog := func() float64 {
		var st struct {
			Tenants []struct {
				ID     string `json:"id"`
				Stages []struct {
					Backlog float64 `json:"backlog"`
				} `json:"stages"`
			} `json:"tenants"`
		}
		req, _ := http.NewRequest("GET", p.url+"/api/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return -1
		}
		n := 0.0
		for _, tn := range st.Tenants {
			if tn.ID == aID {
				for _, s := range tn.Stages {
					n += s.Backlog
				}
			}
		}
		return n
	}

	runLoad(time.Second)
	admin("/api/v1/tenants/paused/pause")
	runLoad(time.Second)
	t.Logf("paused: backlog of the paused tenant before the first kill: %.0f events", backlog())
	restart() // killed while paused
	runLoad(time.Second)
	admin("/api/v1/tenants/paused/resume")
	time.Sleep(200 * time.Millisecond)
	t.Logf("resumed: backlog of the paused tenant before the second kill: %.0f events", backlog())
	restart() // killed while the parked events replay
	runLoad(time.Second)

	for _, l := range loaders {
		l.stopping.Store(true)
	}
	p.terminate()
	stopLoad()
	wg.Wait()
	p = srv.start()
	waitProcessed(t, p.url, token)
	waitFor(t, 60*time.Second, "the parked events are replayed", func() bool { return backlog() == 0 })
	waitProcessed(t, p.url, token)
	p.terminate()

	for _, tc := range []struct {
		id string
		l  *crashLoader
	}{{aID, la}, {bID, lb}} {
		st := readCrashLog(t, dataDir, tc.id)
		tc.l.tr.mu.Lock()
		var lost []string
		for id := range tc.l.tr.acked {
			if st.count[id] == 0 {
				lost = append(lost, id)
			}
		}
		acked := len(tc.l.tr.acked)
		tc.l.tr.mu.Unlock()
		require.Empty(t, firstFew(lost), "%d acknowledged events of %s are missing from the log", len(lost), tc.id)
		t.Logf("tenant %s: %d events acknowledged, %d stored", tc.id, acked, st.events)
	}
	checkProcessing(t, dataDir, aID, event.LeadID(aID, "user-0"))

	ctxL, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, closeLog := openStoppedLog(t, ctxL, dataDir)
	defer closeLog()
	parked, err := l.StreamLastSeq(ctxL, eventlog.StreamParked)
	require.NoError(t, err)
	require.Positive(t, parked, "the paused tenant's events went through PARKED")
}
