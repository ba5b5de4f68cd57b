package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/tenant"
)

// fakeCampaigns keeps campaigns in memory; what the tests do not call is
// left to the embedded nil interface.
type fakeCampaigns struct {
	api.CampaignStore
	mu        sync.Mutex
	byID      map[string]campaign.Campaign
	published []campaign.CompileOptions
}

func (f *fakeCampaigns) Create(_ context.Context, tenantID string, spec campaign.Spec) (campaign.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := campaign.Campaign{ID: fmt.Sprintf("cmp_%d", len(f.byID)+1), Tenant: tenantID, Name: spec.Name, Status: campaign.StatusDraft, Spec: spec}
	f.byID[c.ID] = c
	return c, nil
}

func (f *fakeCampaigns) Get(_ context.Context, _, id string) (campaign.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return c, fmt.Errorf("campaign %q: %w", id, campaign.ErrNotFound)
	}
	return c, nil
}

func (f *fakeCampaigns) List(context.Context, string) ([]campaign.Campaign, error) { return nil, nil }

func (f *fakeCampaigns) Publish(_ context.Context, _, id string, opt campaign.CompileOptions) (campaign.Campaign, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, opt)
	c := f.byID[id]
	c.Version++
	c.Status = campaign.StatusActive
	f.byID[id] = c
	return c, nil
}

// fakeLists records the lists created.
type fakeLists struct {
	mu      sync.Mutex
	created []string
}

func (f *fakeLists) CreateList(_ context.Context, _, name string) (tenant.List, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, name)
	return tenant.List{ID: "ls_" + name, Name: name}, nil
}

// startCampaignAPI serves the campaign endpoints of a node that does not
// process events (no runs, no lead writer).
func startCampaignAPI(t *testing.T) (*httptest.Server, *fakeCampaigns, *fakeLists) {
	t.Helper()
	tenants := newFakeTenants()
	tenants.byID[acmeID].Lists = []tenant.List{{ID: "ls_existing", Name: "Existing"}}
	store := &fakeCampaigns{byID: map[string]campaign.Campaign{}}
	lists := &fakeLists{}
	a := api.New(api.Deps{AdminToken: "admin", Tenants: tenants, Keys: tenants, Campaigns: store, Lists: lists,
		CheckURL: func(context.Context, string) error { return nil }})
	mux := http.NewServeMux()
	a.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, store, lists
}

func campaignDo(t *testing.T, srv *httptest.Server, method, path, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	return resp.StatusCode, b
}

func TestCampaignBodyFormats(t *testing.T) {
	srv, _, _ := startCampaignAPI(t)
	const yamlSpec = "name: y\ntriggers: [{type: lead_created}]\nflow: [{type: change_score, change: 1}]\n"
	const jsonSpec = `{"name":"j","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1}]}`
	f := func(contentType, body string, status int, code string) {
		t.Helper()
		st, b := campaignDo(t, srv, http.MethodPost, "/api/v1/campaigns", contentType, body)
		require.Equal(t, status, st, "%s: %s", contentType, b)
		if code != "" {
			require.Equal(t, code, errCode(t, b))
		}
	}
	f("application/json", jsonSpec, http.StatusCreated, "")
	f("application/json; charset=utf-8", jsonSpec, http.StatusCreated, "")
	f("application/yaml", yamlSpec, http.StatusCreated, "")
	f("text/yaml", yamlSpec, http.StatusCreated, "")
	f("", yamlSpec, http.StatusCreated, "")
	f("", jsonSpec, http.StatusCreated, "")
	f("application/json", yamlSpec, http.StatusBadRequest, api.CodeInvalidCampaign)
	f("application/yaml", "name: [", http.StatusBadRequest, api.CodeInvalidCampaign)
	f("application/xml", "<campaign/>", http.StatusBadRequest, api.CodeInvalidRequest)

	st, b := campaignDo(t, srv, http.MethodPost, "/api/v1/campaigns", "application/json", `{"name":"x","colour":"red"}`)
	require.Equal(t, http.StatusBadRequest, st)
	var e struct {
		Error api.Error `json:"error"`
	}
	require.NoError(t, json.Unmarshal(b, &e))
	require.Len(t, e.Error.Problems, 1, "%s", b)
	require.Contains(t, e.Error.Problems[0].Message, "colour")
}

// TestCampaignPublishCreatesLists: the lists of add_to_list and
// remove_from_list steps, in choices too, exist once it is published.
func TestCampaignPublishCreatesLists(t *testing.T) {
	srv, store, lists := startCampaignAPI(t)
	spec := map[string]any{
		"name": "lists", "triggers": []any{map[string]any{"type": "lead_created"}},
		"flow": []any{
			map[string]any{"type": "add_to_list", "list": "existing"},
			map[string]any{"type": "choice", "branches": []any{map[string]any{"if": "true", "flow": []any{
				map[string]any{"type": "add_to_list", "list": "Hot"},
				map[string]any{"type": "add_to_list", "list": "hot"},
			}}}, "default": []any{map[string]any{"type": "remove_from_list", "list": "Cold"}}},
		},
	}
	body, err := json.Marshal(spec)
	require.NoError(t, err)
	st, b := campaignDo(t, srv, http.MethodPost, "/api/v1/campaigns", "application/json", string(body))
	require.Equal(t, http.StatusCreated, st, "%s", b)
	var c campaign.Campaign
	require.NoError(t, json.Unmarshal(b, &c))
	st, b = campaignDo(t, srv, http.MethodPost, "/api/v1/campaigns/"+c.ID+"/publish", "", "")
	require.Equal(t, http.StatusOK, st, "%s", b)
	require.Equal(t, []string{"Hot", "Cold"}, lists.created)
	require.Len(t, store.published, 1)
	require.NotNil(t, store.published[0].CheckURL, "publish vets webhook URLs")

	st, b = campaignDo(t, srv, http.MethodPost, "/api/v1/campaigns/cmp_nope/publish", "", "")
	require.Equal(t, http.StatusNotFound, st)
	require.Equal(t, api.CodeCampaignNotFound, errCode(t, b))
}

// TestCampaignsUnavailable: a node that does not process events stores
// campaigns but serves no runs, stats or requests.
func TestCampaignsUnavailable(t *testing.T) {
	srv, _, _ := startCampaignAPI(t)
	st, _ := campaignDo(t, srv, http.MethodGet, "/api/v1/campaigns", "", "")
	require.Equal(t, http.StatusOK, st)
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/campaigns/cmp_1/runs", ""},
		{http.MethodGet, "/api/v1/campaigns/cmp_1/stats", ""},
		{http.MethodPost, "/api/v1/campaigns/cmp_1/request", `{"leads":["a@b.c"]}`},
		{http.MethodGet, "/api/v1/leads/ld_1/runs", ""},
	} {
		st, b := campaignDo(t, srv, r.method, r.path, "application/json", r.body)
		require.Equal(t, http.StatusServiceUnavailable, st, "%s %s: %s", r.method, r.path, b)
		require.Equal(t, api.CodeUnavailable, errCode(t, b))
	}
}
