package visitor

import (
	"errors"
	"fmt"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// erasedLead marks the state of an erased person's device: its later
// events are dropped. No userId can produce it (lead ids start "ld_").
const erasedLead = "\x00erased"

// errFormIdentity: a form fill reached the shard without a userId or an
// email (the collector refuses those).
var errFormIdentity = errors.New("form fill without a userId or a valid email")

// command applies a lead shard's instruction about a visitor (DESIGN.md
// §6): link it to the lead its form fill resolved to, or erase it.
func (p *Processor) command(tx *shard.Tx, e *event.Event, set tenant.Settings, ts *tenantMetrics) error {
	visitor := e.AnonymousID
	if visitor == "" {
		return fmt.Errorf("%s command without a visitor", e.Event)
	}
	stKey, v, s, err := p.state(tx, e.Tenant, visitor)
	if err != nil {
		return err
	}
	prevDay := s.lastSeen / 86400
	switch e.Event {
	case event.CmdLink:
		if s.lead != "" || e.Enrichment.LeadID == "" {
			return nil // linked meanwhile (an identify wins), or erased
		}
		s.lead = e.Enrichment.LeadID
		ts.promotions.Inc()
		if err := p.backfill(tx, e, &s, visitor, set, ts); err != nil {
			return err
		}
	case event.CmdEraseVisitor:
		for i := s.histFirst; i < s.histNext; i++ {
			tx.Delete(p.keys.history(e.Tenant, visitor, i))
		}
		s = state{lastSeen: s.lastSeen, lead: erasedLead}
		ts.erased.Inc()
	default:
		return fmt.Errorf("unknown visitor command %q", e.Event)
	}
	// The command's receivedAt is the lead shard's input time: it keeps
	// the record alive like an event of the visitor would.
	c := *e
	c.AnonymousID = visitor
	p.states.put(string(stKey), p.saveState(tx, &c, stKey, v != nil, prevDay, &s))
	return nil
}
