package lead

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// absorbPart bounds the activities carried by one absorb message, so a
// message stays far below the log's size limit.
const absorbPart = 200

// auditRecord is what the audit log keeps of a merge or an erasure.
type auditRecord struct {
	Action string `json:"action"`
	Lead   string `json:"lead"`
	Winner string `json:"winner,omitempty"`
	By     string `json:"by,omitempty"`
	Time   int64  `json:"time"`
}

func (p *Processor) audit(tx *shard.Tx, e *event.Event, a auditRecord) {
	a.Time = e.Timestamp.UnixMicro()
	b, _ := json.Marshal(a)
	tx.Set(p.keys.audit(e.Tenant, tx.Seq, tx.Index), b)
}

// timeline returns the lead's stored activities in time order: committed
// ones and those the message wrote so far.
func (p *Processor) timeline(tx *shard.Tx, tenantID, lead string) ([]Activity, error) {
	keys, err := p.activityKeys(tx, p.keys.activities(tenantID, lead))
	if err != nil {
		return nil, err
	}
	acts := make([]Activity, 0, len(keys))
	for _, key := range keys {
		v, err := tx.Get(key)
		if err != nil {
			return nil, err
		}
		var a Activity
		if err := json.Unmarshal(v, &a); err != nil {
			continue // an unreadable entry is not carried over
		}
		acts = append(acts, a)
	}
	return acts, nil
}

// merge folds the loser (r, this partition's) into the winner: its
// profile and timeline travel to the winner's shard in absorb messages,
// and it becomes a tombstone that sends its later inputs on to the winner.
func (p *Processor) merge(tx *shard.Tx, e *event.Event, r *record, x MergeInto) error {
	if x.Winner == "" || x.Winner == r.ID {
		p.metrics.dropped.WithLabelValues(e.Tenant, "merge_invalid").Inc()
		return nil
	}
	acts, err := p.timeline(tx, e.Tenant, r.ID)
	if err != nil {
		return err
	}
	subject := Subject(e.Tenant, x.Winner, p.cfg.Partitions)
	profile := r.clone()
	profile.Activities, profile.Oldest = 0, 0
	for i := 0; i == 0 || i < len(acts); i += absorbPart {
		part := absorb{Loser: r.ID, Activities: acts[i:min(i+absorbPart, len(acts))], Final: i+absorbPart >= len(acts)}
		if i == 0 {
			part.Profile = profile
		}
		c, err := Command(e.Tenant, x.Winner, cmdAbsorb, part, e.MessageID+"#absorb"+fmt.Sprint(i), e.Timestamp)
		if err != nil {
			return err
		}
		tx.Emit(shard.Output{Subject: subject, Data: event.EncodeBatch([]event.Event{c})})
	}
	// The loser's email finds the winner from now on.
	if err := p.clear(tx, e.Tenant, r, cmdIndexSet, x.Winner); err != nil {
		return err
	}
	p.audit(tx, e, auditRecord{Action: "merge", Lead: r.ID, Winner: x.Winner, By: x.By})
	p.save(e.Tenant, &record{ID: r.ID, UserID: r.UserID, MergedInto: x.Winner})
	return nil
}

// revives reports whether the tombstone r takes an absorb from loser
// instead of passing it on. Two merges in opposite directions applied at
// once (the API serializes merges, so only concurrent API nodes can do
// that) leave two tombstones pointing at each other: the one with the
// smaller id comes back as the winner, takes both timelines, and the
// other keeps pointing at it.
func (p *Processor) revives(r *record, loser string) bool {
	if r.MergedInto != loser && loser != r.ID {
		return false
	}
	return r.ID < r.MergedInto
}

// absorb takes one part of a merged lead into the winner r.
func (p *Processor) absorb(tx *shard.Tx, e *event.Event, r *record) error {
	var x absorb
	if err := json.Unmarshal(e.Properties, &x); err != nil {
		return fmt.Errorf("reading absorb: %w", err)
	}
	switch {
	case r == nil || r.Erased != 0:
		p.metrics.dropped.WithLabelValues(e.Tenant, "merge_winner_gone").Inc()
		return nil
	case r.MergedInto != "" && !p.revives(r, x.Loser):
		p.forward(tx, e, r.MergedInto) // the winner was itself merged meanwhile
		return nil
	}
	r = r.clone()
	r.MergedInto = ""
	if x.Loser == r.ID {
		// Its own timeline coming back after crossed merges (see revives).
		x.Profile = nil
	}
	set := p.settings(e.Tenant)
	if l := x.Profile; l != nil {
		for _, name := range slices.Sorted(maps.Keys(l.Traits)) {
			tr := l.Traits[name]
			if old, changed := r.setTrait(name, tr.V, tr.T); changed {
				p.addActivity(tx, e.Tenant, r, Activity{Type: ActChangeField, Time: e.Timestamp.UTC(), Field: name, Old: old, New: tr.V, Source: "merge", Lead: x.Loser}, set)
			}
		}
		for _, list := range l.Lists {
			p.changeList(tx, e.Tenant, r, list, true, e.Timestamp, "merge", set)
		}
		for _, v := range l.Visitors {
			r.addVisitor(v)
		}
		if l.FirstSeen != 0 {
			r.seen(l.FirstSeen)
		}
		if l.LastSeen != 0 {
			r.seen(l.LastSeen)
		}
		switch {
		case r.Email == "" && l.Email != "":
			p.setEmail(tx, e.Tenant, r, l.Email)
		case l.Email != "" && l.Email != r.Email && !slices.Contains(r.OtherEmails, l.Email):
			// The merge pointed the loser's email here: erasure must find it.
			r.OtherEmails = append(r.OtherEmails, l.Email)
		}
		r.OtherEmails = append(r.OtherEmails, l.OtherEmails...)
		r.Score += l.Score
		if !slices.Contains(r.MergedFrom, x.Loser) {
			r.MergedFrom = append(r.MergedFrom, x.Loser)
		}
		r.Unsubscribed = r.Unsubscribed || l.Unsubscribed
		r.DoNotContact = r.DoNotContact || l.DoNotContact
	}
	for _, a := range x.Activities {
		p.addActivity(tx, e.Tenant, r, a, set)
	}
	if x.Final {
		p.addActivity(tx, e.Tenant, r, Activity{Type: ActMergeLead, Time: e.Timestamp.UTC(), Lead: x.Loser, Source: "api"}, set)
	}
	p.save(e.Tenant, r)
	return nil
}

// erase removes everything about the lead: profile, timeline, list
// memberships, its email in the index, and the state and history of every
// device linked to it (in their visitor shards). A tombstone without
// personal data stays, so later inputs for the lead are dropped.
func (p *Processor) erase(tx *shard.Tx, e *event.Event, r *record) error {
	if err := p.clear(tx, e.Tenant, r, cmdIndexUnset, r.ID); err != nil {
		return err
	}
	for _, email := range r.OtherEmails {
		p.index(tx, e.Tenant, cmdIndexUnset, email, r.ID)
	}
	for _, loser := range r.MergedFrom {
		// The merged leads' tombstones keep their userId: erase them too.
		p.emit(tx, Subject(e.Tenant, loser, p.cfg.Partitions), e.Tenant, loser, CmdErase, struct{}{}, "")
	}
	for _, v := range r.Visitors {
		subject := eventlog.EventsSubject(event.Partition(e.Tenant, v, p.cfg.EventPartitions))
		p.emit(tx, subject, e.Tenant, r.ID, event.CmdEraseVisitor, struct{}{}, v)
	}
	p.audit(tx, e, auditRecord{Action: "erase", Lead: r.ID})
	p.save(e.Tenant, &record{ID: r.ID, Erased: e.Timestamp.UnixMicro()})
	return nil
}

// clear deletes a lead's timeline and list memberships, and sends its
// email's index entry the command (to point it elsewhere or drop it).
func (p *Processor) clear(tx *shard.Tx, tenantID string, r *record, indexCmd, indexLead string) error {
	if p.cfg.Campaigns != nil {
		if err := p.cfg.Campaigns.Forget(tx, tenantID, r.ID); err != nil {
			return err
		}
	}
	prefix := p.keys.activities(tenantID, r.ID)
	tx.DeleteRange(prefix, store.PrefixEnd(prefix))
	for _, l := range r.Lists {
		tx.Delete(p.keys.member(tenantID, l, r.ID))
	}
	if r.Email != "" {
		p.index(tx, tenantID, indexCmd, r.Email, indexLead)
	}
	return nil
}
