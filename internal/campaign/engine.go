package campaign

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Catalog gives the engine the tenants' published campaigns; *Registry
// implements it.
type Catalog interface {
	// Triggered returns the active versions of the tenant's campaigns
	// that listen to an activity type, highest priority first.
	Triggered(tenant, activity string) []*Version
	// Version returns a published version of a campaign, active or not:
	// a run keeps the version it started on.
	Version(tenant, campaign string, n int) (*Version, bool)
	// Active returns the active version of a campaign.
	Active(tenant, campaign string) (*Version, bool)
}

// Tenants looks tenants up; *tenant.Cache implements it.
type Tenants interface {
	ByID(id string) (*tenant.Tenant, bool)
}

// Engine runs the campaigns of one LEADS partition. It implements
// lead.Campaigns and is used by one goroutine at a time.
type Engine struct {
	cat       Catalog
	tenants   Tenants
	partition int
	keys      keys
	metrics   *Metrics
	// runN numbers the runs an input starts, for their ids.
	runSeq uint64
	runIdx int
	runN   int
	// requests bounds how deep campaign requests nest within an input.
	requests int
}

// New returns the engine of LEADS partition q.
func New(cat Catalog, tenants Tenants, q int, m *Metrics) (*Engine, error) {
	if cat == nil || m == nil {
		return nil, errors.New("campaign: a catalog and metrics are required")
	}
	return &Engine{cat: cat, tenants: tenants, partition: q, keys: newKeys(q), metrics: m}, nil
}

var _ lead.Campaigns = (*Engine)(nil)

// maxRequestDepth bounds nested campaign requests within one input.
const maxRequestDepth = 4

// Activity tests an activity against the runs of the lead waiting for
// one, then against the campaigns listening to its type.
func (e *Engine) Activity(ctx context.Context, tx *shard.Tx, h *lead.Handle, a *lead.Activity) error {
	if a.Type == lead.ActCampaignStep {
		return nil
	}
	// Most activities concern no campaign: they cost two lookups, and the
	// expression variables are built only for those that do.
	versions := e.cat.Triggered(h.Tenant(), a.Type)
	waiting := h.Waiting() > 0
	if len(versions) == 0 && !waiting {
		return nil
	}
	v := &vars{act: a, lead: h.Lead}
	if waiting {
		if err := e.resumeWaiting(ctx, tx, h, v, a); err != nil {
			return err
		}
	}
	if len(versions) == 0 {
		return nil
	}
	e.metrics.tested.WithLabelValues(h.Tenant()).Add(float64(len(versions)))
	for _, ver := range versions {
		if a.CampaignID == ver.Campaign {
			continue // a campaign's own effects do not trigger it again
		}
		if a.Backfill && !ver.allowsBackfill(h.At(), a.Time) {
			continue
		}
		ok, err := e.matches(tx, h, ver, v, a)
		if err != nil {
			e.metrics.exprErrors.WithLabelValues(h.Tenant()).Inc()
			continue // an expression that cannot be evaluated does not match
		}
		if !ok {
			continue
		}
		if err := e.enter(ctx, tx, h, ver, v, nil); err != nil {
			return err
		}
	}
	return nil
}

func (v *Version) allowsBackfill(now, t time.Time) bool {
	return v.backfill && (v.backfillAt == 0 || now.Sub(t) <= v.backfillAt)
}

// matches reports whether any trigger of the version matches the activity.
func (e *Engine) matches(tx *shard.Tx, h *lead.Handle, ver *Version, v *vars, a *lead.Activity) (bool, error) {
	var firstErr error
	for _, t := range ver.triggers {
		ok, err := e.triggerMatches(h, t, v, a)
		if err != nil {
			firstErr = err
			continue
		}
		if ok {
			return true, nil
		}
	}
	return false, firstErr
}

// triggerMatches tests one trigger: its type and narrowing fields, its
// constraint, and its count over the window.
func (e *Engine) triggerMatches(h *lead.Handle, t *trigger, v *vars, a *lead.Activity) (bool, error) {
	if !t.accepts(a) {
		return false, nil
	}
	if t.constraint != nil {
		ok, err := t.constraint.Eval(v)
		if err != nil || !ok {
			return false, err
		}
	}
	if t.MinCount <= 1 {
		return true, nil
	}
	from := a.Time.Add(-t.within)
	if t.today {
		loc := h.Settings().Location()
		y, m, d := a.Time.In(loc).Date()
		from = time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	n := 0
	var evalErr error
	err := h.Activities(from, a.Time, func(x *lead.Activity) bool {
		if !t.accepts(x) {
			return true
		}
		if t.constraint != nil {
			ok, err := t.constraint.Eval(&vars{act: x, lead: h.Lead})
			if err != nil {
				evalErr = err
				return false
			}
			if !ok {
				return true
			}
		}
		n++
		return n < t.MinCount
	})
	if err != nil {
		return false, err
	}
	return n >= t.MinCount, evalErr
}

// accepts checks the activity's type and the trigger's narrowing fields.
func (t *trigger) accepts(a *lead.Activity) bool {
	if a.Type != t.activity {
		return false
	}
	switch {
	case t.Event != "" && !strings.EqualFold(a.Event, t.Event):
		return false
	case t.Form != "" && a.Event != t.Form:
		return false
	case t.Field != "" && a.Field != t.Field:
		return false
	case t.List != "" && a.List != t.List:
		return false
	}
	return true
}

// enter starts a run of the version for the lead if the lead qualifies:
// the qualification rule, the person restriction and the filters.
func (e *Engine) enter(ctx context.Context, tx *shard.Tx, h *lead.Handle, ver *Version, v *vars, tokens map[string]string) error {
	tenantID := h.Tenant()
	qkey := e.keys.qual(tenantID, h.ID(), ver.Campaign)
	var q qualification
	if b, err := tx.Get(qkey); err != nil {
		return err
	} else if b != nil {
		_ = json.Unmarshal(b, &q)
	}
	at := h.At()
	switch ver.qual {
	case QualOnce:
		if q.Runs > 0 {
			return e.skip(tenantID, "qualification")
		}
	case QualOncePer:
		if q.Runs > 0 && at.Sub(time.UnixMicro(q.Last)) < ver.qualPeriod {
			return e.skip(tenantID, "qualification")
		}
	case QualOneActive:
		if q.Active != "" {
			return e.skip(tenantID, "qualification")
		}
	}
	l, err := h.Lead()
	if err != nil || l == nil {
		return err
	}
	if !ver.restrict.admits(l, e.listID(tenantID)) {
		return e.skip(tenantID, "person_restriction")
	}
	for _, f := range ver.filters {
		ok, err := f.Eval(v)
		if err != nil {
			e.metrics.exprErrors.WithLabelValues(tenantID).Inc()
		}
		if !ok {
			return e.skip(tenantID, "filter")
		}
	}
	r := &Run{
		ID: e.runID(tx), Campaign: ver.Campaign, Version: ver.Number, Lead: h.ID(), Status: RunRunning,
		Started: at.UTC(), Updated: at.UTC(), Tokens: tokens, Steps: []StepRecord{},
	}
	if v.act != nil {
		r.Trigger, _ = json.Marshal(v.act)
	}
	q.Runs++
	q.Last = at.UnixMicro()
	q.Active = r.ID
	b, _ := json.Marshal(q)
	tx.Set(qkey, b)
	tx.Set(e.keys.activeRun(tenantID, h.ID(), r.ID), []byte(ver.Campaign))
	tx.Set(e.keys.campaignRun(tenantID, ver.Campaign, r.ID), []byte(h.ID()))
	e.count(tx, tenantID, ver.Campaign, statEntered, 1)
	e.metrics.runs.WithLabelValues(tenantID, "entered").Inc()
	if v.act == nil || !v.act.Backfill {
		e.metrics.triggerLatency.Observe(e.metrics.now().Sub(at).Seconds())
	}
	return e.execute(ctx, tx, h, ver, r, &vars{act: v.act, tokens: v.tokens, lead: h.Lead, run: r})
}

func (e *Engine) skip(tenantID, reason string) error {
	e.metrics.skipped.WithLabelValues(tenantID, reason).Inc()
	return nil
}

// listID returns a resolver of the tenant's list names to ids.
func (e *Engine) listID(tenantID string) func(string) string {
	return func(idOrName string) string {
		if e.tenants != nil {
			if t, ok := e.tenants.ByID(tenantID); ok {
				if l, ok := t.List(idOrName); ok {
					return l.ID
				}
			}
		}
		return idOrName
	}
}

// admits applies the person restriction.
func (p PersonRestriction) admits(l *lead.Lead, listID func(string) string) bool {
	if p.RequireEmail && l.Email == "" {
		return false
	}
	if p.ExcludeDoNotContact && (l.DoNotContact || l.Unsubscribed) {
		return false
	}
	in := func(list string) bool {
		id := listID(list)
		for _, x := range l.Lists {
			if x == id {
				return true
			}
		}
		return false
	}
	for _, x := range p.ExcludeLists {
		if in(x) {
			return false
		}
	}
	if len(p.Lists) == 0 {
		return true
	}
	for _, x := range p.Lists {
		if in(x) {
			return true
		}
	}
	return false
}

// Reset forgets the input under way: the shard starts again from its
// stored position, and a replayed input must number its runs as before.
func (e *Engine) Reset() { e.runSeq, e.runIdx, e.runN, e.requests = 0, 0, 0, 0 }

// runID numbers a run by the input that started it: unique in the
// deployment, and the same on a replay.
func (e *Engine) runID(tx *shard.Tx) string {
	if tx.Seq != e.runSeq || tx.Index != e.runIdx {
		e.runSeq, e.runIdx, e.runN = tx.Seq, tx.Index, 0
	}
	e.runN++
	return "r" + strconv.Itoa(e.partition) + "-" + strconv.FormatUint(tx.Seq, 10) + "-" + strconv.Itoa(tx.Index) + "-" + strconv.Itoa(e.runN)
}

// count adds d to a campaign's counter in this partition.
func (e *Engine) count(tx *shard.Tx, tenantID, campaign, name string, d int64) {
	key := e.keys.stat(tenantID, campaign, name)
	var n int64
	if b, err := tx.Get(key); err == nil && len(b) == 8 {
		n = int64(binary.BigEndian.Uint64(b))
	}
	tx.Set(key, binary.BigEndian.AppendUint64(nil, uint64(n+d)))
}

// Command applies a timer that fired or a campaign request.
func (e *Engine) Command(ctx context.Context, tx *shard.Tx, h *lead.Handle, ev *event.Event) (bool, error) {
	switch ev.Event {
	case CmdTimer:
		var t TimerFired
		if err := json.Unmarshal(ev.Properties, &t); err != nil {
			return true, fmt.Errorf("reading %s: %w", CmdTimer, err)
		}
		return true, e.fire(ctx, tx, h, t)
	case CmdRequest:
		var req Request
		if err := json.Unmarshal(ev.Properties, &req); err != nil {
			return true, fmt.Errorf("reading %s: %w", CmdRequest, err)
		}
		return true, e.request(ctx, tx, h, req.Campaign, req.Tokens)
	}
	return false, nil
}

// request starts a run of a campaign that listens for requests.
func (e *Engine) request(ctx context.Context, tx *shard.Tx, h *lead.Handle, campaign string, tokens map[string]string) error {
	ver, ok := e.cat.Active(h.Tenant(), campaign)
	if !ok {
		return e.skip(h.Tenant(), "request_inactive")
	}
	listens := false
	for _, t := range ver.triggers {
		listens = listens || t.activity == actCampaignRequested
	}
	if !listens {
		return e.skip(h.Tenant(), "request_not_listening")
	}
	if e.requests >= maxRequestDepth {
		return e.skip(h.Tenant(), "request_depth")
	}
	e.requests++
	defer func() { e.requests-- }()
	act := &lead.Activity{Type: actCampaignRequested, Time: h.At().UTC()}
	return e.enter(ctx, tx, h, ver, &vars{act: act, tokens: tokens, lead: h.Lead}, tokens)
}

// fire resumes the run a timer was set for, if it still waits on it: a
// timer that fires twice, or after the run moved on, does nothing.
func (e *Engine) fire(ctx context.Context, tx *shard.Tx, h *lead.Handle, t TimerFired) error {
	tx.Delete(e.keys.timer(t.Due, h.Tenant(), h.ID(), t.Run))
	r, err := e.loadRun(tx, h.Tenant(), h.ID(), t.Run)
	if err != nil || r == nil {
		return err
	}
	if (r.Status != RunWaiting && r.Status != RunAwaiting) || r.PC != t.PC || !r.Due.Equal(t.Due) {
		e.metrics.staleTimers.WithLabelValues(h.Tenant()).Inc()
		return nil
	}
	ver, ok := e.cat.Version(h.Tenant(), r.Campaign, r.Version)
	if !ok {
		return e.fail(tx, h, r, fmt.Errorf("version %d of campaign %s is gone", r.Version, r.Campaign))
	}
	if r.Status == RunAwaiting {
		r.TimedOut = true
		if err := h.AddWaiting(-1); err != nil {
			return err
		}
	}
	e.leaveWait(tx, h, ver, r, "timer fired")
	return e.execute(ctx, tx, h, ver, r, &vars{act: r.triggerActivity(), lead: h.Lead, run: r})
}

// leaveWait moves a waiting run past its wait step.
func (e *Engine) leaveWait(tx *shard.Tx, h *lead.Handle, ver *Version, r *Run, result string) {
	e.count(tx, h.Tenant(), r.Campaign, statAt(r.PC), -1)
	e.count(tx, h.Tenant(), r.Campaign, statWaiting, -1)
	if n := len(r.Steps); n > 0 && r.Steps[n-1].PC == r.PC {
		r.Steps[n-1].Result += "; " + result + " at " + h.At().UTC().Format(time.RFC3339)
	}
	r.Status, r.Due = RunRunning, time.Time{}
	r.PC = ver.prog[r.PC].next
}

func (r *Run) triggerActivity() *lead.Activity {
	if len(r.Trigger) == 0 {
		return nil
	}
	var a lead.Activity
	if json.Unmarshal(r.Trigger, &a) != nil {
		return nil
	}
	return &a
}

// resumeWaiting moves on the lead's runs waiting for an activity that
// this one matches.
func (e *Engine) resumeWaiting(ctx context.Context, tx *shard.Tx, h *lead.Handle, v *vars, a *lead.Activity) error {
	runs, err := e.activeRuns(tx, h.Tenant(), h.ID())
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Status != RunAwaiting {
			continue
		}
		ver, ok := e.cat.Version(h.Tenant(), r.Campaign, r.Version)
		if !ok || r.PC >= len(ver.prog) || ver.prog[r.PC].trig == nil {
			continue
		}
		if a.CampaignID == r.Campaign {
			continue
		}
		ok, err := e.triggerMatches(h, ver.prog[r.PC].trig, v, a)
		if err != nil || !ok {
			continue
		}
		tx.Delete(e.keys.timer(r.Due, h.Tenant(), h.ID(), r.ID))
		if err := h.AddWaiting(-1); err != nil {
			return err
		}
		r.TimedOut = false
		e.leaveWait(tx, h, ver, r, "activity "+a.Type)
		if err := e.execute(ctx, tx, h, ver, r, &vars{act: r.triggerActivity(), lead: h.Lead, run: r}); err != nil {
			return err
		}
	}
	return nil
}

// activeRuns returns the lead's active runs, in id order.
func (e *Engine) activeRuns(tx *shard.Tx, tenantID, leadID string) ([]*Run, error) {
	prefix := e.keys.activeRuns(tenantID, leadID)
	var ids []string
	collect := func(k []byte) { ids = append(ids, string(k[len(prefix):])) }
	if err := tx.Scan(prefix, store.PrefixEnd(prefix), func(k, _ []byte) bool { collect(k); return true }); err != nil {
		return nil, err
	}
	tx.ScanPending(prefix, store.PrefixEnd(prefix), collect)
	seen := map[string]bool{}
	var out []*Run
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if b, err := tx.Get(e.keys.activeRun(tenantID, leadID, id)); err != nil {
			return nil, err
		} else if b == nil {
			continue // ended by this message
		}
		r, err := e.loadRun(tx, tenantID, leadID, id)
		if err != nil {
			return nil, err
		}
		if r != nil && r.active() {
			out = append(out, r)
		}
	}
	return out, nil
}

func (e *Engine) loadRun(tx *shard.Tx, tenantID, leadID, id string) (*Run, error) {
	b, err := tx.Get(e.keys.run(tenantID, leadID, id))
	if err != nil || b == nil {
		return nil, err
	}
	return decodeRun(b)
}

// Forget ends the lead's active runs and drops its campaign state: the
// lead was erased, or merged into another.
func (e *Engine) Forget(tx *shard.Tx, tenantID, leadID string) error {
	runs, err := e.activeRuns(tx, tenantID, leadID)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if !r.Due.IsZero() {
			tx.Delete(e.keys.timer(r.Due, tenantID, leadID, r.ID))
		}
		if r.Status == RunWaiting || r.Status == RunAwaiting {
			e.count(tx, tenantID, r.Campaign, statAt(r.PC), -1)
			e.count(tx, tenantID, r.Campaign, statWaiting, -1)
		}
		e.count(tx, tenantID, r.Campaign, statRemoved, 1)
		tx.Delete(e.keys.activeRun(tenantID, leadID, r.ID))
	}
	for _, p := range [][]byte{e.keys.runs(tenantID, leadID), e.keys.activeRuns(tenantID, leadID), e.keys.quals(tenantID, leadID)} {
		tx.DeleteRange(p, store.PrefixEnd(p))
	}
	tx.Delete(e.keys.emails(tenantID, leadID))
	return nil
}
