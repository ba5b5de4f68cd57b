package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/tenant"
)

// LeadReader answers lead queries; *lead.Reader implements it.
type LeadReader interface {
	Get(ctx context.Context, tenant, id string) (*lead.Lead, error)
	ByEmail(ctx context.Context, tenant, email string) (*lead.Lead, error)
	ByUserID(ctx context.Context, tenant, userID string) (*lead.Lead, error)
	Activities(ctx context.Context, tenant, id string, q lead.ActivityQuery) ([]lead.Activity, string, error)
	ListMembers(ctx context.Context, tenant, list string, limit int, cursor string) ([]*lead.Lead, string, error)
}

// LeadWriter puts lead commands on LEADS and waits until they are
// applied; *lead.Writer implements it.
type LeadWriter interface {
	Submit(ctx context.Context, cmds []event.Event) error
}

// Lists creates list definitions; *tenant.Store implements it.
type Lists interface {
	CreateList(ctx context.Context, idOrName, name string) (tenant.List, error)
}

// Bounds of the lead endpoints.
const (
	defaultLeadLimit = 50
	maxLeadLimit     = 1000
	maxBulkLeads     = 1000
	maxScoreChange   = 1_000_000_000
	maxTraitName     = 128
	maxPatchTraits   = 200
	leadWriteWait    = 10 * time.Second
)

// registerLeads mounts the lead and list endpoints (tenant API key, or
// the admin token with tenant=).
func (a *API) registerLeads(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/leads", a.leads(a.findLeads))
	mux.HandleFunc("GET /api/v1/leads/{id}", a.leads(a.getLead))
	mux.HandleFunc("GET /api/v1/leads/{id}/activities", a.leads(a.leadActivities))
	mux.HandleFunc("PATCH /api/v1/leads/{id}", a.leads(a.patchLead))
	mux.HandleFunc("POST /api/v1/leads/{id}/score", a.leads(a.scoreLead))
	mux.HandleFunc("POST /api/v1/leads/merge", a.leads(a.mergeLeads))
	mux.HandleFunc("DELETE /api/v1/leads/{id}", a.leads(a.deleteLead))
	mux.HandleFunc("GET /api/v1/lists", a.leads(a.listLists))
	mux.HandleFunc("POST /api/v1/lists", a.leads(a.createList))
	mux.HandleFunc("POST /api/v1/lists/{id}/members", a.leads(a.addMembers))
	mux.HandleFunc("DELETE /api/v1/lists/{id}/members", a.leads(a.removeMembers))
}

// leads wraps a lead handler: it resolves the tenant and checks that this
// node serves leads.
func (a *API) leads(next func(w http.ResponseWriter, r *http.Request, t *tenant.Tenant)) http.HandlerFunc {
	return a.tenantScoped(a.deps.Leads != nil && a.deps.LeadWriter != nil, "leads", next)
}

// LeadPage is a page of leads.
type LeadPage struct {
	Leads      []*lead.Lead `json:"leads"`
	NextCursor string       `json:"next_cursor"`
}

// ActivityPage is a page of a lead's timeline, newest first.
type ActivityPage struct {
	Activities []lead.Activity `json:"activities"`
	NextCursor string          `json:"next_cursor"`
}

func (a *API) getLead(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	l, err := a.deps.Leads.Get(r.Context(), t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// findLeads looks a lead up by email or userId, or pages through a list.
func (a *API) findLeads(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	q := r.URL.Query()
	params := map[string]string{}
	for _, name := range []string{"email", "user_id", "list", "limit", "cursor"} {
		v, err := single(q, name)
		if err != nil {
			a.fail(w, err)
			return
		}
		params[name] = v
	}
	var l *lead.Lead
	var err error
	switch {
	case params["email"] != "":
		l, err = a.deps.Leads.ByEmail(r.Context(), t.ID, params["email"])
	case params["user_id"] != "":
		l, err = a.deps.Leads.ByUserID(r.Context(), t.ID, params["user_id"])
	case params["list"] != "":
		list, ok := t.List(params["list"])
		if !ok {
			a.fail(w, fmt.Errorf("list %q: %w", params["list"], tenant.ErrListNotFound))
			return
		}
		limit, err := limitParam(params["limit"], defaultLeadLimit, maxLeadLimit)
		if err != nil {
			a.fail(w, err)
			return
		}
		if c := params["cursor"]; c != "" && !strings.HasPrefix(c, "ld_") {
			a.fail(w, fmt.Errorf("cursor %q: %w", c, lead.ErrBadCursor))
			return
		}
		leads, next, err := a.deps.Leads.ListMembers(r.Context(), t.ID, list.ID, limit, params["cursor"])
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, LeadPage{Leads: leads, NextCursor: next})
		return
	default:
		a.fail(w, fmt.Errorf("%w: give one of email, user_id or list", errInvalidParameter))
		return
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, LeadPage{Leads: []*lead.Lead{l}})
}

func limitParam(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("%w: limit %q: a whole number from 1 to %d", errInvalidParameter, s, max)
	}
	return n, nil
}

func (a *API) leadActivities(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	q := r.URL.Query()
	var aq lead.ActivityQuery
	var err error
	limit, _ := single(q, "limit")
	if aq.Limit, err = limitParam(limit, defaultLeadLimit, maxLeadLimit); err != nil {
		a.fail(w, err)
		return
	}
	if aq.Cursor, err = single(q, "cursor"); err != nil {
		a.fail(w, err)
		return
	}
	for _, v := range q["type"] {
		for _, typ := range strings.Split(v, ",") {
			if typ = strings.TrimSpace(typ); typ == "" {
				continue
			}
			if !lead.ValidActivityType(typ) {
				a.fail(w, fmt.Errorf("%w: unknown activity type %q (one of %s)", errInvalidParameter, typ, strings.Join(lead.ActivityTypes, ", ")))
				return
			}
			aq.Types = append(aq.Types, typ)
		}
	}
	acts, next, err := a.deps.Leads.Activities(r.Context(), t.ID, r.PathValue("id"), aq)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ActivityPage{Activities: acts, NextCursor: next})
}

// submit puts commands on LEADS and waits for them. It reports whether
// they were applied; when not (the wait timed out) it has answered 202.
func (a *API) submit(w http.ResponseWriter, r *http.Request, cmds []event.Event) bool {
	if a.refusePaused(w, cmds) {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), leadWriteWait)
	defer cancel()
	err := a.deps.LeadWriter.Submit(ctx, cmds)
	switch {
	case errors.Is(err, lead.ErrNotApplied):
		writeJSON(w, http.StatusAccepted, map[string]any{"accepted": true, "applied": false, "message": err.Error()})
		return false
	case err != nil:
		a.fail(w, err)
		return false
	}
	return true
}

// command builds a command for a lead, timed now.
func (a *API) command(t *tenant.Tenant, leadID, name string, args any) (event.Event, error) {
	return lead.Command(t.ID, leadID, name, args, "", time.Now())
}

// existing returns a lead by the id in the path; 404 when there is none.
func (a *API) existing(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) (*lead.Lead, bool) {
	l, err := a.deps.Leads.Get(r.Context(), t.ID, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return nil, false
	}
	return l, true
}

// write runs one command on a lead and answers the lead as it is after.
func (a *API) write(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, leadID, name string, args any) {
	c, err := a.command(t, leadID, name, args)
	if err != nil {
		a.fail(w, err)
		return
	}
	if !a.submit(w, r, []event.Event{c}) {
		return
	}
	l, err := a.deps.Leads.Get(r.Context(), t.ID, leadID)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (a *API) patchLead(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	var p lead.Patch
	if err := decodeBody(r, &p); err != nil {
		a.fail(w, err)
		return
	}
	if err := validatePatch(&p); err != nil {
		a.fail(w, err)
		return
	}
	l, ok := a.existing(w, r, t)
	if !ok {
		return
	}
	a.write(w, r, t, l.ID, lead.CmdPatch, p)
}

// validatePatch refuses an empty patch, bad field names, and an email
// that does not look like one.
func validatePatch(p *lead.Patch) error {
	if len(p.Traits) == 0 && p.Email == nil && p.Unsubscribed == nil && p.DoNotContact == nil {
		return fmt.Errorf("%w: a patch sets traits, email, unsubscribed or do_not_contact", errInvalid)
	}
	if len(p.Traits) > maxPatchTraits {
		return fmt.Errorf("%w: at most %d traits in one patch", errInvalid, maxPatchTraits)
	}
	for name, v := range p.Traits {
		if strings.TrimSpace(name) == "" || len(name) > maxTraitName {
			return fmt.Errorf("%w: trait name %q: 1 to %d bytes", errInvalid, name, maxTraitName)
		}
		if name == "email" {
			var s string
			if string(v) != "null" && (json.Unmarshal(v, &s) != nil || event.NormalizeEmail(s) == "") {
				return fmt.Errorf("%w: traits.email %s is not an email", errInvalid, v)
			}
		}
	}
	if p.Email != nil && *p.Email != "" && event.NormalizeEmail(*p.Email) == "" {
		return fmt.Errorf("%w: email %q is not an email", errInvalid, *p.Email)
	}
	return nil
}

func (a *API) scoreLead(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	var req struct {
		Change *int64 `json:"change"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Change == nil || *req.Change == 0 || *req.Change > maxScoreChange || *req.Change < -maxScoreChange {
		a.fail(w, fmt.Errorf("%w: change: a non-zero whole number within ±%d is required", errInvalid, maxScoreChange))
		return
	}
	l, ok := a.existing(w, r, t)
	if !ok {
		return
	}
	a.write(w, r, t, l.ID, lead.CmdScore, lead.ScoreChange{Change: *req.Change})
}

func (a *API) deleteLead(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	l, ok := a.existing(w, r, t)
	if !ok {
		return
	}
	c, err := a.command(t, l.ID, lead.CmdErase, struct{}{})
	if err != nil {
		a.fail(w, err)
		return
	}
	if a.submit(w, r, []event.Event{c}) {
		writeJSON(w, http.StatusOK, map[string]any{"deleted": l.ID})
	}
}

// mergeLeads merges the loser into the winner. Merging again is a no-op
// that answers the same; a lead already merged into another is a conflict.
func (a *API) mergeLeads(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	var req struct {
		Winner string `json:"winner"`
		Loser  string `json:"loser"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Winner == "" || req.Loser == "" || req.Winner == req.Loser {
		a.fail(w, fmt.Errorf("%w: give two different leads as winner and loser", errInvalid))
		return
	}
	ctx := r.Context()
	a.mergeMu.Lock()
	defer a.mergeMu.Unlock()
	winner, err := a.deps.Leads.Get(ctx, t.ID, req.Winner)
	if err != nil {
		a.fail(w, err)
		return
	}
	if winner.ID != req.Winner {
		a.fail(w, fmt.Errorf("%w: the winner %s was merged into %s; merge into that lead", errConflict, req.Winner, winner.ID))
		return
	}
	loser, err := a.deps.Leads.Get(ctx, t.ID, req.Loser)
	if err != nil {
		a.fail(w, err)
		return
	}
	switch {
	case loser.ID == winner.ID:
		writeJSON(w, http.StatusOK, map[string]any{"winner": winner, "merged": req.Loser}) // done before
		return
	case loser.ID != req.Loser:
		a.fail(w, fmt.Errorf("%w: %s was merged into %s already", errConflict, req.Loser, loser.ID))
		return
	}
	c, err := lead.Command(t.ID, req.Loser, lead.CmdMerge, lead.MergeInto{Winner: req.Winner, By: "api"}, "merge."+req.Loser+"."+req.Winner, time.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	if !a.submit(w, r, []event.Event{c}) {
		return
	}
	// The winner takes the loser's timeline in the next hop.
	winner, err = a.deps.Leads.Get(ctx, t.ID, req.Winner)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"winner": winner, "merged": req.Loser})
}

func (a *API) listLists(w http.ResponseWriter, _ *http.Request, t *tenant.Tenant) {
	lists := t.Lists
	if lists == nil {
		lists = []tenant.List{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"lists": lists})
}

func (a *API) createList(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if a.deps.Lists == nil {
		a.fail(w, fmt.Errorf("%w: lists cannot be created on this node", errUnavailable))
		return
	}
	l, err := a.deps.Lists.CreateList(r.Context(), t.ID, req.Name)
	if err != nil {
		a.fail(w, err)
		return
	}
	if tt, err := a.deps.Tenants.Get(r.Context(), t.ID); err == nil {
		a.applied(r.Context(), tt.Revision)
	}
	writeJSON(w, http.StatusCreated, l)
}

// memberRequest names leads in bulk: by id, email or userId.
type memberRequest struct {
	Leads   []string `json:"leads"`
	Emails  []string `json:"emails"`
	UserIDs []string `json:"user_ids"`
}

func (a *API) addMembers(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	a.changeMembers(w, r, t, lead.CmdListAdd)
}

func (a *API) removeMembers(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	a.changeMembers(w, r, t, lead.CmdListRemove)
}

// changeMembers adds leads to a list or removes them. The whole request
// is checked before anything is written; leads that do not exist are
// listed in not_found, the others changed.
func (a *API) changeMembers(w http.ResponseWriter, r *http.Request, t *tenant.Tenant, cmd string) {
	list, ok := t.List(r.PathValue("id"))
	if !ok {
		a.fail(w, fmt.Errorf("list %q: %w", r.PathValue("id"), tenant.ErrListNotFound))
		return
	}
	var req memberRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	n := len(req.Leads) + len(req.Emails) + len(req.UserIDs)
	switch {
	case n == 0:
		a.fail(w, fmt.Errorf("%w: name leads in leads, emails or user_ids", errInvalid))
		return
	case n > maxBulkLeads:
		a.fail(w, fmt.Errorf("%w: %d leads in one request, at most %d", errTooMany, n, maxBulkLeads))
		return
	}
	ctx := r.Context()
	notFound := []string{}
	seen := map[string]bool{}
	var cmds []event.Event
	resolve := func(key string, find func() (*lead.Lead, error)) error {
		l, err := find()
		if errors.Is(err, lead.ErrNotFound) {
			notFound = append(notFound, key)
			return nil
		}
		if err != nil {
			return err
		}
		if seen[l.ID] {
			return nil
		}
		seen[l.ID] = true
		c, err := a.command(t, l.ID, cmd, lead.ListChange{List: list.ID})
		cmds = append(cmds, c)
		return err
	}
	for _, id := range req.Leads {
		if err := resolve(id, func() (*lead.Lead, error) { return a.deps.Leads.Get(ctx, t.ID, id) }); err != nil {
			a.fail(w, err)
			return
		}
	}
	for _, e := range req.Emails {
		if err := resolve(e, func() (*lead.Lead, error) { return a.deps.Leads.ByEmail(ctx, t.ID, e) }); err != nil {
			a.fail(w, err)
			return
		}
	}
	for _, u := range req.UserIDs {
		if err := resolve(u, func() (*lead.Lead, error) { return a.deps.Leads.ByUserID(ctx, t.ID, u) }); err != nil {
			a.fail(w, err)
			return
		}
	}
	if len(cmds) > 0 && !a.submit(w, r, cmds) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"list": list.ID, "changed": len(cmds), "not_found": notFound})
}
