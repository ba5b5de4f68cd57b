package visitor

import (
	"context"

	"github.com/cespare/xxhash/v2"
	"github.com/gobwas/glob"
	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// countReport adds e to the web-report rollups. It runs last in Process,
// once nothing can fail any more but the rollups' own reads.
func (p *Processor) countReport(tx *shard.Tx, e *event.Event, s *state, d sessionDelta, inSession bool) error {
	x := &e.Enrichment
	h := &p.hit
	*h = report.Hit{
		Time: e.Timestamp.Unix(), Received: e.ReceivedAt.Unix(), Bot: x.Bot,
		Pageview:   e.Type == event.TypePage || e.Type == event.TypeScreen,
		NewSession: x.NewSession, Bounce: d.bounce, DurationMs: d.durationMs,
		ExitFrom: d.exitFrom, Exit: d.exit, Goals: h.Goals[:0],
		SessionBounce: d.sessionBounce, SessionMs: d.sessionMs,
	}
	if d.entryKnown {
		h.Known |= 1 << report.DimEntryPage
	}
	if d.sourceKnown {
		h.Known |= 1<<report.DimReferrer | 1<<report.DimChannel | 1<<report.DimUTMSource |
			1<<report.DimUTMMedium | 1<<report.DimUTMCampaign | 1<<report.DimCountry
	}
	if !h.Bot && !h.Pageview && e.Type != event.TypeTrack {
		return p.rollup.Add(tx, e.Tenant, h) // moves the clock only
	}
	h.Visitor = xxhash.Sum64String(e.VisitorKey())
	if e.Type == event.TypeTrack {
		h.Event = e.Event
	}
	v := &h.Values
	v[report.DimPage] = x.Path
	v[report.DimDevice], v[report.DimBrowser], v[report.DimOS] = x.Device, x.Browser, x.OS
	if inSession {
		v[report.DimEntryPage] = s.landing
		v[report.DimReferrer], v[report.DimChannel] = s.src.referrer, s.src.channel
		v[report.DimUTMSource], v[report.DimUTMMedium], v[report.DimUTMCampaign] = s.src.utmSource, s.src.utmMedium, s.src.utmCampaign
		v[report.DimCountry] = s.src.country
	} else {
		// A late event outside any session counts under its own values.
		v[report.DimReferrer], v[report.DimChannel] = x.ReferrerDomain, x.Channel
		v[report.DimUTMSource], v[report.DimUTMMedium], v[report.DimUTMCampaign] = x.UTMSource, x.UTMMedium, x.UTMCampaign
		v[report.DimCountry] = x.Country
	}
	if !h.Bot {
		for _, g := range p.reportOf(e.Tenant).goals {
			if g.match(e) {
				h.Goals = append(h.Goals, g.name)
			}
		}
	}
	return p.rollup.Add(tx, e.Tenant, h)
}

// Flush writes the rollups the log message changed; the shard calls it
// before the commit.
//
// The rollups key their records by the flush's sequence, which must be
// unique and, per tenant, increasing: a message's flush uses 2×Seq, the
// flush of a tenant's events replayed from PARKED (which carry the Seq of
// the message they were parked from, whose other tenants flushed then)
// 2×Seq+1.
func (p *Processor) Flush(_ context.Context, tx *shard.Tx) error {
	if tx.Replayed {
		return p.rollup.FlushReplayed(tx, tx.Seq*2+1)
	}
	return p.rollup.Flush(tx, tx.Seq*2)
}

// policy is a tenant's rollup policy, from its settings.
func (p *Processor) policy(id string) report.Policy { return p.reportOf(id).policy }

// PolicyOf returns a tenant's rollup policy from its settings, for the
// queries.
func PolicyOf(set tenant.Settings) report.Policy {
	set = set.WithDefaults()
	pol := report.DefaultPolicy()
	pol.Location = set.Location()
	pol.MinuteRetention = set.ReportMinuteRetention.D()
	pol.HourRetention = set.ReportHourRetention.D()
	pol.Retention = set.ReportRetention.D()
	return pol
}

// goal is a tenant's goal, compiled.
type goal struct {
	name            string
	page            *glob.Pattern
	event           string
	property, value string
}

func (g *goal) match(e *event.Event) bool {
	switch {
	case g.page != nil:
		if e.Type != event.TypePage && e.Type != event.TypeScreen || !g.page.Match(e.Enrichment.Path) {
			return false
		}
	case e.Type != event.TypeTrack || e.Event != g.event:
		return false
	}
	return g.property == "" || gjson.GetBytes(e.Properties, gjson.Escape(g.property)).String() == g.value
}

// tenantReport is what the rollups need of a tenant, derived once per
// version of its record: the goals compiled and the policy (whose time
// zone is costly to load).
type tenantReport struct {
	from   *tenant.Tenant // the tenant record it was derived from; nil: defaults
	goals  []goal
	policy report.Policy
}

// reportOf returns a tenant's goals and policy, deriving them again when
// the tenant changed.
func (p *Processor) reportOf(id string) *tenantReport {
	var t *tenant.Tenant
	if p.cfg.Tenants != nil {
		t, _ = p.cfg.Tenants.ByID(id)
	}
	if c, ok := p.reportCache[id]; ok && c.from == t {
		return c
	}
	c := &tenantReport{from: t, policy: PolicyOf(tenant.Settings{})}
	if t != nil {
		c.policy = PolicyOf(t.Settings)
		for _, g := range t.Settings.Goals {
			cg := goal{name: g.Name, event: g.Event, property: g.Property, value: g.Value}
			if g.Page != "" {
				pat, err := g.CompilePage()
				if err != nil {
					continue // refused by Validate; never stored
				}
				cg.page = pat
			}
			c.goals = append(c.goals, cg)
		}
	}
	p.reportCache[id] = c
	return c
}
