package lead

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Campaigns runs trigger campaigns on the activities of leads, in the lead
// shard and in the same batch; *campaign.Engine implements it.
type Campaigns interface {
	// Activity is told of an activity recorded on a lead, after the input
	// that caused it is applied to the profile. The effects it makes
	// through h are recorded as activities in turn.
	Activity(ctx context.Context, tx *shard.Tx, h *Handle, a *Activity) error
	// Command applies a campaign command for a lead (a timer that fired, a
	// request); it reports false for a command that is not its own.
	Command(ctx context.Context, tx *shard.Tx, h *Handle, e *event.Event) (bool, error)
	// Forget drops a lead's campaign state: the lead was erased or merged
	// into another.
	Forget(tx *shard.Tx, tenantID, lead string) error
}

// CommandPrefix starts the names of the commands that Campaigns handle.
const CommandPrefix = "campaign_"

// maxChain bounds how deep activities made by campaigns may trigger
// further campaigns within one input (a campaign that changes the score
// on "score changed" would otherwise never end).
const maxChain = 8

// pendingActivity is an activity waiting to be shown to the campaigns.
type pendingActivity struct {
	tenant, lead string
	a            Activity
	depth        int
}

// Handle is what the campaigns see of one lead while an input is
// processed: its profile, and the changes they may make to it. It is valid
// during the call that gave it.
type Handle struct {
	p      *Processor
	tx     *shard.Tx
	tenant string
	id     string
	depth  int
}

// Tenant returns the lead's tenant.
func (h *Handle) Tenant() string { return h.tenant }

// ID returns the lead's id.
func (h *Handle) ID() string { return h.id }

// Depth is how many campaign effects led to the activity being handled.
func (h *Handle) Depth() int { return h.depth }

// At is the time of the input being processed: the time of what it causes.
func (h *Handle) At() time.Time { return h.p.at }

// Settings returns the tenant's settings.
func (h *Handle) Settings() tenant.Settings { return h.p.settings(h.tenant) }

// Lead returns the lead's profile as it stands, nil if the lead is gone
// (erased, or merged into another).
func (h *Handle) Lead() (*Lead, error) {
	r, err := h.p.load(h.tx, h.tenant, h.id)
	if err != nil || r == nil || r.tombstone() {
		return nil, err
	}
	return r.view(), nil
}

// Waiting returns the lead's count of runs waiting for an activity.
func (h *Handle) Waiting() int {
	r, err := h.p.load(h.tx, h.tenant, h.id)
	if err != nil || r == nil {
		return 0
	}
	return r.Waiting
}

// change applies fn to a copy of the lead's record and saves it; it does
// nothing for a lead that is gone.
func (h *Handle) change(fn func(r *record, set tenant.Settings)) error {
	r, err := h.p.load(h.tx, h.tenant, h.id)
	if err != nil || r == nil || r.tombstone() {
		return err
	}
	r = r.clone()
	h.p.depth = h.depth + 1
	fn(r, h.p.settings(h.tenant))
	h.p.depth = 0
	h.p.save(h.tenant, r)
	return nil
}

// AddWaiting changes the count of the lead's runs waiting for an activity.
func (h *Handle) AddWaiting(d int) error {
	return h.change(func(r *record, _ tenant.Settings) { r.Waiting = max(0, r.Waiting+d) })
}

// ChangeScore adds change to the score, recorded as a change_score
// activity from source (a campaign's id).
func (h *Handle) ChangeScore(change int64, source string) error {
	return h.change(func(r *record, set tenant.Settings) {
		r.Score += change
		score := r.Score
		h.p.addActivity(h.tx, h.tenant, r, Activity{Type: ActChangeScore, Time: h.p.at.UTC(), Change: change, Score: &score, Source: "campaign", CampaignID: source}, set)
	})
}

// SetField sets a profile field (null removes it) at the input's time.
// The flags unsubscribed and do_not_contact are fields too.
func (h *Handle) SetField(name string, v json.RawMessage, source string) error {
	return h.change(func(r *record, set tenant.Settings) {
		record := func(old json.RawMessage) {
			h.p.addActivity(h.tx, h.tenant, r, Activity{Type: ActChangeField, Time: h.p.at.UTC(), Field: name, Old: old, New: v, Source: "campaign", CampaignID: source}, set)
		}
		switch name {
		case "unsubscribed", "do_not_contact":
			var b bool
			if json.Unmarshal(v, &b) != nil {
				return
			}
			flag := &r.Unsubscribed
			if name == "do_not_contact" {
				flag = &r.DoNotContact
			}
			if *flag != b {
				old, _ := json.Marshal(*flag)
				*flag = b
				record(old)
			}
			return
		}
		if old, changed := r.setTrait(name, v, h.p.at.UnixMicro()); changed {
			record(old)
			if name == "email" {
				h.p.setEmail(h.tx, h.tenant, r, emailOf(v))
			}
		}
	})
}

// ChangeList adds the lead to a list or removes it.
func (h *Handle) ChangeList(list string, add bool, source string) error {
	return h.change(func(r *record, set tenant.Settings) {
		h.p.campaign = source
		h.p.changeList(h.tx, h.tenant, r, list, add, h.p.at, "campaign", set)
		h.p.campaign = ""
	})
}

// Record adds an activity to the lead's timeline at the input's time: a
// campaign step, an interesting moment.
func (h *Handle) Record(a Activity) error {
	return h.change(func(r *record, set tenant.Settings) {
		a.Time = h.p.at.UTC()
		h.p.addActivity(h.tx, h.tenant, r, a, set)
	})
}

// Activities calls fn with the lead's activities whose time is in
// [from, to], oldest first: the committed ones and those written by the
// log message so far. fn returns false to stop.
func (h *Handle) Activities(from, to time.Time, fn func(a *Activity) bool) error {
	prefix := h.p.keys.activities(h.tenant, h.id)
	lower := appendActivitySuffix(bytes.Clone(prefix), from, 0, 0, 0)
	upper := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(max(to.UnixMicro()+1, 0)))
	var keys [][]byte
	if err := h.tx.Scan(lower, upper, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return true
	}); err != nil {
		return err
	}
	h.tx.ScanPending(lower, upper, func(k []byte) { keys = append(keys, bytes.Clone(k)) })
	slices.SortFunc(keys, bytes.Compare)
	keys = slices.CompactFunc(keys, bytes.Equal)
	for _, k := range keys {
		v, err := h.tx.Get(k)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		var a Activity
		if json.Unmarshal(v, &a) != nil {
			continue
		}
		a.ID = activityID(k[len(prefix):])
		if !fn(&a) {
			return nil
		}
	}
	return nil
}

// runCampaigns shows the activities the input recorded to the campaigns,
// and those their effects recorded in turn, in order.
func (p *Processor) runCampaigns(ctx context.Context, tx *shard.Tx) error {
	for i := 0; i < len(p.pending); i++ {
		pa := &p.pending[i]
		if pa.depth > maxChain {
			p.metrics.dropped.WithLabelValues(pa.tenant, "campaign_chain").Inc()
			continue
		}
		h := &Handle{p: p, tx: tx, tenant: pa.tenant, id: pa.lead, depth: pa.depth}
		if err := p.cfg.Campaigns.Activity(ctx, tx, h, &pa.a); err != nil {
			return err
		}
	}
	return nil
}

// campaignCommand hands a campaign command to the campaigns.
func (p *Processor) campaignCommand(ctx context.Context, tx *shard.Tx, e *event.Event, r *record) error {
	if p.cfg.Campaigns == nil || r == nil || r.tombstone() {
		p.metrics.dropped.WithLabelValues(e.Tenant, "no_lead").Inc()
		return nil
	}
	h := &Handle{p: p, tx: tx, tenant: e.Tenant, id: r.ID}
	ok, err := p.cfg.Campaigns.Command(ctx, tx, h, e)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("unknown lead command %q", e.Event)
	}
	return nil
}
