package campaign

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/metrics"
)

// Metrics are the campaign engines' instruments, shared by a node's lead
// shards.
type Metrics struct {
	tested      *prometheus.CounterVec // tenant: campaign versions an activity was tested against
	runs        *prometheus.CounterVec // tenant, status: runs entered and ended
	actions     *prometheus.CounterVec // tenant, step type
	external    *prometheus.CounterVec // tenant, kind
	skipped     *prometheus.CounterVec // tenant, reason
	exprErrors  *prometheus.CounterVec // tenant
	staleTimers *prometheus.CounterVec // tenant
	timersFired prometheus.Counter
	// triggerLatency is from an input's receivedAt to the run it starts;
	// now is the wall clock, read for this metric only.
	triggerLatency prometheus.Histogram
	now            func() time.Time
}

// NewMetrics registers the campaign metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		now: time.Now,
		triggerLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "contrail_campaign_ingest_to_trigger_seconds", Help: "From the collector's receivedAt of an input to the campaign run it starts (wall clock).",
			Buckets: metrics.LatencyBuckets,
		}),
		tested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_trigger_tests_total", Help: "Campaign versions an activity was tested against (after the trigger index), per tenant.",
		}, []string{"tenant"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_runs_total", Help: "Campaign runs entered, and ended by status (completed, failed, removed), per tenant.",
		}, []string{"tenant", "status"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_steps_total", Help: "Campaign steps taken, per tenant and step type.",
		}, []string{"tenant", "type"}),
		external: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_external_effects_total", Help: "Webhooks and emails handed to the senders, per tenant and kind.",
		}, []string{"tenant", "kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_skipped_total", Help: "Entries and emails not made, per tenant and reason (qualification, filter, person_restriction, email_do_not_contact, email_communication_limit, ...).",
		}, []string{"tenant", "reason"}),
		exprErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_expression_errors_total", Help: "Constraint, filter and choice expressions that failed to evaluate (taken as false), per tenant.",
		}, []string{"tenant"}),
		staleTimers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_campaign_stale_timers_total", Help: "Timers that fired for a run no longer waiting on them (a repeat, or the run moved on), per tenant.",
		}, []string{"tenant"}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "contrail_campaign_timers_published_total", Help: "Due timers published to the lead shards as inputs.",
		}),
	}
	reg.MustRegister(m.triggerLatency, m.tested, m.runs, m.actions, m.external, m.skipped, m.exprErrors, m.staleTimers, m.timersFired)
	return m
}
