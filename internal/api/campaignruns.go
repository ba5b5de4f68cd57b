package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/tenant"
)

// This file serves what campaigns did: runs with their deliveries, and
// counters per step.

// RunReader reads campaign runs and counters from this node's lead
// shards; *campaign.Reader implements it.
type RunReader interface {
	LeadRuns(tenant, lead string) ([]*campaign.Run, error)
	CampaignRuns(tenant, campaign, status, lead string, limit int) ([]*campaign.Run, error)
	Stats(tenant, campaign string, ver *campaign.Version) (campaign.Stats, error)
}

// DeliveryResults tells how an external effect ended; *deliver.Sender
// implements it. ok is false while the effect is not done.
type DeliveryResults interface {
	Result(key string) (r deliver.Result, ok bool, err error)
}

// Bounds of the run listings.
const (
	defaultRunsLimit = 100
	maxRunsLimit     = 1000
)

// DeliveryPending is the status of an external step not done yet.
const DeliveryPending = "pending"

// versionOf returns the campaign's active version, else its latest
// published one, from the registry.
func (a *API) versionOf(tenantID string, c campaign.Campaign) (*campaign.Version, bool) {
	if a.deps.CampaignRegistry == nil {
		return nil, false
	}
	if v, ok := a.deps.CampaignRegistry.Active(tenantID, c.ID); ok {
		return v, true
	}
	if c.Version > 0 {
		return a.deps.CampaignRegistry.Version(tenantID, c.ID, c.Version)
	}
	return nil, false
}

// RunView is a run as the API shows it: each external step with its
// delivery.
type RunView struct {
	campaign.Run
	Steps []StepView `json:"steps"`
}

// StepView is a step a run took; Delivery is set for a webhook or email.
type StepView struct {
	campaign.StepRecord
	Delivery *DeliveryView `json:"delivery,omitempty"`
}

// DeliveryView is how an external step's effect went: delivered, failed
// (after its retry budget, or at once when it cannot succeed) or pending.
type DeliveryView struct {
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts,omitempty"`
	HTTPStatus  int        `json:"http_status,omitempty"`
	Error       string     `json:"error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// viewRuns attaches the delivery results to runs.
func (a *API) viewRuns(runs []*campaign.Run) ([]RunView, error) {
	out := make([]RunView, 0, len(runs))
	for _, run := range runs {
		v := RunView{Run: *run, Steps: make([]StepView, len(run.Steps))}
		for i, s := range run.Steps {
			v.Steps[i] = StepView{StepRecord: s}
			if s.Key == "" || a.deps.Deliveries == nil {
				continue
			}
			res, ok, err := a.deps.Deliveries.Result(s.Key)
			if err != nil {
				return nil, fmt.Errorf("reading the delivery of run %s step %s: %w", run.ID, s.Path, err)
			}
			d := &DeliveryView{Status: DeliveryPending}
			if ok {
				at := res.DeliveredAt
				d = &DeliveryView{Status: res.Status, Attempts: res.Attempts, HTTPStatus: res.HTTPStatus, Error: res.Error, DeliveredAt: &at}
			}
			v.Steps[i].Delivery = d
		}
		out = append(out, v)
	}
	return out, nil
}

var runStatuses = []string{campaign.RunRunning, campaign.RunWaiting, campaign.RunAwaiting, campaign.RunCompleted, campaign.RunFailed, campaign.RunRemoved}

// campaignRuns answers a campaign's runs, newest first, optionally of one
// lead (id, email or userId) and in one status.
func (a *API) campaignRuns(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	ctx := r.Context()
	q := r.URL.Query()
	params := map[string]string{}
	for _, name := range []string{"lead", "status", "limit"} {
		v, err := single(q, name)
		if err != nil {
			a.fail(w, err)
			return
		}
		params[name] = v
	}
	if s := params["status"]; s != "" && !slices.Contains(runStatuses, s) {
		a.fail(w, fmt.Errorf("%w: status %q: want one of %s", errInvalidParameter, s, strings.Join(runStatuses, ", ")))
		return
	}
	limit, err := limitParam(params["limit"], defaultRunsLimit, maxRunsLimit)
	if err != nil {
		a.fail(w, err)
		return
	}
	c, err := a.deps.Campaigns.Get(ctx, t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	leadID := ""
	if key := params["lead"]; key != "" {
		l, err := a.resolveLead(ctx, t.ID, key)
		if err != nil {
			a.fail(w, err)
			return
		}
		leadID = l.ID
	}
	runs, err := a.deps.Runs.CampaignRuns(t.ID, c.ID, params["status"], leadID, limit)
	a.writeRuns(w, runs, err)
}

// writeRuns answers {"runs":[...]} with each step's delivery result.
func (a *API) writeRuns(w http.ResponseWriter, runs []*campaign.Run, err error) {
	var out []RunView
	if err == nil {
		out, err = a.viewRuns(runs)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

// leadRuns answers a lead's runs of every campaign, newest first.
func (a *API) leadRuns(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	l, ok := a.existing(w, r, t)
	if !ok {
		return
	}
	runs, err := a.deps.Runs.LeadRuns(t.ID, l.ID)
	a.writeRuns(w, runs, err)
}

// StatsView is a campaign's counters, its steps named after its active
// (else latest) version.
type StatsView struct {
	Campaign string `json:"campaign"`
	Version  int    `json:"version"`
	campaign.Stats
}

func (a *API) campaignStats(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	c, err := a.deps.Campaigns.Get(r.Context(), t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	v, _ := a.versionOf(t.ID, c)
	st, err := a.deps.Runs.Stats(t.ID, c.ID, v)
	if err != nil {
		a.fail(w, err)
		return
	}
	if st.Steps == nil {
		st.Steps = []campaign.StepStats{}
	}
	out := StatsView{Campaign: c.ID, Stats: st}
	if v != nil {
		out.Version = v.Number
	}
	writeJSON(w, http.StatusOK, out)
}
