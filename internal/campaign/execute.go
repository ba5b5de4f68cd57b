package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/shard"
)

// maxStepsPerInput bounds the steps one run takes for one input; a flow
// has no loops, so only a bug could reach it.
const maxStepsPerInput = 1000

// stepOutcome says whether a run goes on after a step, or stops for this
// input (it waits, or ended).
type stepOutcome int

const (
	stepNext stepOutcome = iota // go on at r.PC
	stepStop                    // the run waits or ended
)

// execute runs r from its current step until it waits or ends, applying
// each step's effects in the input's batch, and saves it.
func (e *Engine) execute(ctx context.Context, tx *shard.Tx, h *lead.Handle, ver *Version, r *Run, v *vars) error {
	for n := 0; r.Status == RunRunning; n++ {
		if r.PC >= len(ver.prog) {
			e.end(tx, h, r, RunCompleted, "")
			break
		}
		if n >= maxStepsPerInput {
			e.end(tx, h, r, RunFailed, "too many steps in one go")
			break
		}
		st := ver.prog[r.PC]
		if st.kind == stepJump {
			r.PC = st.next
			continue
		}
		out, err := e.step(ctx, tx, h, ver, r, st, v)
		if err != nil {
			return err
		}
		if out == stepStop {
			break
		}
	}
	r.Updated = h.At().UTC()
	return e.saveRun(tx, h.Tenant(), r)
}

func (e *Engine) saveRun(tx *shard.Tx, tenantID string, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding run %s: %w", r.ID, err)
	}
	tx.Set(e.keys.run(tenantID, r.Lead, r.ID), b)
	return nil
}

// end closes a run.
func (e *Engine) end(tx *shard.Tx, h *lead.Handle, r *Run, status, reason string) {
	r.Status, r.Error = status, reason
	tx.Delete(e.keys.activeRun(h.Tenant(), r.Lead, r.ID))
	qkey := e.keys.qual(h.Tenant(), r.Lead, r.Campaign)
	if b, err := tx.Get(qkey); err == nil && b != nil {
		var q qualification
		if json.Unmarshal(b, &q) == nil && q.Active == r.ID {
			q.Active = ""
			nb, _ := json.Marshal(q)
			tx.Set(qkey, nb)
		}
	}
	name := map[string]string{RunCompleted: statCompleted, RunFailed: statFailed, RunRemoved: statRemoved}[status]
	e.count(tx, h.Tenant(), r.Campaign, name, 1)
	e.metrics.runs.WithLabelValues(h.Tenant(), status).Inc()
}

// fail ends a run on an error of the flow (not of the infrastructure).
func (e *Engine) fail(tx *shard.Tx, h *lead.Handle, r *Run, err error) error {
	e.end(tx, h, r, RunFailed, err.Error())
	return e.saveRun(tx, h.Tenant(), r)
}

// record notes a step taken on the run and, for steps without an activity
// of their own, on the lead's timeline.
func (e *Engine) record(tx *shard.Tx, h *lead.Handle, r *Run, st *step, result, key string, timeline bool) error {
	r.Steps = append(r.Steps, StepRecord{PC: r.PC, Path: st.path, Type: st.kind, At: h.At().UTC(), Result: result, Key: key})
	e.count(tx, h.Tenant(), r.Campaign, statDone(r.PC), 1)
	e.metrics.actions.WithLabelValues(h.Tenant(), st.kind).Inc()
	if !timeline {
		return nil
	}
	return h.Record(lead.Activity{Type: lead.ActCampaignStep, CampaignID: r.Campaign, Run: r.ID, Step: st.path + " " + st.kind, Result: result, Source: "campaign"})
}

// step runs one step and moves r.PC on.
func (e *Engine) step(ctx context.Context, tx *shard.Tx, h *lead.Handle, ver *Version, r *Run, st *step, v *vars) (stepOutcome, error) {
	tenantID := h.Tenant()
	next := func(result string, timeline bool, err error) (stepOutcome, error) {
		if err != nil {
			return stepStop, err
		}
		if err := e.record(tx, h, r, st, result, "", timeline); err != nil {
			return stepStop, err
		}
		r.PC = st.next
		v.reload()
		return stepNext, nil
	}
	switch st.kind {
	case StepChangeScore:
		return next(fmt.Sprintf("score %+d", st.Change), false, h.ChangeScore(st.Change, r.Campaign))
	case StepChangeField:
		val := st.Value
		if t := st.tmpl["value"]; t != nil {
			val, _ = json.Marshal(t.Render(v, EscapeNone))
		}
		return next(st.Field+" = "+string(val), false, h.SetField(st.Field, val, r.Campaign))
	case StepAddToList, StepRemoveFromList:
		list := e.listID(tenantID)(st.List)
		return next(st.kind+" "+st.List, false, h.ChangeList(list, st.kind == StepAddToList, r.Campaign))
	case StepInterestingMoment:
		desc := st.tmpl["description"].Render(v, EscapeNone)
		return next("", false, h.Record(lead.Activity{Type: lead.ActInteresting, Description: desc, CampaignID: r.Campaign, Run: r.ID, Source: "campaign"}))
	case StepRequestCampaign:
		if err := e.record(tx, h, r, st, "requested "+st.Campaign, "", true); err != nil {
			return stepStop, err
		}
		r.PC = st.next
		if err := e.request(ctx, tx, h, st.Campaign, st.Tokens); err != nil {
			return stepStop, err
		}
		v.reload()
		return stepNext, nil
	case StepRemoveFromFlow:
		return e.removeFromFlow(tx, h, r, st)
	case StepWait:
		loc := h.Settings().Location()
		due := st.due(h.At(), loc)
		return e.wait(tx, h, r, st, RunWaiting, due, "waiting until "+due.UTC().Format(time.RFC3339))
	case StepWaitForEvent:
		if err := h.AddWaiting(1); err != nil {
			return stepStop, err
		}
		due := h.At().Add(st.wait)
		return e.wait(tx, h, r, st, RunAwaiting, due, "waiting for "+st.trig.Type+" until "+due.UTC().Format(time.RFC3339))
	case StepChoice:
		branch := len(st.conds)
		for i, c := range st.conds {
			ok, err := c.Eval(v)
			if err != nil {
				e.metrics.exprErrors.WithLabelValues(tenantID).Inc()
			}
			if ok {
				branch = i
				break
			}
		}
		result := "default"
		if branch < len(st.conds) {
			result = "branch " + strconv.Itoa(branch)
		}
		if err := e.record(tx, h, r, st, result, "", false); err != nil {
			return stepStop, err
		}
		r.PC = st.targets[branch]
		return stepNext, nil
	case StepCallWebhook:
		return e.webhook(tx, h, ver, r, st, v)
	case StepSendEmail:
		return e.email(tx, h, ver, r, st, v)
	}
	return stepStop, e.fail(tx, h, r, fmt.Errorf("unknown step type %q", st.kind))
}

// wait parks the run on a timer.
func (e *Engine) wait(tx *shard.Tx, h *lead.Handle, r *Run, st *step, status string, due time.Time, result string) (stepOutcome, error) {
	if err := e.record(tx, h, r, st, result, "", true); err != nil {
		return stepStop, err
	}
	r.Status, r.Due = status, due.UTC()
	b, _ := json.Marshal(timerEntry{Tenant: h.Tenant(), Lead: h.ID(), Run: r.ID, PC: r.PC, Due: r.Due})
	tx.Set(e.keys.timer(r.Due, h.Tenant(), h.ID(), r.ID), b)
	e.count(tx, h.Tenant(), r.Campaign, statAt(r.PC), 1)
	e.count(tx, h.Tenant(), r.Campaign, statWaiting, 1)
	return stepStop, nil
}

// removeFromFlow ends the lead's active runs of the named campaigns (this
// one when none is named).
func (e *Engine) removeFromFlow(tx *shard.Tx, h *lead.Handle, r *Run, st *step) (stepOutcome, error) {
	targets := st.Campaigns
	if st.Campaign != "" {
		targets = append(targets, st.Campaign)
	}
	if len(targets) == 0 {
		targets = []string{r.Campaign}
	}
	if err := e.record(tx, h, r, st, "removed from "+strings.Join(targets, ", "), "", true); err != nil {
		return stepStop, err
	}
	r.PC = st.next
	runs, err := e.activeRuns(tx, h.Tenant(), h.ID())
	if err != nil {
		return stepStop, err
	}
	self := false
	for _, other := range runs {
		if !containsString(targets, other.Campaign) {
			continue
		}
		if other.ID == r.ID {
			self = true
			continue
		}
		if err := e.remove(tx, h, other); err != nil {
			return stepStop, err
		}
	}
	if self || containsString(targets, r.Campaign) {
		e.end(tx, h, r, RunRemoved, "removed from flow")
		return stepStop, nil
	}
	return stepNext, nil
}

// remove ends another run of the lead, wherever it waits.
func (e *Engine) remove(tx *shard.Tx, h *lead.Handle, r *Run) error {
	if r.Status == RunWaiting || r.Status == RunAwaiting {
		tx.Delete(e.keys.timer(r.Due, h.Tenant(), h.ID(), r.ID))
		e.count(tx, h.Tenant(), r.Campaign, statAt(r.PC), -1)
		e.count(tx, h.Tenant(), r.Campaign, statWaiting, -1)
		if r.Status == RunAwaiting {
			if err := h.AddWaiting(-1); err != nil {
				return err
			}
		}
	}
	r.Due = time.Time{}
	e.end(tx, h, r, RunRemoved, "removed from flow")
	r.Updated = h.At().UTC()
	return e.saveRun(tx, h.Tenant(), r)
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// EffectKey is the idempotency key of a run's external step:
// hash(tenant, campaign, version, lead, run, step), stable across replays
// and retries.
func EffectKey(tenantID, campaign string, version int, leadID, run string, pc int) string {
	h := sha256.New()
	for _, s := range []string{tenantID, campaign, strconv.Itoa(version), leadID, run, strconv.Itoa(pc)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "ce_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// webhook hands a webhook call to the senders.
func (e *Engine) webhook(tx *shard.Tx, h *lead.Handle, ver *Version, r *Run, st *step, v *vars) (stepOutcome, error) {
	ct := st.ContentType
	if ct == "" {
		ct = "application/json"
	}
	escape := EscapeNone
	if strings.Contains(ct, "json") {
		escape = EscapeJSON
	}
	job := deliver.Job{
		Kind: "webhook", Tenant: h.Tenant(), Key: EffectKey(h.Tenant(), r.Campaign, r.Version, h.ID(), r.ID, r.PC),
		Campaign: r.Campaign, Version: r.Version, Run: r.ID, Step: r.PC, Lead: h.ID(), At: h.At().UTC(),
		URL: st.tmpl["url"].Render(v, escapeURL), Method: strings.ToUpper(st.Method), Body: st.tmpl["body"].Render(v, escape),
		ContentType: ct, TimeoutMS: st.TimeoutMS,
	}
	if len(st.Headers) > 0 {
		job.Headers = make(map[string]string, len(st.Headers))
		for k := range st.Headers {
			job.Headers[k] = st.tmpl["header:"+k].Render(v, EscapeNone)
		}
	}
	job.Order = h.Tenant() + "/" + h.ID()
	return e.external(tx, h, r, st, job, "webhook "+job.Method+" "+hostPart(job.URL))
}

// email hands an email to the senders, unless the lead may not be
// contacted or is over the communication limits.
func (e *Engine) email(tx *shard.Tx, h *lead.Handle, ver *Version, r *Run, st *step, v *vars) (stepOutcome, error) {
	skip := func(reason string) (stepOutcome, error) {
		e.metrics.skipped.WithLabelValues(h.Tenant(), "email_"+reason).Inc()
		if err := e.record(tx, h, r, st, "skipped: "+reason, "", true); err != nil {
			return stepStop, err
		}
		r.PC = st.next
		return stepNext, nil
	}
	l, err := h.Lead()
	if err != nil || l == nil {
		return stepStop, err
	}
	switch {
	case l.Email == "":
		return skip("no_email")
	case l.DoNotContact:
		return skip("do_not_contact")
	case l.Unsubscribed:
		return skip("unsubscribed")
	}
	sent, err := e.recentEmails(tx, h)
	if err != nil {
		return stepStop, err
	}
	at := h.At()
	if lim := ver.limits; lim.PerDay > 0 || lim.PerWeek > 0 {
		day, week := 0, 0
		for _, t := range sent {
			d := at.Sub(time.UnixMicro(t))
			if d < 24*time.Hour {
				day++
			}
			if d < 7*24*time.Hour {
				week++
			}
		}
		if lim.PerDay > 0 && day >= lim.PerDay || lim.PerWeek > 0 && week >= lim.PerWeek {
			return skip("communication_limit")
		}
	}
	sent = append(sent, at.UnixMicro())
	b, _ := json.Marshal(sent)
	tx.Set(e.keys.emails(h.Tenant(), h.ID()), b)
	set := h.Settings()
	from := st.tmpl["from"].Render(v, EscapeNone)
	if from == "" {
		from = set.EmailFrom
	}
	job := deliver.Job{
		Kind: "email", Tenant: h.Tenant(), Key: EffectKey(h.Tenant(), r.Campaign, r.Version, h.ID(), r.ID, r.PC),
		Campaign: r.Campaign, Version: r.Version, Run: r.ID, Step: r.PC, Lead: h.ID(), At: at.UTC(),
		From: from, To: l.Email, Subject: st.tmpl["subject"].Render(v, EscapeNone),
		Text: st.tmpl["text"].Render(v, EscapeNone), HTML: st.tmpl["html"].Render(v, EscapeHTML),
	}
	if addr, err := mail.ParseAddress(from); err == nil {
		job.ListUnsubscribe = "mailto:" + addr.Address + "?subject=unsubscribe"
	}
	job.Order = h.Tenant() + "/" + h.ID()
	return e.external(tx, h, r, st, job, "email to "+l.Email)
}

// recentEmails returns the times (µs) of the lead's emails in the last
// seven days.
func (e *Engine) recentEmails(tx *shard.Tx, h *lead.Handle) ([]int64, error) {
	b, err := tx.Get(e.keys.emails(h.Tenant(), h.ID()))
	if err != nil || b == nil {
		return nil, err
	}
	var all []int64
	_ = json.Unmarshal(b, &all)
	cutoff := h.At().Add(-7 * 24 * time.Hour).UnixMicro()
	out := all[:0]
	for _, t := range all {
		if t >= cutoff {
			out = append(out, t)
		}
	}
	return out, nil
}

// external queues an external effect with the input's batch.
func (e *Engine) external(tx *shard.Tx, h *lead.Handle, r *Run, st *step, job deliver.Job, result string) (stepOutcome, error) {
	payload, err := json.Marshal(job)
	if err != nil {
		return stepStop, fmt.Errorf("encoding %s job: %w", job.Kind, err)
	}
	tx.External(shard.External{Key: job.Key, Order: job.Order, Payload: payload})
	e.metrics.external.WithLabelValues(h.Tenant(), job.Kind).Inc()
	if err := e.record(tx, h, r, st, result, job.Key, true); err != nil {
		return stepStop, err
	}
	r.PC = st.next
	return stepNext, nil
}

// escapeURL makes a token safe in a URL's path or query.
func escapeURL(s string) string { return url.QueryEscape(s) }
