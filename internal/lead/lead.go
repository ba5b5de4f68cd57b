// Package lead is the lead-shard processor: the profiles and activity
// timelines of known leads, their lists and scores, the email index, and
// the explicit merges and erasures (DESIGN.md §3, §6). Anonymous traffic
// never reaches it.
package lead

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Tenants looks tenants up; *tenant.Cache implements it.
type Tenants interface {
	ByID(id string) (*tenant.Tenant, bool)
}

// Config configures the lead processors.
type Config struct {
	// Partitions is Q, the number of LEADS partitions; EventPartitions is
	// P, to send commands to a visitor's shard.
	Partitions, EventPartitions int
	// Tenants gives each tenant's settings; the defaults apply without.
	Tenants Tenants
	// CacheSize bounds the profiles kept decoded in memory per shard.
	CacheSize int
	// Campaigns, when set, is shown every activity recorded.
	Campaigns Campaigns
}

// Processor is the lead shard of one LEADS partition. It is used by one
// goroutine at a time.
type Processor struct {
	cfg       Config
	partition int
	keys      keys
	metrics   *Metrics
	// cache holds decoded profiles, as committed or as written by the
	// message's applied events; saved are the current event's writes,
	// cached only if it applies.
	cache map[string]*record
	saved []*savedRecord
	sub   int // activity counter within the event
	outN  int // commands emitted by the event, for their message ids
	// at is the current input's receivedAt: the time of what it causes.
	at time.Time
	// pending are the activities the input recorded, for the campaigns;
	// depth is the chain depth of the campaign effect being applied, and
	// campaign its campaign's id.
	pending  []pendingActivity
	depth    int
	campaign string
}

type savedRecord struct {
	key string
	rec *record
}

// ErrNoLead means an event reached a lead shard without a lead id.
var ErrNoLead = errors.New("event without a lead id")

// New returns the processor of LEADS partition q.
func New(cfg Config, q int, m *Metrics) (*Processor, error) {
	if cfg.Partitions < 1 || cfg.EventPartitions < 1 {
		return nil, errors.New("lead: Partitions and EventPartitions must be at least 1")
	}
	if m == nil {
		return nil, errors.New("lead: metrics are required")
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 16 << 10
	}
	return &Processor{cfg: cfg, partition: q, keys: newKeys(q), metrics: m, cache: map[string]*record{}}, nil
}

// Reset drops the cached profiles, and the campaigns' state of the input
// under way; the shard calls it when it (re)starts from its stored
// position.
func (p *Processor) Reset() {
	clear(p.cache)
	if r, ok := p.cfg.Campaigns.(interface{ Reset() }); ok {
		r.Reset()
	}
}

func (p *Processor) settings(id string) tenant.Settings {
	if p.cfg.Tenants != nil {
		if t, ok := p.cfg.Tenants.ByID(id); ok {
			return t.Settings.WithDefaults()
		}
	}
	return tenant.DefaultSettings()
}

// Process applies one input: an activity of a known lead, a form fill to
// resolve by email, or a command.
func (p *Processor) Process(ctx context.Context, tx *shard.Tx, e *event.Event) error {
	p.saved, p.sub, p.outN, p.at = p.saved[:0], 0, 0, e.ReceivedAt
	clear(p.pending)
	p.pending, p.depth, p.campaign = p.pending[:0], 0, ""
	var err error
	switch {
	case e.Type == event.TypeCommand:
		err = p.command(ctx, tx, e)
	case e.Enrichment.LeadID == "" && e.Type == event.TypeForm:
		err = p.resolveForm(tx, e)
	case e.Enrichment.LeadID == "":
		err = ErrNoLead
	default:
		err = p.activity(tx, e, e.Enrichment.LeadID, 0)
	}
	if err == nil && len(p.pending) > 0 {
		err = p.runCampaigns(ctx, tx)
	}
	if err != nil {
		return err
	}
	p.writeSaved(tx)
	if len(p.cache)+len(p.saved) > p.cfg.CacheSize {
		clear(p.cache) // the message's writes are in the overlay; reads fall through to it
	}
	for _, s := range p.saved {
		p.cache[s.key] = s.rec
	}
	return nil
}

// load returns a lead's record, nil when there is none. The record is
// shared with the cache: clone it before changing it.
func (p *Processor) load(tx *shard.Tx, tenantID, lead string) (*record, error) {
	key := p.keys.profile(tenantID, lead)
	for _, s := range p.saved { // this event's own writes first
		if s.key == string(key) {
			return s.rec, nil
		}
	}
	if r, ok := p.cache[string(key)]; ok {
		return r, nil
	}
	v, err := tx.Get(key)
	if err != nil || v == nil {
		return nil, err
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("reading lead %s: %w", lead, err)
	}
	return r, nil
}

// save keeps a record as the input's latest write of it; writeSaved
// encodes it once the input is done, however often it was changed (a
// campaign's steps change one lead several times).
func (p *Processor) save(tenantID string, r *record) {
	key := string(p.keys.profile(tenantID, r.ID))
	for _, s := range p.saved {
		if s.key == key {
			s.rec = r
			return
		}
	}
	p.saved = append(p.saved, &savedRecord{key: key, rec: r})
}

// writeSaved writes the records the input changed; they reach the cache
// when it applies.
func (p *Processor) writeSaved(tx *shard.Tx) {
	for _, s := range p.saved {
		tx.Set([]byte(s.key), s.rec.encode())
	}
}

// owns reports whether a lead lives in this partition.
func (p *Processor) owns(tenantID, lead string) bool {
	return Partition(tenantID, lead, p.cfg.Partitions) == p.partition
}

// maxRedirects bounds a chain of merges followed for one input.
const maxRedirects = 8

// activity records an event on lead's profile and timeline. An input for
// a merged lead goes on to the winner; one for an erased lead is dropped.
func (p *Processor) activity(tx *shard.Tx, e *event.Event, lead string, hops int) error {
	r, err := p.load(tx, e.Tenant, lead)
	if err != nil {
		return err
	}
	switch {
	case r != nil && r.Erased != 0:
		p.metrics.dropped.WithLabelValues(e.Tenant, "erased").Inc()
		return nil
	case r != nil && r.MergedInto != "":
		if hops >= maxRedirects {
			return fmt.Errorf("lead %s: merge chain longer than %d", lead, maxRedirects)
		}
		if p.owns(e.Tenant, r.MergedInto) {
			return p.activity(tx, e, r.MergedInto, hops+1)
		}
		p.forward(tx, e, r.MergedInto)
		return nil
	}
	set := p.settings(e.Tenant)
	if r == nil {
		r = &record{ID: lead}
		p.metrics.created.WithLabelValues(e.Tenant).Inc()
	} else {
		r = r.clone()
	}
	if r.Created == 0 && !e.Enrichment.Backfill {
		// The lead is created by the input that made it known (the
		// back-fill of its anonymous past comes first, with older times).
		r.Created = e.ReceivedAt.UnixMicro()
		p.addActivity(tx, e.Tenant, r, Activity{Type: ActCreateLead, Time: e.Timestamp.UTC(), Visitor: e.AnonymousID, Source: e.Type.String()}, set)
	}
	t := e.Timestamp.UnixMicro()
	r.seen(t)
	r.addVisitor(e.VisitorKey()) // the userId, for server-side calls without a device id
	if e.UserID != "" && r.UserID == "" {
		r.UserID = e.UserID
	}
	if e.Type == event.TypeIdentify || e.Type == event.TypeForm {
		source := "identify"
		if e.Type == event.TypeForm {
			source = "form"
		}
		if err := p.mergeTraits(tx, e, r, source, set); err != nil {
			return err
		}
	}
	if a, ok := activityOf(e); ok {
		p.addActivity(tx, e.Tenant, r, a, set)
	}
	p.save(e.Tenant, r)
	return nil
}

// mergeTraits applies an identify's traits or a form's fields to the
// profile at the event's time, records a change_field activity per
// changed field, and keeps the email index current.
func (p *Processor) mergeTraits(tx *shard.Tx, e *event.Event, r *record, source string, set tenant.Settings) error {
	traits, err := objectFields(e.Traits)
	if err != nil {
		return fmt.Errorf("reading traits: %w", err)
	}
	t := e.Timestamp.UnixMicro()
	for _, f := range traits {
		old, changed := r.setTrait(f.name, f.value, t)
		if !changed {
			continue
		}
		p.addActivity(tx, e.Tenant, r, Activity{
			Type: ActChangeField, Time: e.Timestamp.UTC(), Field: f.name, Old: old, New: f.value, Source: source,
			Backfill: e.Enrichment.Backfill,
		}, set)
		if f.name == "email" {
			p.setEmail(tx, e.Tenant, r, emailOf(f.value))
		}
	}
	return nil
}

// setEmail makes email the lead's lookup email and tells the email index.
func (p *Processor) setEmail(tx *shard.Tx, tenantID string, r *record, email string) {
	if email == r.Email {
		return
	}
	if r.Email != "" {
		p.index(tx, tenantID, cmdIndexUnset, r.Email, r.ID)
	}
	r.Email = email
	if email != "" {
		p.index(tx, tenantID, cmdIndexSet, email, r.ID)
	}
}

// index sends an email index update to the email's partition, or applies
// it here when this partition holds it.
func (p *Processor) index(tx *shard.Tx, tenantID, cmd, email, lead string) {
	q := event.EmailPartition(tenantID, email, p.cfg.Partitions)
	if q == p.partition {
		p.applyIndex(tx, tenantID, cmd, indexEntry{Email: email, Lead: lead})
		return
	}
	p.emit(tx, eventlog.LeadsSubject(q), tenantID, "", cmd, indexEntry{Email: email, Lead: lead}, "")

}

func (p *Processor) applyIndex(tx *shard.Tx, tenantID, cmd string, x indexEntry) {
	key := p.keys.email(tenantID, x.Email)
	switch cmd {
	case cmdIndexSet:
		// The newest claim wins: an email moves to the lead that most
		// recently took it.
		tx.Set(key, []byte(x.Lead))
	case cmdIndexUnset:
		if v, err := tx.Get(key); err == nil && string(v) == x.Lead {
			tx.Delete(key)
		}
	}
}

// emit sends a command to subject, with a message id derived from the
// input's place in the log (a replay emits the same id, which the visitor
// shards' dedup and the lead shards' high-water marks drop).
func (p *Processor) emit(tx *shard.Tx, subject, tenantID, lead, name string, args any, visitor string) {
	id := "lds." + strconv.Itoa(p.partition) + "." + strconv.FormatUint(tx.Seq, 10) + "." + strconv.Itoa(tx.Index) + "." + strconv.Itoa(p.outN)
	p.outN++
	c, err := Command(tenantID, lead, name, args, id, p.at)
	if err != nil {
		panic(err) // the arguments are this package's own types
	}
	c.AnonymousID = visitor
	tx.EmitEvent(subject, &c)
}

// forward sends an input on to another lead's shard, as that lead's.
func (p *Processor) forward(tx *shard.Tx, e *event.Event, lead string) {
	fwd := *e
	fwd.Enrichment.LeadID = lead
	tx.EmitEvent(Subject(e.Tenant, lead, p.cfg.Partitions), &fwd)
}
