package app_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

// The example, as it must be accepted.
const pricingCampaign = `{"name": "pricing visitors",
 "triggers": [{"type": "visits_web_page", "constraint": "event.properties.path == '/pricing'"}],
 "qualification": "once",
 "flow": [{"type": "change_score", "change": 10},
          {"type": "call_webhook", "url": "https://crm.example/hook", "body": "{\"lead\":\"{{lead.email}}\"}"}]}`

type campaignView struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Status      string          `json:"status"`
	Version     int             `json:"version"`
	Unpublished bool            `json:"unpublished_changes"`
	Spec        json.RawMessage `json:"spec"`
}

type runView struct {
	ID       string            `json:"id"`
	Campaign string            `json:"campaign"`
	Lead     string            `json:"lead"`
	Status   string            `json:"status"`
	Version  int               `json:"version"`
	Tokens   map[string]string `json:"tokens"`
	Error    string            `json:"error"`
	Steps    []struct {
		Path     string `json:"path"`
		Type     string `json:"type"`
		Result   string `json:"result"`
		Key      string `json:"key"`
		Delivery *struct {
			Status     string `json:"status"`
			Attempts   int    `json:"attempts"`
			HTTPStatus int    `json:"http_status"`
			Error      string `json:"error"`
		} `json:"delivery"`
	} `json:"steps"`
}

type apiError struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Problems []struct {
			Path    string `json:"path"`
			Message string `json:"message"`
			Line    int    `json:"line"`
			Column  int    `json:"column"`
		} `json:"problems"`
	} `json:"error"`
}

// campaignNode starts a node whose webhooks may reach the test's
// loopback receivers and retry quickly.
func campaignNode(t testing.TB, mutate func(*config.Config)) *testNode {
	t.Helper()
	return startNode(t, func(c *config.Config) {
		c.Log.Partitions, c.Log.LeadPartitions = 4, 4
		c.Deliver.AllowPrivateNetworks = true
		c.Deliver.BaseBackoff, c.Deliver.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

// rawDo sends body as it is with contentType and returns the status and
// the answer.
func rawDo(t testing.TB, n *testNode, key, method, path, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", contentType)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// createCampaign posts a campaign (a JSON string, or anything to encode)
// and publishes it unless draft.
func createCampaign(t testing.TB, n *testNode, key string, spec any, publish bool) campaignView {
	t.Helper()
	body, ok := spec.(string)
	if !ok {
		body = string(mustJSON(t, spec))
	}
	st, b := rawDo(t, n, key, http.MethodPost, "/api/v1/campaigns", "application/json", body)
	require.Equal(t, http.StatusCreated, st, "%s", b)
	var c campaignView
	require.NoError(t, json.Unmarshal(b, &c))
	require.NotEmpty(t, c.ID)
	require.Equal(t, "draft", c.Status)
	if !publish {
		return c
	}
	return campaignAction(t, n, key, c.ID, "publish")
}

// campaignAction posts publish, pause or resume and expects 200.
func campaignAction(t testing.TB, n *testNode, key, id, action string) campaignView {
	t.Helper()
	var c campaignView
	st, b := apiDo(t, n, key, http.MethodPost, "/api/v1/campaigns/"+id+"/"+action, nil, &c)
	require.Equal(t, http.StatusOK, st, "%s: %s", action, b)
	return c
}

// getRuns reads runs from path into a fresh slice.
func getRuns(t testing.TB, n *testNode, key, path string) []runView {
	t.Helper()
	var out struct {
		Runs []runView `json:"runs"`
	}
	st, b := apiDo(t, n, key, http.MethodGet, path, nil, &out)
	require.Equal(t, http.StatusOK, st, "%s", b)
	return out.Runs
}

// getLead reads a lead by id into a fresh value.
func getLead(t testing.TB, n *testNode, key, id string) leadView {
	t.Helper()
	var l leadView
	st, b := apiDo(t, n, key, http.MethodGet, "/api/v1/leads/"+id, nil, &l)
	require.Equal(t, http.StatusOK, st, "%s", b)
	return l
}

// countActivities counts a lead's activities of one type.
func countActivities(t testing.TB, n *testNode, key, id, typ string) int {
	t.Helper()
	var page activityPage
	st, b := apiDo(t, n, key, http.MethodGet, "/api/v1/leads/"+id+"/activities?limit=1000&type="+typ, nil, &page)
	require.Equal(t, http.StatusOK, st, "%s", b)
	return len(page.Activities)
}

// waitFor polls cond on the test's goroutine until it holds.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendEvents posts events with the write key and expects them accepted.
func sendEvents(t testing.TB, n *testNode, wk string, events ...any) {
	t.Helper()
	resp := send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, events...)})
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Body)
	require.Equal(t, len(events), resp.Accepted)
}

func pageOf(user, path string) map[string]any {
	return map[string]any{"type": "page", "userId": user, "properties": map[string]any{"path": path, "url": "https://acme.test" + path}}
}

func trackOf(user, name string) map[string]any {
	return map[string]any{"type": "track", "userId": user, "event": name}
}

// hookCall is one request a receiver got.
type hookCall struct {
	Method string
	Header http.Header
	Body   []byte
}

// hookReceiver records the webhook calls it gets; answer, if set, answers
// call number i (from 1), else 200.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer func(w http.ResponseWriter, r *http.Request, i int)
}

func newHookReceiver(t testing.TB, answer func(w http.ResponseWriter, r *http.Request, i int)) *hookReceiver {
	h := &hookReceiver{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls = append(h.calls, hookCall{Method: r.Method, Header: r.Header.Clone(), Body: b})
		i := len(h.calls)
		h.mu.Unlock()
		if h.answer != nil {
			h.answer(w, r, i)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) Calls() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// verifySignature checks a Standard Webhooks signature.
func verifySignature(t testing.TB, secret string, c hookCall) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(c.Header.Get("webhook-id") + "." + c.Header.Get("webhook-timestamp") + "."))
	m.Write(c.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	require.Contains(t, strings.Fields(c.Header.Get("webhook-signature")), want, "signature of %s", c.Body)
}

// webhookSecret reads a tenant's signing secret from the tenant store on
// the NATS server at url.
func webhookSecret(t testing.TB, url, tenantID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Name("test-tenants"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ts, err := tenant.OpenStore(ctx, js, 1, nil)
	require.NoError(t, err)
	tn, err := ts.Get(ctx, tenantID)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tn.WebhookSecret, "whsec_"), tn.WebhookSecret)
	return tn.WebhookSecret
}

// TestCampaignPricingWebhook runs the example: two visits of
// /pricing make one run, +10 score and one signed webhook call.
func TestCampaignPricingWebhook(t *testing.T) {
	t.Parallel()
	ns, err := eventlog.StartEmbedded(eventlog.EmbeddedOptions{StoreDir: t.TempDir(), Listen: true, ServerName: "campaign-nats"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	n := campaignNode(t, func(c *config.Config) { c.Log.NATSURL = ns.ClientURL() })
	tenantID, wk, ak := createTenant(t, n, "acme")
	hook := newHookReceiver(t, nil)
	l := identifyLead(t, n, wk, ak, "anon-a", "u-a", map[string]any{"email": "ann@acme.test"})

	spec := strings.Replace(pricingCampaign, "https://crm.example/hook", hook.URL+"/hook", 1)
	c := createCampaign(t, n, ak, spec, false)
	require.Equal(t, "pricing visitors", c.Name)
	require.Equal(t, 0, c.Version)
	require.JSONEq(t, `{"type":"change_score","change":10}`, string(jsonAt(t, c.Spec, "flow", 0)))
	c = campaignAction(t, n, ak, c.ID, "publish")
	require.Equal(t, 1, c.Version)
	require.Equal(t, "active", c.Status)
	var got campaignView
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/campaigns/"+c.ID+"?tenant=acme", nil, &got))
	require.Equal(t, c.ID, got.ID, "the admin token selects the tenant")

	sendEvents(t, n, wk, pageOf("u-a", "/pricing"))
	sendEvents(t, n, wk, pageOf("u-a", "/pricing"))
	waitFor(t, 20*time.Second, "both visits applied and the webhook delivered", func() bool {
		if countActivities(t, n, ak, l.ID, "visit_page") < 2 {
			return false
		}
		runs := getRuns(t, n, ak, "/api/v1/leads/"+l.ID+"/runs")
		return len(runs) == 1 && runs[0].Status == "completed" && len(runs[0].Steps) == 2 &&
			runs[0].Steps[1].Delivery != nil && runs[0].Steps[1].Delivery.Status == "delivered"
	})
	runs := getRuns(t, n, ak, "/api/v1/campaigns/"+c.ID+"/runs?lead=ann@acme.test")
	require.Len(t, runs, 1)
	r := runs[0]
	require.Equal(t, c.ID, r.Campaign)
	require.Equal(t, 1, r.Version)
	require.Equal(t, []string{"change_score", "call_webhook"}, []string{r.Steps[0].Type, r.Steps[1].Type})
	require.Nil(t, r.Steps[0].Delivery, "an internal step has no delivery")
	require.Equal(t, http.StatusOK, r.Steps[1].Delivery.HTTPStatus)
	require.Equal(t, int64(10), getLead(t, n, ak, l.ID).Score)

	calls := hook.Calls()
	require.Len(t, calls, 1)
	call := calls[0]
	require.Equal(t, http.MethodPost, call.Method)
	require.JSONEq(t, `{"lead":"ann@acme.test"}`, string(call.Body))
	require.Equal(t, `{"lead":"ann@acme.test"}`, string(call.Body))
	require.Equal(t, r.Steps[1].Key, call.Header.Get("Idempotency-Key"))
	require.Equal(t, r.Steps[1].Key, call.Header.Get("webhook-id"))
	require.NotEmpty(t, call.Header.Get("webhook-timestamp"))
	verifySignature(t, webhookSecret(t, ns.ClientURL(), tenantID), call)

	var stats struct {
		Entered   int64 `json:"entered"`
		Completed int64 `json:"completed"`
		Steps     []struct {
			Path string `json:"path"`
			Type string `json:"type"`
			Done int64  `json:"done"`
		} `json:"steps"`
	}
	st, b := apiDo(t, n, ak, http.MethodGet, "/api/v1/campaigns/"+c.ID+"/stats", nil, &stats)
	require.Equal(t, http.StatusOK, st, "%s", b)
	require.Equal(t, int64(1), stats.Entered)
	require.Equal(t, int64(1), stats.Completed)
	require.Len(t, stats.Steps, 2)
	require.Equal(t, "flow[1]", stats.Steps[1].Path)
	require.Equal(t, "call_webhook", stats.Steps[1].Type)
	require.Equal(t, int64(1), stats.Steps[1].Done)
}

// jsonAt returns the JSON of doc[key][i].
func jsonAt(t testing.TB, doc json.RawMessage, key string, i int) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(doc, &m))
	var list []json.RawMessage
	require.NoError(t, json.Unmarshal(m[key], &list))
	require.Greater(t, len(list), i)
	return list[i]
}

// TestCampaignInvalid: problems come back with their paths and the
// positions of expression errors; names are unique; drafts cannot pause.
func TestCampaignInvalid(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, _, ak := createTenant(t, n, "acme")
	yamlSpec := "name: broken\ntriggers:\n  - type: visits_web_page\n    constraint: \"event.properties.path == \"\nflow:\n  - type: teleport\n"
	st, b := rawDo(t, n, ak, http.MethodPost, "/api/v1/campaigns", "application/yaml", yamlSpec)
	require.Equal(t, http.StatusBadRequest, st, "%s", b)
	var e apiError
	require.NoError(t, json.Unmarshal(b, &e))
	require.Equal(t, "invalid_campaign", e.Error.Code)
	byPath := map[string]int{}
	for i, p := range e.Error.Problems {
		byPath[p.Path] = i
	}
	require.Contains(t, byPath, "flow[0].type", "%s", b)
	require.Contains(t, e.Error.Problems[byPath["flow[0].type"]].Message, "teleport")
	require.Contains(t, byPath, "triggers[0].constraint", "%s", b)
	cel := e.Error.Problems[byPath["triggers[0].constraint"]]
	require.Positive(t, cel.Line, "%s", b)
	require.Positive(t, cel.Column, "%s", b)

	// A JSON syntax error and an unknown field have a position too.
	for _, body := range []string{`{"name": "x", "triggers": [}`, "{\n  \"name\": \"x\",\n  \"colour\": 1}"} {
		st, b = rawDo(t, n, ak, http.MethodPost, "/api/v1/campaigns", "application/json", body)
		require.Equal(t, http.StatusBadRequest, st, "%s", b)
		e = apiError{}
		require.NoError(t, json.Unmarshal(b, &e))
		require.Equal(t, "invalid_campaign", e.Error.Code)
		require.Len(t, e.Error.Problems, 1, "%s", b)
	}

	c := createCampaign(t, n, ak, strings.Replace(pricingCampaign, "https://crm.example/hook", "https://crm.example/a", 1), false)
	st, b = rawDo(t, n, ak, http.MethodPost, "/api/v1/campaigns", "application/json", pricingCampaign)
	require.Equal(t, http.StatusConflict, st, "a name is taken: %s", b)
	st, _ = apiDo(t, n, ak, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/pause", nil, nil)
	require.Equal(t, http.StatusConflict, st, "a draft cannot be paused")
	st, b = apiDo(t, n, ak, http.MethodGet, "/api/v1/campaigns/cmp_nope", nil, nil)
	require.Equal(t, http.StatusNotFound, st)
	require.Contains(t, string(b), "campaign_not_found")
	st, b = rawDo(t, n, ak, http.MethodPut, "/api/v1/campaigns/"+c.ID, "text/yaml", "name: renamed\ntriggers: [{type: lead_created}]\nflow: [{type: change_score, change: 1}]\n")
	require.Equal(t, http.StatusOK, st, "%s", b)
	var list struct {
		Campaigns []campaignView `json:"campaigns"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/campaigns?tenant=acme", nil, &list))
	require.Len(t, list.Campaigns, 1)
	require.Equal(t, "renamed", list.Campaigns[0].Name)
}

// TestCampaignPrivateWebhookRefused: without allow_private_networks a
// webhook to loopback cannot be published.
func TestCampaignPrivateWebhookRefused(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, func(c *config.Config) { c.Deliver.AllowPrivateNetworks = false })
	_, _, ak := createTenant(t, n, "acme")
	c := createCampaign(t, n, ak, strings.Replace(pricingCampaign, "https://crm.example/hook", "http://127.0.0.1:9/hook", 1), false)
	st, b := apiDo(t, n, ak, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/publish", nil, nil)
	require.Equal(t, http.StatusBadRequest, st, "%s", b)
	var e apiError
	require.NoError(t, json.Unmarshal(b, &e))
	require.Equal(t, "invalid_campaign", e.Error.Code)
	require.Len(t, e.Error.Problems, 1)
	require.Equal(t, "flow[1].url", e.Error.Problems[0].Path)
	var got campaignView
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/campaigns/"+c.ID+"?tenant=acme", nil, &got))
	require.Equal(t, "draft", got.Status)
}

// TestCampaignPauseResume: a paused campaign takes no new leads; resumed,
// it does again. Publishing creates the lists its steps name.
func TestCampaignPauseResume(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	l := identifyLead(t, n, wk, ak, "anon-c", "u-c", map[string]any{"email": "cy@acme.test"})
	c := createCampaign(t, n, ak, map[string]any{
		"name":          "pings",
		"triggers":      []any{map[string]any{"type": "event_tracked", "event": "Ping"}},
		"qualification": "every_time",
		"flow": []any{
			map[string]any{"type": "change_score", "change": 1},
			map[string]any{"type": "choice", "branches": []any{map[string]any{
				"if": "lead.score > 0", "flow": []any{map[string]any{"type": "add_to_list", "list": "Pingers"}}}}},
		},
	}, true)
	var lists struct {
		Lists []tenant.List `json:"lists"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, http.MethodGet, "/api/v1/lists?tenant=acme", nil, &lists))
	require.Len(t, lists.Lists, 1, "publish created the list of the choice's branch")
	require.Equal(t, "Pingers", lists.Lists[0].Name)

	ping := func(want int) {
		t.Helper()
		sendEvents(t, n, wk, trackOf("u-c", "Ping"))
		waitFor(t, 20*time.Second, fmt.Sprintf("ping %d applied", want), func() bool {
			return countActivities(t, n, ak, l.ID, "track") == want
		})
	}
	runsOf := func() int { return len(getRuns(t, n, ak, "/api/v1/campaigns/"+c.ID+"/runs")) }
	ping(1)
	require.Equal(t, 1, runsOf())
	got := getLead(t, n, ak, l.ID)
	require.Equal(t, int64(1), got.Score)
	require.Equal(t, []string{lists.Lists[0].ID}, got.Lists)

	require.Equal(t, "paused", campaignAction(t, n, ak, c.ID, "pause").Status)
	ping(2)
	require.Equal(t, 1, runsOf(), "a paused campaign takes no new leads")
	require.Equal(t, int64(1), getLead(t, n, ak, l.ID).Score)

	require.Equal(t, "active", campaignAction(t, n, ak, c.ID, "resume").Status)
	ping(3)
	require.Equal(t, 2, runsOf())
	require.Equal(t, int64(2), getLead(t, n, ak, l.ID).Score)
}

// TestCampaignRequest: POST .../request starts a campaign that listens
// for requests, with tokens its webhook body reads.
func TestCampaignRequest(t *testing.T) {
	t.Parallel()
	n := campaignNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	hook := newHookReceiver(t, nil)
	l := identifyLead(t, n, wk, ak, "anon-f", "u-f", map[string]any{"email": "fay@acme.test"})
	yamlSpec := fmt.Sprintf(`name: offers
triggers:
  - type: campaign_requested
qualification: every_time
flow:
  - type: call_webhook
    url: %s/offer
    body: '{"offer":"{{run.offer}}","lead":"{{lead.email}}"}'
`, hook.URL)
	st, b := rawDo(t, n, ak, http.MethodPost, "/api/v1/campaigns", "application/yaml", yamlSpec)
	require.Equal(t, http.StatusCreated, st, "%s", b)
	var c campaignView
	require.NoError(t, json.Unmarshal(b, &c))
	reqPath := "/api/v1/campaigns/" + c.ID + "/request"
	st, b = apiDo(t, n, ak, http.MethodPost, reqPath, map[string]any{"leads": []string{"fay@acme.test"}}, nil)
	require.Equal(t, http.StatusConflict, st, "a draft takes no requests: %s", b)
	campaignAction(t, n, ak, c.ID, "publish")

	var out struct {
		Applied bool `json:"applied"`
		Results []struct {
			Lead, ID, Status, Run string
		} `json:"results"`
	}
	st, b = apiDo(t, n, ak, http.MethodPost, reqPath, map[string]any{
		"leads": []string{"fay@acme.test", "nobody@acme.test", "u-f"}, "tokens": map[string]string{"offer": "SUMMER"},
	}, &out)
	require.Equal(t, http.StatusOK, st, "%s", b)
	require.True(t, out.Applied)
	require.Len(t, out.Results, 3)
	require.Equal(t, "entered", out.Results[0].Status, "%s", b)
	require.Equal(t, l.ID, out.Results[0].ID)
	require.NotEmpty(t, out.Results[0].Run)
	require.Equal(t, "not_found", out.Results[1].Status)
	require.Equal(t, "duplicate", out.Results[2].Status)

	waitFor(t, 20*time.Second, "the offer webhook", func() bool { return len(hook.Calls()) == 1 })
	require.JSONEq(t, `{"offer":"SUMMER","lead":"fay@acme.test"}`, string(hook.Calls()[0].Body))
	runs := getRuns(t, n, ak, "/api/v1/leads/"+l.ID+"/runs")
	require.Len(t, runs, 1)
	require.Equal(t, out.Results[0].Run, runs[0].ID)
	require.Equal(t, map[string]string{"offer": "SUMMER"}, runs[0].Tokens)

	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("u-%d", i)
	}
	st, b = apiDo(t, n, ak, http.MethodPost, reqPath, map[string]any{"leads": many}, nil)
	require.Equal(t, http.StatusBadRequest, st)
	require.True(t, bytes.Contains(b, []byte("too_many_leads")), "%s", b)
}
