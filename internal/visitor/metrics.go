package visitor

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the visitor processors' instruments, shared by all shards.
type Metrics struct {
	duplicates  *prometheus.CounterVec // tenant
	sessions    *prometheus.CounterVec // tenant
	bots        *prometheus.CounterVec // tenant
	promotions  *prometheus.CounterVec // tenant
	relinks     *prometheus.CounterVec // tenant
	leadEvents  *prometheus.CounterVec // tenant
	backfilled  *prometheus.CounterVec // tenant
	forwarded   *prometheus.CounterVec // tenant
	expired     *prometheus.CounterVec // tenant
	erased      *prometheus.CounterVec // tenant
	suppressed  *prometheus.CounterVec // tenant
	stateErrors *prometheus.CounterVec // tenant, reason
}

// NewMetrics registers the instruments on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "contrail_visitor_" + name, Help: help}, []string{"tenant"})
		reg.MustRegister(v)
		return v
	}
	m := &Metrics{
		duplicates: c("duplicates_total", "Events dropped as duplicates of an earlier messageId, by tenant."),
		sessions:   c("sessions_total", "Sessions started, by tenant."),
		bots:       c("bot_events_total", "Events flagged as bot traffic, by tenant."),
		promotions: c("promotions_total", "Anonymous visitors promoted to a known lead, by tenant."),
		relinks:    c("relinks_total", "Visitors linked to another lead than before (a second userId on a device), by tenant."),
		leadEvents: c("lead_events_total", "Events of known leads handed to the LEADS stream (live, not back-fill), by tenant."),
		backfilled: c("backfilled_events_total", "Anonymous history events handed to LEADS on promotion, by tenant."),
		forwarded:  c("forwarded_aliases_total", "Alias calls forwarded to the partition of their previousId, by tenant."),
		expired:    c("expired_visitors_total", "Visitor states dropped after the tenant's retention without activity, by tenant."),
		erased:     c("erased_visitors_total", "Visitors erased with their lead (state and history dropped, later events suppressed), by tenant."),
		suppressed: c("suppressed_events_total", "Events of erased visitors dropped, by tenant."),
	}
	m.stateErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_visitor_state_errors_total", Help: "Unreadable visitor records (reset) or history entries (skipped), by tenant and reason.",
	}, []string{"tenant", "reason"})
	reg.MustRegister(m.stateErrors)
	return m
}

// Duplicates returns the duplicates counter of a tenant (for tests and status).
func (m *Metrics) Duplicates(tenant string) prometheus.Counter {
	return m.duplicates.WithLabelValues(tenant)
}

// tenantMetrics are one tenant's counters, looked up once per shard.
type tenantMetrics struct {
	duplicates, sessions, bots, promotions, relinks, leadEvents, backfilled, forwarded, expired, erased, suppressed prometheus.Counter
}

func (m *Metrics) forTenant(t string) *tenantMetrics {
	return &tenantMetrics{
		duplicates: m.duplicates.WithLabelValues(t), sessions: m.sessions.WithLabelValues(t),
		bots: m.bots.WithLabelValues(t), promotions: m.promotions.WithLabelValues(t),
		relinks: m.relinks.WithLabelValues(t), leadEvents: m.leadEvents.WithLabelValues(t),
		backfilled: m.backfilled.WithLabelValues(t), forwarded: m.forwarded.WithLabelValues(t),
		expired: m.expired.WithLabelValues(t), erased: m.erased.WithLabelValues(t), suppressed: m.suppressed.WithLabelValues(t),
	}
}
