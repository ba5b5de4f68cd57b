package campaign_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/event"
)

// benchPipeline has n active campaigns, spread over ten event names; the
// constraint of campaign i holds for events whose property n is i.
func benchPipeline(b *testing.B, n int, flow []campaign.Step) *pipeline {
	p := newPipeline(b)
	for i := range n {
		spec := campaign.Spec{
			Name:          fmt.Sprintf("c%d", i),
			Qualification: campaign.QualEveryTime,
			Triggers: []campaign.Trigger{{
				Type: campaign.TrigEventTracked, Event: fmt.Sprintf("E%d", i%10),
				Constraint: fmt.Sprintf("event.properties.n == %d", i),
			}},
			Flow: flow,
		}
		p.cat.add(b, p.x, fmt.Sprintf("c%04d", i), spec)
	}
	return p
}

// BenchmarkTriggerMatch1000 is the cost per tracked event of a known lead
// against 1,000 active campaigns of its tenant: the index narrows them to
// the 100 listening for its event name, whose constraints are evaluated;
// one event in a hundred enters a run of one step.
func BenchmarkTriggerMatch1000(b *testing.B) {
	p := benchPipeline(b, 1000, []campaign.Step{{Type: campaign.StepChangeScore, Change: 1}})
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const perMsg = 100
	msg := make([]event.Event, perMsg)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perMsg {
		for j := range msg {
			at := start.Add(time.Duration(i+j) * time.Millisecond)
			n := (i + j) * 7919 % 100000 // campaign n matches when n < 1000
			msg[j] = track(fmt.Sprintf("lead%d", (i+j)%500), fmt.Sprintf("E%d", n%10), fmt.Sprintf(`{"n":%d}`, n), at)
			msg[j].MessageID = fmt.Sprintf("m%d", i+j)
		}
		p.apply(msg...)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/campaign-tested")
}

// BenchmarkTriggerMatchOtherTypes is the cost per page view of a known
// lead when the tenant's 1,000 campaigns all listen to tracked events:
// the index finds none, and the lead shard's own work is all that is left.
func BenchmarkTriggerMatchOtherTypes(b *testing.B) {
	p := benchPipeline(b, 1000, []campaign.Step{{Type: campaign.StepChangeScore, Change: 1}})
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const perMsg = 100
	msg := make([]event.Event, perMsg)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perMsg {
		for j := range msg {
			msg[j] = visit(fmt.Sprintf("lead%d", (i+j)%500), "/docs", start.Add(time.Duration(i+j)*time.Millisecond))
			msg[j].MessageID = fmt.Sprintf("m%d", i+j)
		}
		p.apply(msg...)
	}
}

// BenchmarkStepExecution is the cost of internal actions: each event
// enters one run of ten steps (score and list changes), applied with the
// run's progress in the message's batch. actions/s is per core.
func BenchmarkStepExecution(b *testing.B) {
	var flow []campaign.Step
	for i := range 10 {
		switch i % 3 {
		case 0:
			flow = append(flow, campaign.Step{Type: campaign.StepChangeScore, Change: 1})
		case 1:
			flow = append(flow, campaign.Step{Type: campaign.StepAddToList, List: fmt.Sprintf("L%d", i)})
		default:
			flow = append(flow, campaign.Step{Type: campaign.StepRemoveFromList, List: fmt.Sprintf("L%d", i-1)})
		}
	}
	p := newPipeline(b)
	p.cat.add(b, p.x, "steps", campaign.Spec{
		Name: "steps", Qualification: campaign.QualEveryTime,
		Triggers: []campaign.Trigger{{Type: campaign.TrigEventTracked, Event: "Go"}}, Flow: flow,
	})
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const perMsg = 50
	msg := make([]event.Event, perMsg)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += perMsg {
		for j := range msg {
			msg[j] = track(fmt.Sprintf("lead%d", (i+j)%1000), "Go", "", start.Add(time.Duration(i+j)*time.Millisecond))
			msg[j].MessageID = fmt.Sprintf("m%d", i+j)
		}
		p.apply(msg...)
	}
	b.ReportMetric(float64(b.N)*10/b.Elapsed().Seconds(), "actions/s")
}
