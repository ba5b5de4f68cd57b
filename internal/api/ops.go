package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Operations on tenants and processing (issue 7): pause and resume a
// tenant, pause and resume processing on a node, and per-tenant status.

// Pauser pauses and resumes tenants; *tenant.Store implements it.
type Pauser interface {
	SetPaused(ctx context.Context, idOrName string, paused bool) (tenant.Tenant, error)
}

// Processing pauses and resumes the node's shards; *shard.Runtime
// implements it.
type Processing interface {
	PauseProcessing(paused bool)
	ProcessingPaused() bool
}

// TenantStatus is one tenant's state and its counters on this node since
// the node started.
type TenantStatus struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at,omitempty"`
	// Accepted events, and events or requests rejected, by reason.
	Accepted  float64            `json:"accepted"`
	Rejected  map[string]float64 `json:"rejected"`
	QuotaUsed float64            `json:"quota_used"`
	// Stages are the EVENTS (visitor) and LEADS (lead) shards.
	Stages []StageStatus `json:"stages"`
	// TriggersFired counts campaign runs entered; Actions campaign steps
	// by type; WebhookFailures webhooks that failed for good.
	TriggersFired   float64            `json:"triggers_fired"`
	Actions         map[string]float64 `json:"actions"`
	WebhookFailures float64            `json:"webhook_failures"`
}

// StageStatus is a tenant's progress in one stage.
type StageStatus struct {
	Stream    string  `json:"stream"`
	Processed float64 `json:"processed"`
	Dead      float64 `json:"dead"`
	Parked    float64 `json:"parked"`
	Replayed  float64 `json:"replayed"`
	// LagEvents are the tenant's events not applied yet: for EVENTS,
	// accepted minus applied (on this node, since it started); for LEADS,
	// those parked. Backlog is the parked part.
	LagEvents float64 `json:"lag_events"`
	Backlog   float64 `json:"backlog"`
	// LagSeconds is the age of the tenant's last event when it was
	// applied; P99Seconds the 99th percentile of that, from the histogram.
	LagSeconds float64 `json:"lag_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
}

// tenantStatuses is what GET /api/v1/status adds when the reporter can.
type tenantStatuses interface {
	TenantStatus(ctx context.Context) ([]TenantStatus, error)
}

// CodeTenantPaused: a write to a paused tenant's leads was refused.
const CodeTenantPaused = "tenant_paused"

// CodeCampaignLimit: the tenant has its limit of active campaigns.
const CodeCampaignLimit = "campaign_limit"

var (
	errTenantPaused  = errors.New("tenant is paused")
	errCampaignLimit = errors.New("active campaign limit reached")
)

func init() {
	codeStatus[CodeTenantPaused] = http.StatusConflict
	codeStatus[CodeCampaignLimit] = http.StatusConflict
}

func (a *API) registerOps(mux *http.ServeMux) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, a.admin(f)) }
	h("POST /api/v1/tenants/{id}/pause", a.pauseTenant(true))
	h("POST /api/v1/tenants/{id}/resume", a.pauseTenant(false))
	h("POST /api/v1/processing/pause", a.pauseProcessing(true))
	h("POST /api/v1/processing/resume", a.pauseProcessing(false))
}

// pauseTenant pauses or resumes a tenant and answers once this node
// applies it.
func (a *API) pauseTenant(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.deps.Pauser == nil {
			a.fail(w, fmt.Errorf("%w: this node cannot pause tenants", errUnavailable))
			return
		}
		t, err := a.deps.Pauser.SetPaused(r.Context(), r.PathValue("id"), paused)
		if err != nil {
			a.fail(w, err)
			return
		}
		a.applied(r.Context(), t.Revision)
		a.deps.Logger.Info("tenant pause changed", "tenant", t.ID, "paused", t.IsPaused())
		writeJSON(w, http.StatusOK, view(t))
	}
}

// pauseProcessing stops or restarts this node's shards.
func (a *API) pauseProcessing(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.deps.Processing == nil {
			a.fail(w, fmt.Errorf("%w: this node does not process events", errUnavailable))
			return
		}
		a.deps.Processing.PauseProcessing(paused)
		writeJSON(w, http.StatusOK, map[string]bool{"processing_paused": a.deps.Processing.ProcessingPaused()})
	}
}

// refusePaused fails a lead write of a paused tenant: its effects would
// be parked, so the write could not be read back.
func (a *API) refusePaused(w http.ResponseWriter, cmds []event.Event) bool {
	if a.deps.Keys == nil || len(cmds) == 0 {
		return false
	}
	if t, ok := a.deps.Keys.ByID(cmds[0].Tenant); ok && t.IsPaused() {
		a.fail(w, fmt.Errorf("%w: resume it to change its leads", errTenantPaused))
		return true
	}
	return false
}

// checkCampaignLimit fails when activating campaign id would take the
// tenant over its limit of active campaigns.
func (a *API) checkCampaignLimit(ctx context.Context, t *tenant.Tenant, id string) error {
	limit := t.Limits.MaxActiveCampaigns
	if limit <= 0 {
		return nil
	}
	all, err := a.deps.Campaigns.List(ctx, t.ID)
	if err != nil {
		return err
	}
	active := 0
	for _, c := range all {
		if c.ID != id && c.Status == "active" {
			active++
		}
	}
	if active >= limit {
		return fmt.Errorf("%w: the tenant has %d active campaigns, its limit is %d", errCampaignLimit, active, limit)
	}
	return nil
}
