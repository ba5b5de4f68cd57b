package lead

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the lead shards' instruments, shared by a node's processors.
type Metrics struct {
	activities *prometheus.CounterVec // tenant, type
	created    *prometheus.CounterVec // tenant
	commands   *prometheus.CounterVec // tenant, command
	dropped    *prometheus.CounterVec // tenant, reason
}

// NewMetrics registers the lead shards' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		activities: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_lead_activities_total", Help: "Activities recorded on known leads' timelines, by tenant and type.",
		}, []string{"tenant", "type"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_leads_created_total", Help: "Known leads created, by tenant.",
		}, []string{"tenant"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_lead_commands_total", Help: "Commands applied by lead shards (API writes, merges, index updates), by tenant and command.",
		}, []string{"tenant", "command"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_lead_inputs_dropped_total", Help: "Lead shard inputs not applied, by tenant and reason (erased lead, unknown lead, merge refused...).",
		}, []string{"tenant", "reason"}),
	}
	reg.MustRegister(m.activities, m.created, m.commands, m.dropped)
	return m
}
