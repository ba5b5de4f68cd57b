package app

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/metrics"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// TenantStatus reports each tenant's state and its counters on this node,
// read from the node's metrics: what /metrics shows, per tenant.
func (n *Node) TenantStatus(ctx context.Context) ([]api.TenantStatus, error) {
	ts, err := n.tenants.List(ctx)
	if err != nil {
		return nil, err
	}
	var mfs []*dto.MetricFamily
	if n.reg != nil {
		if mfs, err = n.reg.Gather(); err != nil {
			return nil, err
		}
	}
	m := indexByTenant(mfs)
	out := make([]api.TenantStatus, 0, len(ts))
	for _, t := range ts {
		out = append(out, m.status(t))
	}
	return out, nil
}

// sample is one series of a metric: its labels and value or histogram.
type sample struct {
	labels map[string]string
	value  float64
	hist   *dto.Histogram
}

// tenantMetrics holds the series with a tenant label: tenant → metric
// name → series.
type tenantMetrics map[string]map[string][]sample

func indexByTenant(mfs []*dto.MetricFamily) tenantMetrics {
	out := tenantMetrics{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			t, ok := labels["tenant"]
			if !ok {
				continue
			}
			s := sample{labels: labels, hist: mt.GetHistogram()}
			switch {
			case mt.GetCounter() != nil:
				s.value = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				s.value = mt.GetGauge().GetValue()
			}
			if out[t] == nil {
				out[t] = map[string][]sample{}
			}
			out[t][mf.GetName()] = append(out[t][mf.GetName()], s)
		}
	}
	return out
}

// sum adds the series of a tenant's metric whose labels match where.
func (m tenantMetrics) sum(t, name string, where map[string]string) float64 {
	total := 0.0
	for _, s := range m[t][name] {
		if matches(s.labels, where) {
			total += s.value
		}
	}
	return total
}

// by adds a tenant's metric per value of label.
func (m tenantMetrics) by(t, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m[t][name] {
		out[s.labels[label]] += s.value
	}
	return out
}

func matches(labels, where map[string]string) bool {
	for k, v := range where {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// quantile estimates the q-quantile of a tenant's histogram series whose
// labels match where (they share their buckets), as Prometheus'
// histogram_quantile does; 0 without observations.
func (m tenantMetrics) quantile(t, name string, where map[string]string, q float64) float64 {
	var bounds, counts []float64
	for _, s := range m[t][name] {
		if s.hist == nil || !matches(s.labels, where) {
			continue
		}
		b, c, err := metrics.CumulativeBuckets(s.hist)
		if err != nil || bounds != nil && !slices.Equal(b, bounds) {
			continue // not a well-formed series of the same histogram
		}
		if bounds == nil {
			bounds, counts = b, c
			continue
		}
		for i := range counts {
			counts[i] += c[i]
		}
	}
	v, _, _ := metrics.Quantile(bounds, counts, q)
	return v
}

func (m tenantMetrics) status(t tenant.Tenant) api.TenantStatus {
	id := t.ID
	st := api.TenantStatus{
		ID: id, Name: t.Name, Paused: t.IsPaused(), PausedAt: t.PausedAt,
		Accepted:        m.sum(id, "contrail_collect_events_accepted_total", nil),
		Rejected:        m.by(id, "contrail_collect_events_rejected_total", "reason"),
		QuotaUsed:       m.sum(id, "contrail_collect_quota_used", nil),
		TriggersFired:   m.sum(id, "contrail_campaign_runs_total", map[string]string{"status": "entered"}),
		Actions:         m.by(id, "contrail_campaign_steps_total", "type"),
		WebhookFailures: m.sum(id, "contrail_deliver_failed_total", map[string]string{"kind": "webhook"}),
	}
	for reason, v := range m.by(id, "contrail_collect_requests_refused_total", "reason") {
		st.Rejected[reason] += v
	}
	for _, stream := range []string{eventlog.StreamEvents, eventlog.StreamLeads} {
		on := map[string]string{"stream": stream}
		s := api.StageStatus{
			Stream:     stream,
			Processed:  m.sum(id, "contrail_shard_events_processed_total", on),
			Dead:       m.sum(id, "contrail_shard_events_dead_total", on),
			Parked:     m.sum(id, "contrail_shard_events_parked_total", on),
			Replayed:   m.sum(id, "contrail_shard_events_replayed_total", on),
			Backlog:    m.sum(id, "contrail_shard_tenant_backlog_events", on),
			LagSeconds: m.sum(id, "contrail_shard_tenant_lag_seconds", on),
			P99Seconds: m.quantile(id, "contrail_shard_tenant_ingest_to_processed_seconds", on, 0.99),
		}
		s.LagEvents = s.Backlog
		if stream == eventlog.StreamEvents {
			s.LagEvents = math.Max(0, st.Accepted-s.Processed-s.Dead)
		}
		st.Stages = append(st.Stages, s)
	}
	return st
}

// tenantPausedCollector exposes contrail_tenant_paused{tenant}, read from
// the tenant cache at each scrape.
type tenantPausedCollector struct{ cache *tenant.Cache }

var tenantPausedDesc = prometheus.NewDesc("contrail_tenant_paused", "1 while the tenant is paused: its events are parked, not processed.", []string{"tenant"}, nil)

func (c tenantPausedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tenantPausedDesc }

func (c tenantPausedCollector) Collect(ch chan<- prometheus.Metric) {
	c.cache.Each(func(t *tenant.Tenant) {
		v := 0.0
		if t.IsPaused() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(tenantPausedDesc, prometheus.GaugeValue, v, t.ID)
	})
}

// reportCacheCollector exposes the report queries' cache of merged
// buckets (report.CacheStats) as contrail_report_cache_*.
type reportCacheCollector struct{ q *report.Querier }

var (
	reportCacheLookupsDesc = prometheus.NewDesc("contrail_report_cache_lookups_total", "Report queries' lookups of merged compacted buckets, by result: hit, miss (merged then), or stale (failed the check against the records, read again without).", []string{"result"}, nil)
	reportCacheEvictedDesc = prometheus.NewDesc("contrail_report_cache_evicted_total", "Merged buckets evicted to stay within process.report_cache_bytes.", nil, nil)
	reportCacheBytesDesc   = prometheus.NewDesc("contrail_report_cache_bytes", "Memory held by merged buckets (estimated).", nil, nil)
	reportCacheEntriesDesc = prometheus.NewDesc("contrail_report_cache_entries", "Merged buckets held.", nil, nil)
)

func (c reportCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reportCacheLookupsDesc
	ch <- reportCacheEvictedDesc
	ch <- reportCacheBytesDesc
	ch <- reportCacheEntriesDesc
}

func (c reportCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.q.CacheStats()
	ch <- prometheus.MustNewConstMetric(reportCacheLookupsDesc, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(reportCacheLookupsDesc, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(reportCacheLookupsDesc, prometheus.CounterValue, float64(s.Stale), "stale")
	ch <- prometheus.MustNewConstMetric(reportCacheEvictedDesc, prometheus.CounterValue, float64(s.Evicted))
	ch <- prometheus.MustNewConstMetric(reportCacheBytesDesc, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(reportCacheEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
}
