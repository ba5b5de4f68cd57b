package visitor

import (
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// identify links the visitor to a lead when the event names one (DESIGN.md
// §6). Any call with a userId links: identify is the usual one, but a
// server SDK's track with a userId names the person too.
//
//   - An anonymous visitor is promoted: its history goes to the lead's shard
//     as a back-fill, in its original order, before this event.
//   - A visitor linked to another lead (a second person on a shared
//     device) is re-linked; the past stays with the first lead, and the two
//     leads are never merged.
//   - An alias whose previousId is another id than this visitor's is
//     forwarded to the partition of that id, where it links that visitor.
func (p *Processor) identify(tx *shard.Tx, e *event.Event, s *state, visitor string, set tenant.Settings, ts *tenantMetrics) error {
	if e.Type == event.TypeAlias && e.PreviousID != "" && e.PreviousID != visitor && e.UserID != "" {
		p.forwardAlias(tx, e, ts)
	}
	if e.UserID == "" {
		return nil
	}
	lead := event.LeadID(e.Tenant, e.UserID)
	switch s.lead {
	case lead:
		return nil
	case "":
		s.lead = lead
		ts.promotions.Inc()
		return p.backfill(tx, e, s, visitor, set, ts)
	default:
		s.lead = lead
		ts.relinks.Inc()
		return nil
	}
}

// forwardAlias sends the alias to the partition that owns its previousId,
// as an alias event keyed by that id. Its messageId is derived from the
// original's, so a replay is dropped by that shard's dedup.
func (p *Processor) forwardAlias(tx *shard.Tx, e *event.Event, ts *tenantMetrics) {
	fwd := event.Event{
		Tenant: e.Tenant, Type: event.TypeAlias, MessageID: e.MessageID + "#previousId",
		AnonymousID: e.PreviousID, UserID: e.UserID, PreviousID: e.PreviousID,
		Timestamp: e.Timestamp, OriginalTimestamp: e.OriginalTimestamp, SentAt: e.SentAt, ReceivedAt: e.ReceivedAt,
		Traits: e.Traits, Context: e.Context,
	}
	tx.EmitEvent(eventlog.EventsSubject(event.Partition(e.Tenant, e.PreviousID, p.cfg.Partitions)), &fwd)
	ts.forwarded.Inc()
}

// remember appends an anonymous event to the visitor's history, dropping
// the oldest entry beyond the tenant's limit. The entry keeps the event
// and its enrichment without context and integrations, which enrichment
// has already read, and without the tenant and anonymousId, which its key
// holds (backfill puts them back).
func (p *Processor) remember(tx *shard.Tx, e *event.Event, s *state, visitor string, set tenant.Settings) {
	h := *e
	h.Context, h.Integrations = nil, nil
	h.Tenant, h.AnonymousID = "", ""
	p.valBuf = event.AppendRecord(p.valBuf[:0], &h)
	tx.Set(p.keys.history(e.Tenant, visitor, s.histNext), p.valBuf)
	s.histNext++
	for s.histNext-s.histFirst > uint64(set.HistoryLimit) {
		tx.Delete(p.keys.history(e.Tenant, visitor, s.histFirst))
		s.histFirst++
	}
}

// backfill hands the visitor's anonymous history within the tenant's
// window to the lead's shard, in order, marked as back-fill, and drops it.
func (p *Processor) backfill(tx *shard.Tx, e *event.Event, s *state, visitor string, set tenant.Settings, ts *tenantMetrics) error {
	if s.histNext == s.histFirst {
		return nil
	}
	subject := p.leadsSubject(e.Tenant, s.lead)
	oldest := e.Timestamp.Add(-set.HistoryWindow.D())
	var h event.Event
	for i := s.histFirst; i < s.histNext; i++ {
		key := p.keys.history(e.Tenant, visitor, i)
		v, err := tx.Get(key)
		if err != nil {
			return err
		}
		tx.Delete(key)
		if v == nil {
			continue
		}
		if err := event.DecodeRecord(v, &h); err != nil {
			p.metrics.stateErrors.WithLabelValues(e.Tenant, "corrupt_history").Inc()
			continue
		}
		if h.Timestamp.Before(oldest) {
			continue
		}
		h.Tenant, h.AnonymousID = e.Tenant, visitor
		h.Enrichment.LeadID, h.Enrichment.Backfill = s.lead, true
		tx.EmitEvent(subject, &h)
		ts.backfilled.Inc()
	}
	s.histFirst = s.histNext
	return nil
}
