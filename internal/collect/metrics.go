package collect

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/metrics"
)

type collectMetrics struct {
	requests        *prometheus.CounterVec   // endpoint, code
	requestSeconds  *prometheus.HistogramVec // endpoint
	accepted        *prometheus.CounterVec   // tenant
	rejectedEvents  *prometheus.CounterVec   // tenant, reason
	refusedRequests *prometheus.CounterVec   // tenant, reason
	publishSeconds  prometheus.Histogram
	publishErrors   prometheus.Counter
	messageBytes    prometheus.Histogram
	messageEvents   prometheus.Histogram
}

func newCollectMetrics(reg prometheus.Registerer) *collectMetrics {
	m := &collectMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_collect_requests_total", Help: "Collector HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "contrail_collect_request_duration_seconds", Help: "Collector request latency, including the wait for the log's acknowledgement.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"endpoint"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_collect_events_accepted_total", Help: "Events stored in the log, by tenant.",
		}, []string{"tenant"}),
		rejectedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_collect_events_rejected_total", Help: "Events not stored, by tenant and reason code.",
		}, []string{"tenant", "reason"}),
		refusedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_collect_requests_refused_total", Help: "Whole requests refused, by tenant (\"unknown\" before authentication) and reason code.",
		}, []string{"tenant", "reason"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "contrail_log_publish_duration_seconds", Help: "Time from publishing a log message to JetStream's acknowledgement.",
			Buckets: metrics.LatencyBuckets,
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "contrail_log_publish_errors_total", Help: "Log appends that failed after retries.",
		}),
		messageBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "contrail_log_message_bytes", Help: "Size of log messages written by group commit.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 8),
		}),
		messageEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "contrail_log_message_events", Help: "Events per log message written by group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
	}
	reg.MustRegister(m.requests, m.requestSeconds, m.accepted, m.rejectedEvents, m.refusedRequests,
		m.publishSeconds, m.publishErrors, m.messageBytes, m.messageEvents)
	return m
}

// quotaCollector exposes how much of its daily quota each tenant used on
// this node. It reads the admission state when scraped, so admitting
// events costs nothing more.
type quotaCollector struct {
	a    *admission
	now  func() time.Time
	desc *prometheus.Desc
}

func newQuotaCollector(a *admission, now func() time.Time) *quotaCollector {
	return &quotaCollector{a: a, now: now, desc: prometheus.NewDesc(
		"contrail_collect_quota_used",
		"Events admitted today (UTC) against the tenant's daily quota, on this node; tenants with a quota only.",
		[]string{"tenant"}, nil,
	)}
}

// Describe implements prometheus.Collector.
func (q *quotaCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector.
func (q *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	q.a.quotaUsed(q.now(), func(tenantID string, used int64) {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(used), tenantID)
	})
}
