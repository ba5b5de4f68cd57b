package loadgen

import (
	"context"
	"fmt"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The series of trigger campaigns and of the delivery of their external
// effects. A node with campaigns exposes the trigger histogram and the
// in-flight gauge from the start, empty; the others appear with their first
// label values.
const (
	triggerMetric      = "contrail_campaign_ingest_to_trigger_seconds"  // no labels
	testedMetric       = "contrail_campaign_trigger_tests_total"        // {tenant}
	runsMetric         = "contrail_campaign_runs_total"                 // {tenant, status}
	stepsMetric        = "contrail_campaign_steps_total"                // {tenant, type}
	deliveredMetric    = "contrail_deliver_ingest_to_delivered_seconds" // {kind}
	attemptsMetric     = "contrail_deliver_attempts_total"              // {tenant, kind, outcome}
	deliverFailMetric  = "contrail_deliver_failed_total"                // {tenant, kind}
	inflightMetric     = "contrail_deliver_inflight"                    // no labels
	outboxWritesMetric = "contrail_outbox_writes_total"                 // {stream}
	// leadsStream is the stream of the lead shards, which run the
	// campaigns.
	leadsStream = "LEADS"
	// webhookKind is the kind label of webhooks in the deliver series.
	webhookKind = "webhook"
)

// settleConfirm is how long the lead shards' counters must stand still,
// with their lag gauges at zero and nothing left in the senders, for the
// campaigns to count as settled after the load.
const settleConfirm = 300 * time.Millisecond

// externalSteps are the step types whose effect leaves the node, as the
// type label of contrail_campaign_steps_total names them.
var externalSteps = map[string]bool{"call_webhook": true, "send_email": true}

// campaignMetrics is the part of a scrape about trigger campaigns and the
// delivery of their external effects. The maps are by tenant label.
type campaignMetrics struct {
	// trigger is the ingest-to-trigger histogram, of every tenant, and
	// triggerSum the sum of its observations in seconds.
	trigger    buckets
	triggerSum float64
	// tested counts the campaign versions activities were tested against,
	// of every tenant.
	tested float64
	// entered counts the runs started; completed, failed and removed
	// those ended so.
	entered, completed, failed, removed map[string]float64
	// steps counts the steps taken, and external those of them whose
	// effect leaves the node (webhooks, emails).
	steps, external map[string]float64
	// delivered is the ingest-to-delivered histogram of webhooks, of every
	// tenant, and deliveredSum the sum of its observations in seconds.
	delivered    buckets
	deliveredSum float64
	// webhooksOK and webhooksFailed count webhooks delivered and failed
	// for good.
	webhooksOK, webhooksFailed map[string]float64
	// inflight is the external effects the senders hold that are not
	// done, of every tenant.
	inflight float64
	// outboxWrites counts the effects written to the persistent outbox,
	// of every stream and tenant.
	outboxWrites float64
	// leadsProcessed and leadsLag are the lead shards' processed counter
	// (every tenant) and lag gauges, summed.
	leadsProcessed, leadsLag float64
}

// parse reads the campaign series of a scrape into c, whose maps must be
// allocated.
func (c *campaignMetrics) parse(fams map[string]*dto.MetricFamily) error {
	var err error
	all := func(*dto.Metric) bool { return true }
	if c.trigger, c.triggerSum, err = histogramOf(fams[triggerMetric], all); err != nil {
		return err
	}
	c.delivered, c.deliveredSum, err = histogramOf(fams[deliveredMetric], func(s *dto.Metric) bool { return label(s, "kind") == webhookKind })
	if err != nil {
		return err
	}
	for _, s := range fams[testedMetric].GetMetric() {
		c.tested += value(s)
	}
	for _, s := range fams[runsMetric].GetMetric() {
		byStatus := map[string]map[string]float64{
			"entered": c.entered, "completed": c.completed, "failed": c.failed, "removed": c.removed,
		}
		if m := byStatus[label(s, "status")]; m != nil {
			m[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[stepsMetric].GetMetric() {
		c.steps[label(s, "tenant")] += value(s)
		if externalSteps[label(s, "type")] {
			c.external[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[attemptsMetric].GetMetric() {
		if label(s, "kind") == webhookKind && label(s, "outcome") == "ok" {
			c.webhooksOK[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[deliverFailMetric].GetMetric() {
		if label(s, "kind") == webhookKind {
			c.webhooksFailed[label(s, "tenant")] += value(s)
		}
	}
	for _, s := range fams[inflightMetric].GetMetric() {
		c.inflight += value(s)
	}
	for _, s := range fams[outboxWritesMetric].GetMetric() {
		c.outboxWrites += value(s)
	}
	for _, s := range fams[processedMetric].GetMetric() {
		if label(s, "stream") == leadsStream {
			c.leadsProcessed += value(s)
		}
	}
	for _, s := range fams[lagMetric].GetMetric() {
		if label(s, "stream") == leadsStream {
			c.leadsLag += value(s)
		}
	}
	return nil
}

func newCampaignMetrics() campaignMetrics {
	m := func() map[string]float64 { return map[string]float64{} }
	return campaignMetrics{
		entered: m(), completed: m(), failed: m(), removed: m(), steps: m(), external: m(),
		webhooksOK: m(), webhooksFailed: m(),
	}
}

// Campaigns is what the node's trigger campaigns did over a run, as its
// /metrics tells it: the runs they started, the steps they took, the
// webhooks they delivered and the effects they wrote to the outbox, from
// the scrape before the load to the last one. Counts labelled by tenant
// are of Tenant; the latency histograms, the in-flight gauge and the
// outbox counter have no tenant label and are of every tenant.
type Campaigns struct {
	// Active reports whether the server counted campaign work over the
	// run: an activity tested against a campaign, a run, a step, a
	// delivery or an outbox write. A node without campaigns, or whose
	// campaigns listen for none of the load's activities, is not active,
	// and the report says nothing of campaigns unless Receiver is set.
	Active bool
	// Tenant is Processing.Tenant: the tenant whose runs, steps and
	// webhooks are counted, or empty for all of them.
	Tenant string
	// Entered counts the runs started; Completed, Failed and Removed the
	// runs that ended so (started before the load or during it).
	Entered, Completed, Failed, Removed int64
	// Steps counts the steps taken: the actions. External counts those of
	// them whose effect leaves the node (webhooks and emails).
	Steps, External int64
	// StepsPerSec is Steps over Elapsed, and LoadStepsPerSec the rate
	// until the scrape just after the load.
	StepsPerSec, LoadStepsPerSec float64
	// Trigger is the time from the collector receiving an input to the run
	// it started (back-filled history is not observed); it counts runs.
	Trigger ProcessingLatency
	// Delivered is the time from the collector receiving the input that
	// ran a call_webhook step to the webhook's delivery; it counts
	// webhooks.
	Delivered ProcessingLatency
	// WebhooksDelivered and WebhooksFailed count webhooks delivered, and
	// failed for good after their retries.
	WebhooksDelivered, WebhooksFailed int64
	// Inflight is the external effects the senders held, not done, at the
	// last scrape.
	Inflight int64
	// OutboxWrites counts the external effects written to the persistent
	// outbox because the senders lagged; OutboxWritesPerMin is per minute
	// of Elapsed, and OutboxShare the share of the external steps of every
	// tenant (0 without any).
	OutboxWrites       int64
	OutboxWritesPerMin float64
	OutboxShare        float64
	// Elapsed runs from the scrape before the load to the last scrape.
	Elapsed time.Duration
	// SettleLimit is how long Run would wait after the load for the
	// campaigns to settle: Options.Drain, or 0 when it did not wait.
	SettleLimit time.Duration
	// Settled reports whether, by the last scrape, the lead shards had
	// caught up (lag gauges at zero, processed counter still for
	// settleConfirm) and the senders held nothing. Settle is when, after
	// the load's last answer, that state began; without Settled, how long
	// Run waited in vain.
	Settled bool
	Settle  time.Duration
	// Receiver is what Options.Receiver was sent by the end, nil without
	// one.
	Receiver *ReceiverCounts
}

// shown reports whether the report has campaign rows.
func (c Campaigns) shown() bool { return c.Active || c.Receiver != nil }

// active reports whether any campaign work was counted between two
// scrapes, for every tenant.
func active(before, m campaignMetrics) bool {
	return m.trigger.since(before.trigger).total() > 0 || m.delivered.since(before.delivered).total() > 0 ||
		increase(before.tested, m.tested) > 0 ||
		increase(ofTenant(before.entered, ""), ofTenant(m.entered, "")) > 0 ||
		increase(ofTenant(before.steps, ""), ofTenant(m.steps, "")) > 0 ||
		increase(ofTenant(before.webhooksOK, ""), ofTenant(m.webhooksOK, "")) > 0 ||
		increase(before.outboxWrites, m.outboxWrites) > 0
}

// campaigns completes the campaign figures once processing has been
// followed: tenant is the one Processing counts, after the scrape just
// after the load, loadEnd the load's last answer. With drain > 0 and
// campaign work to wait for, it keeps reading the metrics until the
// campaigns settle or drain has passed since loadEnd.
func (p *probe) campaigns(ctx context.Context, tenant string, after serverMetrics, loadEnd time.Time, drain time.Duration, recv *Receiver) Campaigns {
	last := p.last
	c := Campaigns{Tenant: tenant}
	if !active(p.before.campaigns, last.campaigns) && recv == nil {
		return c
	}
	if drain > 0 && ctx.Err() == nil {
		c.SettleLimit = drain
		var at time.Time
		last, at, c.Settled = p.settle(ctx, last, loadEnd.Add(drain))
		if !c.Settled {
			at = last.at
		}
		c.Settle = max(at.Sub(loadEnd), 0)
	}
	b, l := p.before.campaigns, last.campaigns
	c.Active = active(b, l)
	n := func(before, cur map[string]float64) int64 {
		return int64(increase(ofTenant(before, tenant), ofTenant(cur, tenant)))
	}
	c.Entered, c.Completed, c.Failed, c.Removed = n(b.entered, l.entered), n(b.completed, l.completed), n(b.failed, l.failed), n(b.removed, l.removed)
	c.Steps, c.External = n(b.steps, l.steps), n(b.external, l.external)
	c.Elapsed = last.at.Sub(p.before.at)
	c.StepsPerSec = perSec(float64(c.Steps), c.Elapsed)
	c.LoadStepsPerSec = perSec(float64(n(b.steps, after.campaigns.steps)), after.at.Sub(p.before.at))
	c.Trigger = latencyOf(l.trigger.since(b.trigger), increase(b.triggerSum, l.triggerSum))
	c.Delivered = latencyOf(l.delivered.since(b.delivered), increase(b.deliveredSum, l.deliveredSum))
	c.WebhooksDelivered, c.WebhooksFailed = n(b.webhooksOK, l.webhooksOK), n(b.webhooksFailed, l.webhooksFailed)
	c.Inflight = int64(l.inflight)
	outbox := increase(b.outboxWrites, l.outboxWrites)
	c.OutboxWrites = int64(outbox)
	if c.Elapsed > 0 {
		c.OutboxWritesPerMin = outbox / c.Elapsed.Minutes()
	}
	if ext := increase(ofTenant(b.external, ""), ofTenant(l.external, "")); ext > 0 {
		c.OutboxShare = outbox / ext
	}
	if recv != nil {
		counts := recv.Counts()
		c.Receiver = &counts
	}
	return c
}

// settle reads the metrics every drainPollEvery until the campaigns have
// settled or the deadline, and returns the last successful scrape, when
// the settled state began, and whether it was confirmed.
func (p *probe) settle(ctx context.Context, last serverMetrics, deadline time.Time) (serverMetrics, time.Time, bool) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	timer := time.NewTimer(drainPollEvery)
	defer timer.Stop()
	quiet := func(m serverMetrics) bool { return m.campaigns.leadsLag == 0 && m.campaigns.inflight == 0 }
	var since serverMetrics // the first scrape of the current quiet stretch
	if quiet(last) {
		since = last
	}
	told := time.Now()
	for {
		select {
		case <-ctx.Done():
			return last, time.Time{}, false
		case <-timer.C:
		}
		if m, err := p.read(ctx); err == nil {
			last = m
			switch {
			case !quiet(m) || since.at.IsZero() || !sameWork(since.campaigns, m.campaigns):
				since = cond(quiet(m), m, serverMetrics{})
			case m.at.Sub(since.at) >= settleConfirm:
				return m, since.at, true
			}
			if p.settling != nil && m.at.Sub(told) >= time.Second {
				told = m.at
				p.settling(m.at)
			}
		}
		timer.Reset(drainPollEvery)
	}
}

// sameWork reports whether the lead shards and the senders did nothing
// between two scrapes.
func sameWork(a, b campaignMetrics) bool {
	return a.leadsProcessed == b.leadsProcessed &&
		ofTenant(a.steps, "") == ofTenant(b.steps, "") &&
		ofTenant(a.webhooksOK, "")+ofTenant(a.webhooksFailed, "") == ofTenant(b.webhooksOK, "")+ofTenant(b.webhooksFailed, "")
}

// writeRows adds the campaign figures to the table of WriteText.
func (c Campaigns) writeRows(row func(name, format string, args ...any)) {
	who := "all tenants"
	if c.Tenant != "" {
		who = "tenant " + c.Tenant
	}
	ended := fmt.Sprintf("%d completed, %d failed", c.Completed, c.Failed)
	if c.Removed > 0 {
		ended += fmt.Sprintf(", %d removed", c.Removed)
	}
	row("campaign runs", "%d entered, %s, of %s", c.Entered, ended, who)
	if l := c.Trigger; l.Count > 0 {
		row("ingest→trigger", "p50 %s  p99 %s  p99.9 %s  mean %s  (%d runs of all tenants; bucket-interpolated)",
			l.P50, l.P99, l.P999, round(l.Mean), l.Count)
	} else {
		row("ingest→trigger", "no run started")
	}
	row("actions", "%d campaign steps, %d of them external (%s/s over %s; %s/s during the load)",
		c.Steps, c.External, count(c.StepsPerSec), round(c.Elapsed), count(c.LoadStepsPerSec))
	if l := c.Delivered; l.Count > 0 {
		row("ingest→delivered", "p50 %s  p99 %s  p99.9 %s  mean %s  (%d webhooks of all tenants; bucket-interpolated)",
			l.P50, l.P99, l.P999, round(l.Mean), l.Count)
	} else {
		row("ingest→delivered", "no webhook delivered")
	}
	row("webhooks", "%d delivered, %d failed for good, of %s; %d effects still in the senders", c.WebhooksDelivered, c.WebhooksFailed, who, c.Inflight)
	if r := c.Receiver; r != nil {
		row("webhook receiver", "%d requests, %d distinct idempotency keys", r.Requests, r.Keys)
	}
	row("outbox writes", "%d (%s/min over %s; %.2f%% of the external steps of all tenants)",
		c.OutboxWrites, count(c.OutboxWritesPerMin), round(c.Elapsed), 100*c.OutboxShare)
	switch {
	case c.Settled:
		row("campaigns", "settled %s after the load", round(c.Settle))
	case c.SettleLimit > 0:
		row("campaigns", "not settled after waiting %s (lead shards behind, or effects still in the senders)", round(c.Settle))
	default:
		row("campaigns", "settling not waited for")
	}
}
