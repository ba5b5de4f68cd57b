package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/tenant"
)

// CampaignStore keeps the tenants' campaigns; *campaign.Store implements
// it. Create, Replace and Publish answer a *campaign.ValidationError for an
// invalid campaign.
type CampaignStore interface {
	Create(ctx context.Context, tenant string, spec campaign.Spec) (campaign.Campaign, error)
	Get(ctx context.Context, tenant, id string) (campaign.Campaign, error)
	List(ctx context.Context, tenant string) ([]campaign.Campaign, error)
	Replace(ctx context.Context, tenant, id string, spec campaign.Spec) (campaign.Campaign, error)
	Publish(ctx context.Context, tenant, id string, opt campaign.CompileOptions) (campaign.Campaign, error)
	SetStatus(ctx context.Context, tenant, id, status string) (campaign.Campaign, error)
	VersionSpec(ctx context.Context, tenant, id string, n int) (campaign.Spec, error)
}

// CampaignCatalog is the live, compiled view of the published campaigns;
// *campaign.Registry implements it. Its lookups never block.
type CampaignCatalog interface {
	Active(tenant, id string) (*campaign.Version, bool)
	Version(tenant, id string, n int) (*campaign.Version, bool)
	// WaitFor returns once the view holds KV revision rev.
	WaitFor(ctx context.Context, rev uint64) error
}

// Bounds of the campaign endpoints.
const (
	maxCampaignBytes    = 1 << 20
	maxRequestLeads     = 100
	maxRequestTokens    = 50
	maxTokenName        = 128
	maxTokenValue       = 4096
	defaultCampaignWait = 2 * time.Second
)

// registerCampaigns mounts the campaign endpoints (tenant API key, or the
// admin token with tenant=).
func (a *API) registerCampaigns(mux *http.ServeMux) {
	c := func(next func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant)) http.HandlerFunc {
		return a.tenantScoped(a.deps.Campaigns != nil, "campaigns", next)
	}
	// Runs, stats and requests read or write the lead shards.
	p := func(next func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant)) http.HandlerFunc {
		return a.tenantScoped(a.deps.Campaigns != nil && a.deps.Runs != nil && a.deps.Leads != nil, "campaign runs", next)
	}
	mux.HandleFunc("POST /api/v1/campaigns", c(a.createCampaign))
	mux.HandleFunc("GET /api/v1/campaigns", c(a.listCampaigns))
	mux.HandleFunc("GET /api/v1/campaigns/{id}", c(a.getCampaign))
	mux.HandleFunc("PUT /api/v1/campaigns/{id}", c(a.replaceCampaign))
	mux.HandleFunc("POST /api/v1/campaigns/{id}/publish", c(a.publishCampaign))
	mux.HandleFunc("POST /api/v1/campaigns/{id}/pause", c(a.setCampaignStatus(campaign.StatusPaused)))
	mux.HandleFunc("POST /api/v1/campaigns/{id}/resume", c(a.setCampaignStatus(campaign.StatusActive)))
	mux.HandleFunc("POST /api/v1/campaigns/{id}/request", a.tenantScoped(
		a.deps.Campaigns != nil && a.deps.Leads != nil && a.deps.LeadWriter != nil, "campaign requests", a.requestCampaign))
	mux.HandleFunc("GET /api/v1/campaigns/{id}/runs", p(a.campaignRuns))
	mux.HandleFunc("GET /api/v1/campaigns/{id}/stats", p(a.campaignStats))
	mux.HandleFunc("GET /api/v1/leads/{id}/runs", p(a.leadRuns))
}

// failCampaign answers an error; an invalid campaign lists its problems,
// each placed in src (the submitted document) when one is given.
func (a *API) failCampaign(w http.ResponseWriter, err error, src []byte) {
	if ve, ok := errors.AsType[*campaign.ValidationError](err); ok {
		probs := ve.Problems
		if probs == nil {
			probs = []campaign.FieldError{}
		}
		if src != nil {
			campaign.Locate(src, probs)
		}
		writeJSON(w, codeStatus[CodeInvalidCampaign], map[string]Error{"error": {Code: CodeInvalidCampaign, Message: ve.Error(), Problems: probs}})
		return
	}
	a.fail(w, err)
}

// readSpec reads a campaign from the body: JSON or YAML, by Content-Type
// or, without a known one, by its first character.
func readSpec(r *http.Request) (campaign.Spec, []byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCampaignBytes+1))
	if err != nil {
		return campaign.Spec{}, nil, fmt.Errorf("%w: reading body: %v", errInvalid, err)
	}
	if len(body) > maxCampaignBytes {
		return campaign.Spec{}, nil, fmt.Errorf("%w: a campaign is at most %d bytes", errInvalid, maxCampaignBytes)
	}
	spec, err := parseSpec(r.Header.Get("Content-Type"), body)
	return spec, body, err
}

// parseSpec parses a campaign of media type ct.
func parseSpec(ct string, body []byte) (campaign.Spec, error) {
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return campaign.Spec{}, fmt.Errorf("%w: Content-Type %q: %v", errInvalid, ct, err)
		}
	}
	switch mt {
	case "application/json":
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '{' {
			return campaign.Spec{}, &campaign.ValidationError{Problems: []campaign.FieldError{{Message: "want a JSON object (or send Content-Type: application/yaml)"}}}
		}
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain", "application/octet-stream":
	default:
		return campaign.Spec{}, fmt.Errorf("%w: Content-Type %q: send application/json or application/yaml", errInvalid, mt)
	}
	return campaign.Parse(body)
}

// campaignApplied waits until this node's registry holds campaign
// revision rev, so that the answer reads its own write. A timeout is
// logged, not failed: the change is stored and will arrive.
func (a *API) campaignApplied(ctx context.Context, rev uint64) {
	if a.deps.CampaignRegistry == nil || rev == 0 {
		return
	}
	wait := a.deps.ApplyWait
	if wait <= 0 {
		wait = defaultCampaignWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := a.deps.CampaignRegistry.WaitFor(ctx, rev); err != nil {
		a.deps.Logger.Warn("campaign change stored but not yet applied by this node", "revision", rev, "err", err)
	}
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	spec, src, err := readSpec(r)
	if err != nil {
		a.failCampaign(w, err, src)
		return
	}
	c, err := a.deps.Campaigns.Create(r.Context(), t.ID, spec)
	if err != nil {
		a.failCampaign(w, err, src)
		return
	}
	a.deps.Logger.Info("campaign created", "tenant", t.ID, "campaign", c.ID, "name", c.Name)
	writeJSON(w, http.StatusCreated, c)
}

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	cs, err := a.deps.Campaigns.List(r.Context(), t.ID)
	if err != nil {
		a.fail(w, err)
		return
	}
	if cs == nil {
		cs = []campaign.Campaign{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"campaigns": cs})
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	c, err := a.deps.Campaigns.Get(r.Context(), t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// replaceCampaign makes the body the campaign's draft; the published
// versions and the runs on them do not change.
func (a *API) replaceCampaign(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	spec, src, err := readSpec(r)
	if err != nil {
		a.failCampaign(w, err, src)
		return
	}
	c, err := a.deps.Campaigns.Replace(r.Context(), t.ID, r.PathValue("id"), spec)
	if err != nil {
		a.failCampaign(w, err, src)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// publishCampaign makes the draft the next version and activates it. The
// lists its steps add to or remove from are created first if the tenant
// has none of that name, so that the steps act on them from the first run.
func (a *API) publishCampaign(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	ctx := r.Context()
	id := r.PathValue("id")
	c, err := a.deps.Campaigns.Get(ctx, t.ID, id)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.checkCampaignLimit(ctx, t, id); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.ensureLists(ctx, t.ID, stepLists(c.Spec.Flow, nil)); err != nil {
		a.fail(w, err)
		return
	}
	c, err = a.deps.Campaigns.Publish(ctx, t.ID, id, campaign.CompileOptions{CheckURL: a.deps.CheckURL})
	if err != nil {
		a.failCampaign(w, err, nil)
		return
	}
	a.campaignApplied(ctx, c.Revision)
	a.deps.Logger.Info("campaign published", "tenant", t.ID, "campaign", c.ID, "version", c.Version)
	writeJSON(w, http.StatusOK, c)
}

// stepLists appends to out the lists that add_to_list and remove_from_list
// steps name, choices' branches included, each once.
func stepLists(steps []campaign.Step, out []string) []string {
	for _, s := range steps {
		if (s.Type == campaign.StepAddToList || s.Type == campaign.StepRemoveFromList) && strings.TrimSpace(s.List) != "" &&
			!slices.ContainsFunc(out, func(l string) bool { return strings.EqualFold(l, s.List) }) {
			out = append(out, s.List)
		}
		for _, b := range s.Branches {
			out = stepLists(b.Flow, out)
		}
		out = stepLists(s.Default, out)
	}
	return out
}

// ensureLists creates the named lists the tenant does not have, and waits
// until this node serves them.
func (a *API) ensureLists(ctx context.Context, tenantID string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	lists := a.deps.Lists
	if lists == nil {
		lists, _ = a.deps.Tenants.(Lists) // a node without processing still publishes
	}
	t, err := a.deps.Tenants.Get(ctx, tenantID)
	if err != nil {
		return err
	}
	created := false
	for _, name := range names {
		if _, ok := t.List(name); ok {
			continue
		}
		if lists == nil {
			return fmt.Errorf("%w: list %q does not exist and this node cannot create lists", errUnavailable, name)
		}
		_, err := lists.CreateList(ctx, tenantID, name)
		switch {
		case errors.Is(err, tenant.ErrListExists): // created meanwhile
		case err != nil:
			return fmt.Errorf("creating list %q: %w", name, err)
		default:
			created = true
			a.deps.Logger.Info("list created for a campaign", "tenant", tenantID, "list", name)
		}
	}
	if created {
		if t, err := a.deps.Tenants.Get(ctx, tenantID); err == nil {
			a.applied(ctx, t.Revision)
		}
	}
	return nil
}

// setCampaignStatus pauses or resumes a published campaign.
func (a *API) setCampaignStatus(status string) func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	return func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
		if status == campaign.StatusActive {
			if err := a.checkCampaignLimit(r.Context(), t, r.PathValue("id")); err != nil {
				a.fail(w, err)
				return
			}
		}
		c, err := a.deps.Campaigns.SetStatus(r.Context(), t.ID, r.PathValue("id"), status)
		if err != nil {
			a.fail(w, err)
			return
		}
		a.campaignApplied(r.Context(), c.Revision)
		a.deps.Logger.Info("campaign status changed", "tenant", t.ID, "campaign", c.ID, "status", c.Status)
		writeJSON(w, http.StatusOK, c)
	}
}

// RequestResult is what a campaign request did for one of the leads named.
type RequestResult struct {
	// Lead is the lead as the request named it: an id, email or userId.
	Lead string `json:"lead"`
	// ID is the lead's id, when found.
	ID string `json:"id,omitempty"`
	// Status is entered (a run started: Run), not_entered (qualification,
	// restriction or filters kept the lead out), requested (stored, not
	// applied yet), duplicate (named twice) or not_found.
	Status string `json:"status"`
	Run    string `json:"run,omitempty"`
}

// Statuses of a RequestResult.
const (
	RequestEntered    = "entered"
	RequestNotEntered = "not_entered"
	RequestRequested  = "requested"
	RequestDuplicate  = "duplicate"
	RequestNotFound   = "not_found"
)

// requestCampaign starts the campaign for up to 100 leads, with tokens
// its steps read as {{run.x}}. The campaign must be active and listen to
// campaign_requested.
func (a *API) requestCampaign(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	var req struct {
		Leads  []string          `json:"leads"`
		Tokens map[string]string `json:"tokens"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	switch {
	case len(req.Leads) == 0:
		a.fail(w, fmt.Errorf("%w: name leads (ids, emails or user ids) in leads", errInvalid))
		return
	case len(req.Leads) > maxRequestLeads:
		a.fail(w, fmt.Errorf("%w: %d leads in one request, at most %d", errTooMany, len(req.Leads), maxRequestLeads))
		return
	}
	if err := validTokens(req.Tokens); err != nil {
		a.fail(w, err)
		return
	}
	ctx := r.Context()
	c, err := a.requestable(ctx, t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	results := make([]RequestResult, len(req.Leads))
	seen := map[string]bool{}
	var cmds []event.Event
	var idx []int // results index of each command
	now := time.Now()
	for i, key := range req.Leads {
		results[i] = RequestResult{Lead: key}
		l, err := a.resolveLead(ctx, t.ID, key)
		switch {
		case errors.Is(err, lead.ErrNotFound):
			results[i].Status = RequestNotFound
			continue
		case err != nil:
			a.fail(w, err)
			return
		}
		results[i].ID = l.ID
		if seen[l.ID] {
			results[i].Status = RequestDuplicate
			continue
		}
		seen[l.ID] = true
		cmd, err := lead.Command(t.ID, l.ID, campaign.CmdRequest, campaign.Request{Campaign: c.ID, Tokens: req.Tokens}, "", now)
		if err != nil {
			a.fail(w, err)
			return
		}
		results[i].Status = RequestRequested
		cmds = append(cmds, cmd)
		idx = append(idx, i)
	}
	applied := true
	if a.refusePaused(w, cmds) {
		return
	}
	if len(cmds) > 0 {
		wctx, cancel := context.WithTimeout(ctx, leadWriteWait)
		err = a.deps.LeadWriter.Submit(wctx, cmds)
		cancel()
		switch {
		case errors.Is(err, lead.ErrNotApplied):
			applied = false
		case err != nil:
			a.fail(w, err)
			return
		}
	}
	if applied {
		for j, i := range idx {
			results[i].Status, results[i].Run = a.requestOutcome(t.ID, c.ID, results[i].ID, cmds[j].ReceivedAt)
		}
	}
	status := http.StatusOK
	if !applied {
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"campaign": c.ID, "applied": applied, "results": results})
}

// requestable returns the campaign if it takes requests: active, with a
// campaign_requested trigger in its active version.
func (a *API) requestable(ctx context.Context, tenantID, id string) (campaign.Campaign, error) {
	c, err := a.deps.Campaigns.Get(ctx, tenantID, id)
	if err != nil {
		return c, err
	}
	if c.Status != campaign.StatusActive {
		return c, fmt.Errorf("%w: campaign %s is %s; only an active campaign takes requests", errConflict, c.ID, c.Status)
	}
	a.campaignApplied(ctx, c.Revision) // the lead shards see it active
	var spec campaign.Spec
	if v, ok := a.versionOf(tenantID, c); ok {
		spec = v.Spec
	} else if spec, err = a.deps.Campaigns.VersionSpec(ctx, tenantID, c.ID, c.Version); err != nil {
		return c, err
	}
	if !slices.ContainsFunc(spec.Triggers, func(tr campaign.Trigger) bool { return tr.Type == campaign.TrigCampaignRequested }) {
		return c, fmt.Errorf("%w: campaign %s has no %s trigger, so it takes no requests", errConflict, c.ID, campaign.TrigCampaignRequested)
	}
	return c, nil
}

// requestOutcome finds the run a request started: the lead's run of the
// campaign that started when the request was applied.
func (a *API) requestOutcome(tenantID, campaignID, leadID string, at time.Time) (string, string) {
	if a.deps.Runs == nil {
		return RequestRequested, ""
	}
	runs, err := a.deps.Runs.LeadRuns(tenantID, leadID)
	if err != nil {
		a.deps.Logger.Warn("reading the runs of a requested lead", "tenant", tenantID, "lead", leadID, "err", err)
		return RequestRequested, ""
	}
	for _, run := range runs {
		if run.Campaign == campaignID && run.Started.Equal(at) {
			return RequestEntered, run.ID
		}
	}
	return RequestNotEntered, ""
}

func validTokens(tokens map[string]string) error {
	if len(tokens) > maxRequestTokens {
		return fmt.Errorf("%w: at most %d tokens", errInvalid, maxRequestTokens)
	}
	for k, v := range tokens {
		if k == "" || len(k) > maxTokenName || strings.ContainsAny(k, "{} \t\n") {
			return fmt.Errorf("%w: token name %q: 1 to %d characters, no braces or spaces", errInvalid, k, maxTokenName)
		}
		if len(v) > maxTokenValue {
			return fmt.Errorf("%w: token %q: at most %d bytes", errInvalid, k, maxTokenValue)
		}
	}
	return nil
}

// resolveLead finds a lead by id ("ld_…"), email (with "@") or userId.
func (a *API) resolveLead(ctx context.Context, tenantID, key string) (*lead.Lead, error) {
	if strings.HasPrefix(key, "ld_") {
		l, err := a.deps.Leads.Get(ctx, tenantID, key)
		if !errors.Is(err, lead.ErrNotFound) {
			return l, err
		}
	}
	if strings.Contains(key, "@") {
		l, err := a.deps.Leads.ByEmail(ctx, tenantID, key)
		if !errors.Is(err, lead.ErrNotFound) {
			return l, err
		}
	}
	if key == "" {
		return nil, fmt.Errorf("empty lead: %w", lead.ErrNotFound)
	}
	return a.deps.Leads.ByUserID(ctx, tenantID, key)
}
