package lead

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
)

// addActivity writes an activity to the lead's timeline, keyed by its
// time and its input's place in the log, and trims the timeline.
func (p *Processor) addActivity(tx *shard.Tx, tenantID string, r *record, a Activity, set tenant.Settings) {
	a.ID = ""
	if a.CampaignID == "" {
		a.CampaignID = p.campaign
	}
	b, err := json.Marshal(&a)
	if err != nil {
		panic(fmt.Sprintf("lead: encoding an activity cannot fail: %v", err))
	}
	key := p.keys.activity(tenantID, r.ID, a.Time, tx.Seq, tx.Index, p.sub)
	tx.Set(key, b)
	p.sub++
	if p.cfg.Campaigns != nil && a.Type != ActCampaignStep && a.Type != ActMergeLead {
		a.ID = activityID(key[len(key)-activitySuffixLen:])
		p.pending = append(p.pending, pendingActivity{tenant: tenantID, lead: r.ID, a: a, depth: p.depth})
	}
	r.Activities++
	if t := a.Time.UnixMicro(); r.Oldest == 0 || t < r.Oldest {
		r.Oldest = t
	}
	p.metrics.activities.WithLabelValues(tenantID, a.Type).Inc()
	p.trim(tx, tenantID, r, set)
}

// trim drops the oldest activities beyond the tenant's limit (once it is
// a tenth over, so the work is done in batches) and those older than the
// retention before the lead's last activity. It sees every activity of the
// lead, committed or written by the message so far: a back-fill or a merge
// brings older ones than the lead's own.
func (p *Processor) trim(tx *shard.Tx, tenantID string, r *record, set tenant.Settings) {
	limit := set.LeadActivityLimit
	cutoff := r.LastSeen - set.LeadActivityRetention.D().Microseconds()
	if r.Activities <= limit+limit/10 && (r.Oldest == 0 || r.Oldest >= cutoff) {
		return
	}
	prefix := p.keys.activities(tenantID, r.ID)
	keys, err := p.activityKeys(tx, prefix)
	if err != nil {
		return // a read error: the next activity tries again
	}
	r.Activities, r.Oldest = len(keys), 0
	for _, key := range keys {
		t := int64(binary.BigEndian.Uint64(key[len(prefix):]))
		if r.Activities > limit || t < cutoff {
			tx.Delete(key)
			r.Activities--
			continue
		}
		r.Oldest = t
		break
	}
}

// activityKeys returns the keys of the activities under prefix, in order:
// the committed ones this message has not deleted, and those it wrote.
func (p *Processor) activityKeys(tx *shard.Tx, prefix []byte) ([][]byte, error) {
	var keys [][]byte
	err := tx.Scan(prefix, store.PrefixEnd(prefix), func(key, _ []byte) bool {
		keys = append(keys, bytes.Clone(key))
		return true
	})
	if err != nil {
		return nil, err
	}
	// Scan shows the current event's own deletions; drop them.
	live := keys[:0]
	for _, k := range keys {
		if v, err := tx.Get(k); err == nil && v != nil {
			live = append(live, k)
		}
	}
	keys = live
	seen := len(keys)
	tx.ScanPending(prefix, store.PrefixEnd(prefix), func(key []byte) {
		if _, found := slices.BinarySearchFunc(keys[:seen], key, bytes.Compare); !found {
			keys = append(keys, bytes.Clone(key))
		}
	})
	slices.SortFunc(keys, bytes.Compare)
	return keys, nil
}

// field is one member of a JSON object.
type field struct {
	name  string
	value json.RawMessage
}

// objectFields returns the members of a JSON object in their order; an
// empty or null document has none.
func objectFields(raw json.RawMessage) ([]field, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if !gjson.ValidBytes(raw) {
		return nil, fmt.Errorf("invalid JSON")
	}
	res := gjson.ParseBytes(raw)
	if !res.IsObject() {
		return nil, fmt.Errorf("want a JSON object")
	}
	var out []field
	res.ForEach(func(k, v gjson.Result) bool {
		out = append(out, field{name: k.String(), value: json.RawMessage(v.Raw)})
		return true
	})
	return out, nil
}

// emailOf reads a JSON string holding an email, normalized; "" otherwise.
func emailOf(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return event.NormalizeEmail(s)
}

// resolveForm handles a form fill that names no lead: it reached the
// partition that indexes its email. The email resolves to its lead (a new
// one when nobody has it), the fill goes to that lead, and the visitor
// that sent it is linked to the lead in its visitor shard.
func (p *Processor) resolveForm(tx *shard.Tx, e *event.Event) error {
	email := event.NormalizeEmail(gjson.GetBytes(e.Traits, "email").String())
	if email == "" {
		return fmt.Errorf("form fill %s without a userId or a valid email", e.MessageID)
	}
	if event.EmailPartition(e.Tenant, email, p.cfg.Partitions) != p.partition {
		tx.EmitEvent(eventlog.LeadsSubject(event.EmailPartition(e.Tenant, email, p.cfg.Partitions)), e)
		return nil
	}
	key := p.keys.email(e.Tenant, email)
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	lead := string(v)
	if lead == "" {
		lead = EmailLeadID(e.Tenant, email)
		tx.Set(key, []byte(lead))
	}
	if e.AnonymousID != "" {
		p.emit(tx, eventlog.EventsSubject(event.Partition(e.Tenant, e.AnonymousID, p.cfg.EventPartitions)), e.Tenant, lead, event.CmdLink, struct{}{}, e.AnonymousID)
	}
	if p.owns(e.Tenant, lead) {
		fwd := *e
		fwd.Enrichment.LeadID = lead
		return p.activity(tx, &fwd, lead, 0)
	}
	p.forward(tx, e, lead)
	return nil
}

// command applies a command from the API or another shard.
func (p *Processor) command(ctx context.Context, tx *shard.Tx, e *event.Event) error {
	p.metrics.commands.WithLabelValues(e.Tenant, e.Event).Inc()
	switch e.Event {
	case cmdIndexSet, cmdIndexUnset:
		var x indexEntry
		if err := json.Unmarshal(e.Properties, &x); err != nil {
			return fmt.Errorf("reading %s: %w", e.Event, err)
		}
		p.applyIndex(tx, e.Tenant, e.Event, x)
		return nil
	}
	lead := e.Enrichment.LeadID
	if lead == "" {
		return fmt.Errorf("%s command: %w", e.Event, ErrNoLead)
	}
	if !p.owns(e.Tenant, lead) {
		return fmt.Errorf("%s command for lead %s reached partition %d", e.Event, lead, p.partition)
	}
	r, err := p.load(tx, e.Tenant, lead)
	if err != nil {
		return err
	}
	if strings.HasPrefix(e.Event, CommandPrefix) {
		return p.campaignCommand(ctx, tx, e, r)
	}
	switch {
	case e.Event == cmdAbsorb:
		return p.absorb(tx, e, r)
	case e.Event == CmdMerge && r != nil && r.MergedInto != "":
		return nil // merged already: a merge is idempotent
	case e.Event == CmdErase && r != nil && r.MergedInto != "":
		// A merged lead's tombstone, erased with its winner.
		p.save(e.Tenant, &record{ID: r.ID, Erased: e.Timestamp.UnixMicro()})
		return nil
	}
	if r == nil || r.tombstone() {
		// The API checked the lead; it was erased or merged since.
		p.metrics.dropped.WithLabelValues(e.Tenant, "no_lead").Inc()
		return nil
	}
	r = r.clone()
	set := p.settings(e.Tenant)
	switch e.Event {
	case CmdPatch:
		var x Patch
		if err := json.Unmarshal(e.Properties, &x); err != nil {
			return fmt.Errorf("reading patch: %w", err)
		}
		p.patch(tx, e, r, x, set)
	case CmdScore:
		var x ScoreChange
		if err := json.Unmarshal(e.Properties, &x); err != nil {
			return fmt.Errorf("reading score change: %w", err)
		}
		r.Score += x.Change
		score := r.Score
		p.addActivity(tx, e.Tenant, r, Activity{Type: ActChangeScore, Time: e.Timestamp.UTC(), Change: x.Change, Score: &score, Source: "api"}, set)
	case CmdListAdd, CmdListRemove:
		var x ListChange
		if err := json.Unmarshal(e.Properties, &x); err != nil {
			return fmt.Errorf("reading list change: %w", err)
		}
		p.changeList(tx, e.Tenant, r, x.List, e.Event == CmdListAdd, e.Timestamp, "api", set)
	case CmdMerge:
		var x MergeInto
		if err := json.Unmarshal(e.Properties, &x); err != nil {
			return fmt.Errorf("reading merge: %w", err)
		}
		return p.merge(tx, e, r, x)
	case CmdErase:
		return p.erase(tx, e, r)
	default:
		return fmt.Errorf("unknown lead command %q", e.Event)
	}
	p.save(e.Tenant, r)
	return nil
}

// patch sets fields and flags; each change is an activity.
func (p *Processor) patch(tx *shard.Tx, e *event.Event, r *record, x Patch, set tenant.Settings) {
	t := e.Timestamp.UnixMicro()
	change := func(name string, old, v json.RawMessage) {
		p.addActivity(tx, e.Tenant, r, Activity{Type: ActChangeField, Time: e.Timestamp.UTC(), Field: name, Old: old, New: v, Source: "api"}, set)
	}
	for _, name := range slices.Sorted(maps.Keys(x.Traits)) {
		v := x.Traits[name]
		if old, changed := r.setTrait(name, v, t); changed {
			change(name, old, v)
			if name == "email" {
				p.setEmail(tx, e.Tenant, r, emailOf(v))
			}
		}
	}
	if x.Email != nil {
		v, _ := json.Marshal(*x.Email)
		if old, changed := r.setTrait("email", v, t); changed {
			change("email", old, v)
		}
		p.setEmail(tx, e.Tenant, r, event.NormalizeEmail(*x.Email))
	}
	flag := func(name string, cur *bool, v *bool) {
		if v == nil || *v == *cur {
			return
		}
		old, _ := json.Marshal(*cur)
		*cur = *v
		nv, _ := json.Marshal(*v)
		change(name, old, nv)
	}
	flag("unsubscribed", &r.Unsubscribed, x.Unsubscribed)
	flag("do_not_contact", &r.DoNotContact, x.DoNotContact)
}

// changeList adds the lead to a list or removes it; a change is an
// activity and updates the list's member index.
func (p *Processor) changeList(tx *shard.Tx, tenantID string, r *record, list string, add bool, at time.Time, source string, set tenant.Settings) {
	if !r.setList(list, add) {
		return
	}
	typ := ActRemoveList
	if add {
		typ = ActAddToList
		tx.Set(p.keys.member(tenantID, list, r.ID), nil)
	} else {
		tx.Delete(p.keys.member(tenantID, list, r.ID))
	}
	p.addActivity(tx, tenantID, r, Activity{Type: typ, Time: at.UTC(), List: list, Source: source}, set)
}
