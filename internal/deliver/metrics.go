package deliver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/metrics"
)

// Outcomes of an attempt, the "outcome" label of
// contrail_deliver_attempts_total.
const (
	outcomeOK     = "ok"     // delivered
	outcomeRetry  = "retry"  // failed, will be tried again
	outcomeFailed = "failed" // failed for good
)

type deliverMetrics struct {
	attempts      *prometheus.CounterVec   // tenant, kind, outcome
	failed        *prometheus.CounterVec   // tenant, kind
	duration      *prometheus.HistogramVec // kind
	ingestToDone  *prometheus.HistogramVec // kind
	inflight      prometheus.Gauge
	tenantActive  *prometheus.GaugeVec   // tenant
	throttled     *prometheus.CounterVec // tenant
	outboxPending prometheus.Gauge
	spilled       prometheus.Counter
}

func newDeliverMetrics(reg prometheus.Registerer) *deliverMetrics {
	m := &deliverMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_deliver_attempts_total",
			Help: "Delivery attempts of external effects, by tenant, kind and outcome (ok, retry, failed).",
		}, []string{"tenant", "kind", "outcome"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_deliver_failed_total",
			Help: "External effects that failed for good (refused, or out of attempts), by tenant and kind.",
		}, []string{"tenant", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "contrail_deliver_duration_seconds",
			Help:    "Time from an effect's first hand-over to the sender until it is done (delivered or failed).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1ms to about 70m
		}, []string{"kind"}),
		ingestToDone: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "contrail_deliver_ingest_to_delivered_seconds",
			Help:    "Time from the collector's receivedAt of the input that ran the step to the effect's delivery.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"kind"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "contrail_deliver_inflight",
			Help: "External effects the sender holds that are not done: queued, in an attempt or waiting to retry.",
		}),
		tenantActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "contrail_deliver_attempts_in_progress",
			Help: "Delivery attempts in progress, by tenant; a tenant's series goes once it has nothing ready or in progress.",
		}, []string{"tenant"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_deliver_tenant_throttled_total",
			Help: "Times a tenant's ready effect was held back, with a worker and its endpoint free, because the tenant had its limit of attempts in progress.",
		}, []string{"tenant"}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "contrail_deliver_outbox_pending",
			Help: "Outbox entries the sender knows of whose effect is not done.",
		}),
		spilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "contrail_deliver_spilled_total",
			Help: "Effects Deliver returned unfinished, for the shard to write to the outbox; near zero when the sender keeps up.",
		}),
	}
	reg.MustRegister(m.attempts, m.failed, m.duration, m.ingestToDone, m.inflight, m.tenantActive, m.throttled,
		m.outboxPending, m.spilled)
	return m
}
