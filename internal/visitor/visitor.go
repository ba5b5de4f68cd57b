package visitor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/enrich"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Tenants looks tenants up; *tenant.Cache implements it.
type Tenants interface {
	ByID(id string) (*tenant.Tenant, bool)
}

// Config configures the visitor processor.
type Config struct {
	// DedupWindow is how long a messageId is remembered; at least 24 h.
	DedupWindow time.Duration
	// Partitions is P, the number of EVENTS partitions (to forward an
	// alias to its previousId's partition); LeadPartitions is Q.
	Partitions, LeadPartitions int
	// Tenants gives each tenant's settings; when nil, or for an unknown
	// tenant, the defaults apply.
	Tenants Tenants
	// UACacheSize bounds the parsed user agents kept per shard.
	UACacheSize int
	// StateCacheSize bounds the visitor records kept in memory per shard.
	StateCacheSize int
}

// DefaultConfig returns the defaults for one partition of each stream.
func DefaultConfig() Config {
	return Config{DedupWindow: 24 * time.Hour, Partitions: 1, LeadPartitions: 1, UACacheSize: 4096, StateCacheSize: 32 << 10}
}

// Processor is the visitor shard of one partition. It is used by one
// goroutine at a time.
type Processor struct {
	cfg       Config
	partition int
	keys      keys
	metrics   *Metrics
	ua        *enrich.UAParser
	dedupDays int64 // day buckets checked: the window rounded up, plus today
	newestDay int64 // newest dedup day known to be stored
	sweptDay  int64 // day the expiry sweep is known to have finished
	tenants   map[string]*tenantMetrics
	// filters are the dedup day buckets' Bloom filters; filterSize the
	// capacity to rebuild one with after it filled up.
	filters    map[int64]*keyFilter
	filterSize map[int64]uint
	// visitors filters the keys of visitor states ("<tenant>/<visitor>").
	visitors *keyFilter
	states   *stateCache
	keyBuf   []byte
	valBuf   []byte
	idBuf    []byte
	// rollup counts the web reports; hit is its per-event scratch.
	rollup      *report.Rollup
	hit         report.Hit
	reportCache map[string]*tenantReport
}

// New returns the processor of partition p.
func New(cfg Config, p int, m *Metrics) (*Processor, error) {
	if cfg.DedupWindow < 24*time.Hour {
		return nil, errors.New("visitor: the dedup window must be at least 24h")
	}
	if cfg.Partitions < 1 || cfg.LeadPartitions < 1 {
		return nil, errors.New("visitor: Partitions and LeadPartitions must be at least 1")
	}
	if m == nil {
		return nil, errors.New("visitor: metrics are required")
	}
	days := int64((cfg.DedupWindow + 24*time.Hour - 1) / (24 * time.Hour))
	proc := &Processor{
		cfg: cfg, partition: p, keys: newKeys(p), metrics: m, ua: enrich.NewUAParser(cfg.UACacheSize),
		dedupDays: days + 1, tenants: map[string]*tenantMetrics{},
		filters: map[int64]*keyFilter{}, filterSize: map[int64]uint{}, states: newStateCache(cfg.StateCacheSize),
		reportCache: map[string]*tenantReport{},
	}
	proc.rollup = report.NewRollup(p, proc.policy)
	return proc, nil
}

// settings returns the tenant's settings with the defaults filled in.
func (p *Processor) settings(id string) tenant.Settings {
	if p.cfg.Tenants != nil {
		if t, ok := p.cfg.Tenants.ByID(id); ok {
			return t.Settings.WithDefaults()
		}
	}
	return tenant.DefaultSettings()
}

// tenantMetrics returns a tenant's counters, looked up once per shard.
func (p *Processor) tenantMetrics(id string) *tenantMetrics {
	tm, ok := p.tenants[id]
	if !ok {
		tm = p.metrics.forTenant(id)
		p.tenants[id] = tm
	}
	return tm
}

// Process applies one event: dedup, enrich, identity, session, anonymous
// history or hand-off to the lead's shard, expiry. Blocked ids were
// refused by the collector, with the tenant's list, before the event was
// stored.
func (p *Processor) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	ts := p.tenantMetrics(e.Tenant)
	set := p.settings(e.Tenant)
	day := e.ReceivedAt.Unix() / 86400
	dup, err := p.duplicate(tx, e, day)
	if err != nil {
		return err
	}
	if dup {
		ts.duplicates.Inc()
		return nil
	}
	if e.Type == event.TypeCommand {
		return p.command(tx, e, set, ts)
	}
	p.enrichEvent(e)
	if e.Enrichment.Bot {
		ts.bots.Inc()
	}

	visitor := e.VisitorKey()
	stKey, v, s, err := p.state(tx, e.Tenant, visitor)
	if err != nil {
		return err
	}
	prevDay := s.lastSeen / 86400
	if s.lead == erasedLead {
		// An erased person's device: nothing of it is kept or counted.
		ts.suppressed.Inc()
		p.states.put(string(stKey), p.saveState(tx, e, stKey, v != nil, prevDay, &s))
		return nil
	}

	if err := p.identify(tx, e, &s, visitor, set, ts); err != nil {
		return err
	}
	delta, inSession := sessionize(&s, e, e.Tenant, visitor, campaignHash(e.Enrichment.UTMCampaign), sessionRules{
		timeout: set.SessionTimeout.D().Milliseconds(), maxLength: set.SessionMaxLength.D().Milliseconds(),
		splitOnCampaign: set.SplitSessionOnCampaign,
	})
	if e.Enrichment.NewSession {
		ts.sessions.Inc()
	}

	switch {
	case s.lead != "":
		e.Enrichment.LeadID = s.lead
		tx.EmitEvent(p.leadsSubject(e.Tenant, s.lead), e)
		ts.leadEvents.Inc()
	case e.Type == event.TypeForm:
		// A form fill by email from an anonymous visitor: the email's
		// lead shard resolves the lead and links this visitor back.
		email := event.NormalizeEmail(gjson.GetBytes(e.Traits, "email").String())
		if email == "" {
			return errFormIdentity
		}
		tx.EmitEvent(eventlog.LeadsSubject(event.EmailPartition(e.Tenant, email, p.cfg.LeadPartitions)), e)
		ts.leadEvents.Inc()
	case !e.Enrichment.Bot && (e.Type == event.TypePage || e.Type == event.TypeScreen || e.Type == event.TypeTrack):
		p.remember(tx, e, &s, visitor, set)
	}
	enc := p.saveState(tx, e, stKey, v != nil, prevDay, &s)

	if err := p.count(tx, e.Tenant); err != nil {
		return err
	}
	if err := p.sweep(tx, day); err != nil {
		return err
	}
	if err := p.countReport(tx, e, &s, delta, inSession); err != nil {
		return err
	}
	p.states.put(string(stKey), enc)
	return nil
}

// state reads a visitor's record: its key, the stored bytes (nil for a
// new visitor) and the decoded state.
func (p *Processor) state(tx *shard.Tx, tenantID, visitor string) ([]byte, []byte, state, error) {
	p.keyBuf = p.keys.state(p.keyBuf, tenantID, visitor)
	stKey := p.keyBuf
	var s state
	v, err := p.loadState(tx, stKey)
	if err != nil {
		return nil, nil, s, err
	}
	if v != nil {
		if err := decodeState(v, &s); err != nil {
			// Unreadable state must not block the visitor forever: start
			// afresh (its history, if any, is orphaned until retention).
			p.metrics.stateErrors.WithLabelValues(tenantID, "corrupt_state_reset").Inc()
			s = state{}
		}
	}
	return stKey, v, s, nil
}

// saveState writes a visitor's record after event e and keeps the expiry
// index, one entry per visitor under the day it was last seen. It returns
// the encoded record.
func (p *Processor) saveState(tx *shard.Tx, e *event.Event, stKey []byte, existed bool, prevDay int64, s *state) []byte {
	visitor := e.VisitorKey()
	if recv := e.ReceivedAt.Unix(); recv > s.lastSeen {
		s.lastSeen = recv
	}
	if newDay := s.lastSeen / 86400; !existed || newDay != prevDay {
		if existed {
			tx.Delete(p.keys.expiry(e.Tenant, prevDay, visitor))
		}
		tx.Set(p.keys.expiry(e.Tenant, newDay, visitor), nil)
	}
	enc := appendState(nil, s)
	tx.Set(stKey, enc)
	return enc
}

// Reset drops what the processor caches of its state; the shard calls it
// when it (re)starts reading from its stored position.
func (p *Processor) Reset() {
	p.states.reset()
	p.rollup.Reset()
}

// loadState reads a visitor's record, skipping the read when the filter
// knows the visitor is new. A new visitor is added to the filter.
func (p *Processor) loadState(tx *shard.Tx, key []byte) ([]byte, error) {
	if p.visitors == nil {
		f, err := newKeyFilter(tx, []byte(p.keys.prefix+"s/"), 0)
		if err != nil {
			return nil, err
		}
		p.visitors = f
	}
	if v, ok := p.states.get(key); ok {
		return v, nil
	}
	suffix := key[len(p.keys.prefix)+2:]
	if p.visitors.mayHave(suffix) {
		return tx.Get(key)
	}
	if p.visitors.add(suffix) {
		p.visitors = nil // full: rebuilt larger from the store on next use
	}
	return nil, nil
}

// count adds one to the tenant's processed events in this partition.
func (p *Processor) count(tx *shard.Tx, tenant string) error {
	key := p.keys.processed(tenant)
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	n, _ := strconv.ParseUint(string(v), 10, 64)
	tx.Set(key, strconv.AppendUint(p.valBuf[:0], n+1, 10))
	return nil
}

func (p *Processor) leadsSubject(tenant, lead string) string {
	return eventlog.LeadsSubject(event.Partition(tenant, lead, p.cfg.LeadPartitions))
}

// ProcessedKey is where partition p counts a tenant's processed events.
func ProcessedKey(p int, tenant string) []byte { return newKeys(p).processed(tenant) }

// StateKey is where partition p keeps a visitor's state.
func StateKey(p int, tenant, visitor string) []byte { return newKeys(p).state(nil, tenant, visitor) }
