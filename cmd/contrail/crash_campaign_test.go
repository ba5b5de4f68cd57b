package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
)

// crashStep is a step of the crash campaign's flow; the campaign sent to
// the server and the sequential model are both built from crashFlow.
type crashStep struct {
	Type   string `json:"type"`
	Change int64  `json:"change,omitempty"`
	List   string `json:"list,omitempty"`
	URL    string `json:"url,omitempty"`
	Body   string `json:"body,omitempty"`
}

const (
	crashEvent = "Crash Ping"
	crashList  = "crash"
	// crashHookBody names the lead, the trigger's n and the score the lead
	// had when the webhook step ran.
	crashHookBody = `{"lead":"{{lead.id}}","n":"{{event.properties.n}}","score":"{{lead.score}}"}`
)

var crashFlow = []crashStep{
	{Type: "change_score", Change: 1},
	{Type: "add_to_list", List: crashList},
	{Type: "call_webhook", Body: crashHookBody},
	{Type: "change_score", Change: 2},
	{Type: "remove_from_list", List: crashList},
	{Type: "change_score", Change: 4},
}

// crashModel is a lead as the flow leaves it when its runs are taken one
// after the other, each once.
type crashModel struct {
	score      int64
	lists      map[string]bool
	activities map[string]int // timeline entries by type
	hookScores []int64        // the score each webhook call saw
}

// modelLead applies runs runs of flow, each triggered by one tracked
// event, to a new lead.
func modelLead(flow []crashStep, runs int) crashModel {
	m := crashModel{lists: map[string]bool{}, activities: map[string]int{}}
	for range runs {
		m.activities["track"]++
		for _, s := range flow {
			switch s.Type {
			case "change_score":
				m.score += s.Change
				m.activities["change_score"]++
			case "add_to_list":
				m.lists[s.List] = true
				m.activities["add_to_list"]++
			case "remove_from_list":
				delete(m.lists, s.List)
				m.activities["remove_from_list"]++
			case "call_webhook":
				m.hookScores = append(m.hookScores, m.score)
				m.activities["campaign_step"]++
			}
		}
	}
	return m
}

// TestCrashCampaigns is the campaign fault test of issue 6: while leads
// trigger a flow of internal steps and a webhook, `contrail serve` is
// killed with SIGKILL at random points and restarted on the same data
// directory. Every lead must end as a sequential model says (score, list,
// timeline, one completed run per event), every webhook step that ran must
// have reached the deduplicating receiver, and no key may reach it for a
// step that did not run.
//
// By default it runs 1,000 leads and 3 kills; CONTRAIL_CRASH_LEADS and
// CONTRAIL_CRASH_KILLS set others (the figure is 10,000 leads).
func TestCrashCampaigns(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	leads := envInt(t, "CONTRAIL_CRASH_LEADS", 1000)
	kills := envInt(t, "CONTRAIL_CRASH_KILLS", 3)
	const perLead = 2 // Crash Ping events per lead
	total := leads * perLead
	// Generous: polls end as soon as their condition holds.
	patience := time.Minute + time.Duration(total)*5*time.Millisecond

	bin := buildBinary(t)
	sink := newHookSink(t)
	cfgPath := filepath.Join(t.TempDir(), "contrail.yaml")
	// Quick webhook retries, so that the 503s do not dominate the run.
	require.NoError(t, os.WriteFile(cfgPath, []byte("deliver:\n  base_backoff: 50ms\n  max_backoff: 1s\n"), 0o600))
	dataDir := t.TempDir()
	srv := &crashServer{t: t, bin: bin, dataDir: dataDir, logDir: t.TempDir(),
		args: []string{"--config", cfgPath, "--deliver-allow-private-networks"}}
	t.Cleanup(srv.cleanup)

	p := srv.start()
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tok))
	tenantID, writeKey := createTenant(t, p.url, token)
	l := &crashLoader{writeKey: writeKey, up: make(chan struct{}), client: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
	}}
	close(l.up)
	l.url.Store(p.url)
	defer l.client.CloseIdleConnections()
	api := &crashAPI{l: l, token: token, tenant: tenantID}
	ctx := t.Context()

	flow := slices.Clone(crashFlow)
	for i := range flow {
		if flow[i].Type == "call_webhook" {
			flow[i].URL = sink.URL + "/hook"
		}
	}
	var cmp struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Version int    `json:"version"`
	}
	_, err = api.do(ctx, http.MethodPost, "/api/v1/campaigns", map[string]any{
		"name":          "crash",
		"triggers":      []any{map[string]any{"type": "event_tracked", "event": crashEvent}},
		"qualification": "every_time",
		"flow":          flow,
	}, &cmp)
	require.NoError(t, err)
	_, err = api.do(ctx, http.MethodPost, "/api/v1/campaigns/"+cmp.ID+"/publish", nil, &cmp)
	require.NoError(t, err)
	require.Equal(t, "active", cmp.Status)
	var lists struct {
		Lists []struct{ ID, Name string } `json:"lists"`
	}
	_, err = api.do(ctx, http.MethodGet, "/api/v1/lists", nil, &lists)
	require.NoError(t, err)
	i := slices.IndexFunc(lists.Lists, func(x struct{ ID, Name string }) bool { return x.Name == crashList })
	require.GreaterOrEqual(t, i, 0, "publishing creates list %q: %+v", crashList, lists.Lists)
	listID := lists.Lists[i].ID

	// The leads first, without kills; the collector may not know the new
	// tenant yet, which the sender retries.
	start := time.Now()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var identifies, pings []segmentEvent
	for i := range leads {
		identifies = append(identifies, segmentEvent{Type: "identify", MessageID: fmt.Sprintf("%s-id-%d", run, i), UserID: crashUser(i)})
	}
	for n := 1; n <= perLead; n++ {
		for i := range leads {
			pings = append(pings, segmentEvent{Type: "track", Event: crashEvent, MessageID: fmt.Sprintf("%s-ping-%d-%d", run, i, n),
				UserID: crashUser(i), Properties: map[string]any{"n": n}})
		}
	}
	const batchLen = 50
	pingBatches := slices.Collect(slices.Chunk(pings, batchLen))
	ids := newBatchSender(l)
	require.NoError(t, ids.sendAll(ctx, slices.Collect(slices.Chunk(identifies, batchLen)), 4))
	t.Logf("%d identifies acknowledged in %s", leads, time.Since(start).Round(time.Millisecond))

	// The pings, while the server is killed at random points of the
	// flow: kill k comes at a random point of the k-th stretch of the
	// progress (events acknowledged plus webhook keys delivered).
	start = time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	defer load.Wait()
	defer stopLoad()
	sender := newBatchSender(l)
	loadDone := make(chan struct{})
	var ackedIn time.Duration // set before loadDone is closed
	load.Go(func() {
		defer close(loadDone)
		_ = sender.sendAll(loadCtx, pingBatches, 4)
		ackedIn = time.Since(start)
	})
	var stats struct {
		Entered, Completed, Failed, Removed, Waiting int64
	}
	statsPath := "/api/v1/campaigns/" + cmp.ID + "/stats"
	progress := func() int { return int(sender.acked.Load()) + sink.delivered() }
	var killedAt []string
	lastStart := start
	for k := range kills {
		target := int((float64(k) + rand.Float64()) / float64(kills) * 0.95 * float64(2*total))
		if !poll(patience, func() bool { return progress() >= target }) {
			t.Errorf("progress stalled at %d (events acknowledged %d, keys delivered %d) before kill %d at %d of %d",
				progress(), sender.acked.Load(), sink.delivered(), k+1, target, 2*total)
			break
		}
		entered := "?"
		if _, err := api.do(ctx, http.MethodGet, statsPath, nil, &stats); err == nil {
			entered = strconv.FormatInt(stats.Entered, 10)
		}
		killedAt = append(killedAt, fmt.Sprintf("%d/%d (acked %d, runs %s, delivered %d)", progress(), 2*total, sender.acked.Load(), entered, sink.delivered()))
		l.down()
		p.kill()
		p = srv.start()
		lastStart = time.Now()
		l.url.Store(p.url)
		l.open()
	}
	waitFor(t, patience, "every Crash Ping is acknowledged", func() bool {
		select {
		case <-loadDone:
			return true
		default:
			return false
		}
	})

	// After the last restart: until every run ended and every webhook
	// reached the sink. A loss shows in the checks below, precisely.
	done := poll(patience, func() bool {
		if _, err := api.do(ctx, http.MethodGet, statsPath, nil, &stats); err != nil {
			return false
		}
		return stats.Entered >= int64(total) && stats.Completed+stats.Failed+stats.Removed == stats.Entered && sink.delivered() >= total
	})
	t.Logf("flow done=%v %s after the last restart (%s after the first ping): entered %d, completed %d, failed %d, removed %d, waiting %d; keys delivered %d",
		done, time.Since(lastStart).Round(time.Millisecond), time.Since(start).Round(time.Millisecond), stats.Entered, stats.Completed, stats.Failed, stats.Removed, stats.Waiting, sink.delivered())

	// Every lead against the model, then the sink against the runs.
	want := modelLead(crashFlow, perLead)
	keys, problems := checkCrashLeads(ctx, api, tenantID, listID, leads, perLead, want, time.Now().Add(patience/2))
	// What the node sends after the checks is compared too: stop it first.
	// Closing the client's idle connections first spares the stop the 5s
	// net/http gives a connection that never sent a request.
	l.client.CloseIdleConnections()
	p.terminate()
	hooks := compareHooks(keys, sink.snapshot(), want)
	problems = append(problems, hooks.problems...)
	slices.Sort(problems)
	sink.mu.Lock()
	t.Logf("leads=%d events=%d kills=%d at progress %v; every event acknowledged after %s", leads, total, len(killedAt), killedAt, ackedIn.Round(time.Millisecond))
	t.Logf("batches: identify attempts=%d, ping attempts=%d for %d batches", ids.attempts.Load(), sender.attempts.Load(), len(pingBatches))
	nf, why := sender.failed()
	t.Logf("ping batches retried: %d (%s)", nf, why)
	t.Logf("webhook sink: requests=%d distinct keys=%d refused (503)=%d duplicates=%d cut=%d; keys on runs=%d",
		sink.requests, len(sink.bodies), sink.refused, sink.duplicates, sink.cut, len(keys))
	sinkProblems := slices.Clone(sink.problems)
	sink.mu.Unlock()

	// Every kind of difference is reported, not only the first.
	assert.Empty(t, firstFew(hooks.phantom), "%d webhook keys delivered for steps that did not run", len(hooks.phantom))
	assert.Empty(t, firstFew(hooks.undelivered), "%d webhook steps that ran were not delivered", len(hooks.undelivered))
	assert.Empty(t, firstFew(hooks.wrongBody), "%d webhook bodies name the wrong lead or event", len(hooks.wrongBody))
	assert.Empty(t, firstFew(sinkProblems), "%d bad webhook requests", len(sinkProblems))
	assert.Empty(t, firstFew(problems), "%d leads or runs differ from the sequential model", len(problems))
	assert.Equal(t, leads, hooks.leads, "leads with webhooks delivered")
}

// hookDiff is how the webhooks the sink acted on differ from the webhook
// steps on the runs.
type hookDiff struct {
	phantom     []string // delivered, but no run took the step
	undelivered []string // a run took the step, the sink never acted on it
	wrongBody   []string // the body names another lead or event
	problems    []string // a lead's webhooks saw other scores than the model's
	leads       int      // leads with a webhook delivered
}

// compareHooks compares the keys on the runs with the bodies the sink
// acted on, and the scores each lead's webhooks saw with the model's.
func compareHooks(keys map[string]hookWant, delivered map[string][]byte, want crashModel) hookDiff {
	var d hookDiff
	scores := map[string][]int64{} // lead → scores its webhooks saw
	for key, body := range delivered {
		w, ok := keys[key]
		if !ok {
			d.phantom = append(d.phantom, fmt.Sprintf("%s: %s", key, body))
			continue
		}
		var got struct{ Lead, N, Score string }
		if err := json.Unmarshal(body, &got); err != nil || got.Lead != w.lead || got.N != strconv.Itoa(w.n) {
			d.wrongBody = append(d.wrongBody, fmt.Sprintf("%s: %s, want lead %s n %d", key, body, w.lead, w.n))
			continue
		}
		s, err := strconv.ParseInt(got.Score, 10, 64)
		if err != nil {
			d.wrongBody = append(d.wrongBody, fmt.Sprintf("%s: %s: score: %v", key, body, err))
			continue
		}
		scores[w.lead] = append(scores[w.lead], s)
	}
	for key, w := range keys {
		if _, ok := delivered[key]; !ok {
			d.undelivered = append(d.undelivered, fmt.Sprintf("%s (lead %s, n %d)", key, w.lead, w.n))
		}
	}
	wantScores := slices.Sorted(slices.Values(want.hookScores))
	for lead, got := range scores {
		slices.Sort(got)
		if !slices.Equal(got, wantScores) {
			d.problems = append(d.problems, fmt.Sprintf("lead %s: webhooks saw scores %v, want %v", lead, got, wantScores))
		}
	}
	d.leads = len(scores)
	return d
}

func crashUser(i int) string { return "u" + strconv.Itoa(i) }

// envInt reads a positive count from the environment, else def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "%s", name)
	require.Positive(t, n, "%s", name)
	return n
}

// hookWant is what a webhook step's body must say.
type hookWant struct {
	lead string
	n    int
}

// crashRunView is a run as GET /api/v1/leads/{id}/runs shows it.
type crashRunView struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Trigger struct {
		Properties struct {
			N int `json:"n"`
		} `json:"properties"`
	} `json:"trigger"`
	Steps []struct {
		Type     string `json:"type"`
		Key      string `json:"key"`
		Delivery *struct {
			Status     string `json:"status"`
			HTTPStatus int    `json:"http_status"`
			Error      string `json:"error"`
		} `json:"delivery"`
	} `json:"steps"`
}

// settled says whether a run has ended and its webhook is done.
func (r *crashRunView) settled() bool {
	if r.Status != "completed" && r.Status != "failed" && r.Status != "removed" {
		return false
	}
	for _, s := range r.Steps {
		if s.Key != "" && (s.Delivery == nil || s.Delivery.Status == "pending") {
			return false
		}
	}
	return true
}

// checkCrashLeads reads every lead, its runs and its timeline, waiting
// until deadline for runs and deliveries to settle, and compares them with
// the model. It returns the webhook keys on the runs and the problems.
func checkCrashLeads(ctx context.Context, api *crashAPI, tenantID, listID string, leads, perLead int, want crashModel, deadline time.Time) (map[string]hookWant, []string) {
	var mu sync.Mutex
	keys := map[string]hookWant{}
	var problems []string
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	steps := make([]string, len(crashFlow))
	for i, s := range crashFlow {
		steps[i] = s.Type
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				id := event.LeadID(tenantID, crashUser(i))
				var ld struct {
					UserID string   `json:"user_id"`
					Score  int64    `json:"score"`
					Lists  []string `json:"lists"`
				}
				if _, err := api.do(ctx, http.MethodGet, "/api/v1/leads/"+id, nil, &ld); err != nil {
					report("lead %s (%s): %v", id, crashUser(i), err)
					continue
				}
				var runs struct {
					Runs []crashRunView `json:"runs"`
				}
				var err error
				poll(time.Until(deadline), func() bool {
					_, err = api.do(ctx, http.MethodGet, "/api/v1/leads/"+id+"/runs", nil, &runs)
					return err == nil && len(runs.Runs) >= perLead && !slices.ContainsFunc(runs.Runs, func(r crashRunView) bool { return !r.settled() })
				})
				if err != nil {
					report("runs of lead %s: %v", id, err)
					continue
				}
				var page struct {
					Activities []struct{ Type string } `json:"activities"`
				}
				if _, err := api.do(ctx, http.MethodGet, "/api/v1/leads/"+id+"/activities?limit=1000", nil, &page); err != nil {
					report("activities of lead %s: %v", id, err)
					continue
				}

				if ld.UserID != crashUser(i) {
					report("lead %s: user_id %q, want %q", id, ld.UserID, crashUser(i))
				}
				if ld.Score != want.score {
					report("lead %s: score %d, want %d", id, ld.Score, want.score)
				}
				if slices.Contains(ld.Lists, listID) != want.lists[crashList] {
					report("lead %s: lists %v, want in %s (%s): %v", id, ld.Lists, crashList, listID, want.lists[crashList])
				}
				acts := map[string]int{}
				for _, a := range page.Activities {
					acts[a.Type]++
				}
				for typ, n := range want.activities {
					if acts[typ] != n {
						report("lead %s: %d %s activities, want %d (timeline: %v)", id, acts[typ], typ, n, acts)
					}
				}
				if len(runs.Runs) != perLead {
					report("lead %s: %d runs, want %d", id, len(runs.Runs), perLead)
				}
				var ns []int
				for _, r := range runs.Runs {
					ns = append(ns, r.Trigger.Properties.N)
					var got []string
					for _, s := range r.Steps {
						got = append(got, s.Type)
					}
					if r.Status != "completed" || !slices.Equal(got, steps) {
						report("lead %s run %s: %s %q with steps %v, want completed with %v", id, r.ID, r.Status, r.Error, got, steps)
					}
					for _, s := range r.Steps {
						if s.Type != "call_webhook" {
							continue
						}
						if s.Key == "" || s.Delivery == nil || s.Delivery.Status != "delivered" {
							report("lead %s run %s: webhook step key %q delivery %+v", id, r.ID, s.Key, s.Delivery)
						}
						if s.Key == "" {
							continue
						}
						mu.Lock()
						if prev, dup := keys[s.Key]; dup {
							problems = append(problems, fmt.Sprintf("key %s on runs of %s and %s", s.Key, prev.lead, id))
						}
						keys[s.Key] = hookWant{lead: id, n: r.Trigger.Properties.N}
						mu.Unlock()
					}
				}
				slices.Sort(ns)
				if wantNs := seq(1, perLead); !slices.Equal(ns, wantNs) {
					report("lead %s: runs triggered by n=%v, want %v", id, ns, wantNs)
				}
			}
		})
	}
	for i := range leads {
		next <- i
	}
	close(next)
	wg.Wait()
	return keys, problems
}

// seq returns from, from+1, ..., to.
func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
