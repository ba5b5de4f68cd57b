package campaign_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

const testTenant = "tn_test"

// staticCatalog is a Catalog of campaigns compiled in the test.
type staticCatalog struct {
	index    map[string][]*campaign.Version
	active   map[string]*campaign.Version
	versions map[string]*campaign.Version
}

func newCatalog() *staticCatalog {
	return &staticCatalog{index: map[string][]*campaign.Version{}, active: map[string]*campaign.Version{}, versions: map[string]*campaign.Version{}}
}

func (c *staticCatalog) Triggered(_, activity string) []*campaign.Version { return c.index[activity] }
func (c *staticCatalog) Version(_, id string, n int) (*campaign.Version, bool) {
	v, ok := c.versions[id+"/"+strconv.Itoa(n)]
	return v, ok
}
func (c *staticCatalog) Active(_, id string) (*campaign.Version, bool) {
	v, ok := c.active[id]
	return v, ok
}

// add publishes spec as the next version of campaign id.
func (c *staticCatalog) add(tb testing.TB, x *campaign.Exprs, id string, spec campaign.Spec) *campaign.Version {
	tb.Helper()
	v, err := campaign.Compile(context.Background(), x, spec, campaign.CompileOptions{BackfillWindow: 24 * time.Hour})
	require.NoError(tb, err)
	n := 1
	if old, ok := c.active[id]; ok {
		n = old.Number + 1
	}
	v.Campaign, v.Tenant, v.Number = id, testTenant, n
	c.versions[id+"/"+strconv.Itoa(n)] = v
	c.active[id] = v
	c.reindex()
	return v
}

// pause takes a campaign out of the index; its versions stay.
func (c *staticCatalog) pause(id string) {
	delete(c.active, id)
	c.reindex()
}

func (c *staticCatalog) reindex() {
	clear(c.index)
	for _, v := range c.active {
		seen := map[string]bool{}
		for _, act := range campaign.ListenedActivities(v) {
			if !seen[act] {
				seen[act] = true
				c.index[act] = append(c.index[act], v)
			}
		}
	}
	for _, vs := range c.index {
		campaign.SortByPriority(vs)
	}
}

// pipeline is a lead shard (Q = 1) with a campaign engine, fed directly;
// external effects are read from the outbox as a sender would take them.
type pipeline struct {
	tb      testing.TB
	st      *store.Store
	cat     *staticCatalog
	x       *campaign.Exprs
	proc    *lead.Processor
	seq     uint64
	effects []deliver.Job
	now     time.Time
}

func newPipeline(tb testing.TB) *pipeline {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), nil)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	x, err := campaign.NewExprs()
	require.NoError(tb, err)
	cat := newCatalog()
	eng, err := campaign.New(cat, nil, 0, campaign.NewMetrics(prometheus.NewRegistry()))
	require.NoError(tb, err)
	proc, err := lead.New(lead.Config{Partitions: 1, EventPartitions: 1, Campaigns: eng}, 0, lead.NewMetrics(prometheus.NewRegistry()))
	require.NoError(tb, err)
	return &pipeline{tb: tb, st: st, cat: cat, x: x, proc: proc}
}

// apply commits events as the next LEADS message, then takes the
// external effects it left in the outbox.
func (p *pipeline) apply(events ...event.Event) {
	p.tb.Helper()
	p.seq++
	_, errs, err := shard.ApplyLocal(context.Background(), p.st, eventlog.StreamLeads, 0, p.seq, p.proc, events)
	require.NoError(p.tb, err)
	for i, e := range errs {
		require.NoError(p.tb, e, "event %d", i)
	}
	p.takeEffects()
}

func (p *pipeline) takeEffects() {
	prefix := []byte(store.OutboxPrefix)
	it, err := p.st.NewIter(prefix, store.PrefixEnd(prefix))
	require.NoError(p.tb, err)
	b := p.st.NewBatch()
	var jobs []deliver.Job
	for it.First(); it.Valid(); it.Next() {
		var j deliver.Job
		require.NoError(p.tb, json.Unmarshal(it.Value(), &j))
		jobs = append(jobs, j)
		require.NoError(p.tb, b.Delete(append([]byte(nil), it.Key()...), nil))
	}
	require.NoError(p.tb, it.Close())
	require.NoError(p.tb, p.st.Commit(b))
	// The outbox is keyed by effect key; the order of asking is the
	// order of the steps' times, then runs, then steps.
	sortJobs(jobs)
	p.effects = append(p.effects, jobs...)
}

// fireTimers applies, as one message each, the campaign_timer commands of
// the timers due at p.now, as the timer service would publish them.
func (p *pipeline) fireTimers() int {
	p.tb.Helper()
	due, err := campaign.DueTimers(p.st, 0, p.now)
	require.NoError(p.tb, err)
	for i, d := range due {
		cmd, err := lead.Command(testTenant, d.Lead, campaign.CmdTimer, campaign.TimerFired{Run: d.Run, PC: d.PC, Due: d.Due}, "tmr-"+strconv.Itoa(i), p.now)
		require.NoError(p.tb, err)
		p.apply(cmd)
	}
	return len(due)
}

func leadID(name string) string { return event.LeadID(testTenant, name) }

// visit is a page view of a known lead.
func visit(name, path string, at time.Time) event.Event {
	e := event.Event{Tenant: testTenant, Type: event.TypePage, AnonymousID: "dev-" + name, UserID: name, Timestamp: at, ReceivedAt: at}
	e.Enrichment.LeadID, e.Enrichment.Path = leadID(name), path
	e.Properties = json.RawMessage(`{"path":"` + path + `"}`)
	return e
}

// track is a tracked event of a known lead.
func track(name, ev string, props string, at time.Time) event.Event {
	e := event.Event{Tenant: testTenant, Type: event.TypeTrack, AnonymousID: "dev-" + name, UserID: name, Event: ev, Timestamp: at, ReceivedAt: at}
	e.Enrichment.LeadID = leadID(name)
	if props != "" {
		e.Properties = json.RawMessage(props)
	}
	return e
}

// identify sets traits.
func identify(name, traits string, at time.Time) event.Event {
	e := event.Event{Tenant: testTenant, Type: event.TypeIdentify, AnonymousID: "dev-" + name, UserID: name, Timestamp: at, ReceivedAt: at, Traits: json.RawMessage(traits)}
	e.Enrichment.LeadID = leadID(name)
	return e
}

// command is an API command on a lead.
func command(tb testing.TB, name, cmd string, args any, at time.Time) event.Event {
	e, err := lead.Command(testTenant, leadID(name), cmd, args, "api-"+strconv.FormatInt(at.UnixNano(), 10), at)
	require.NoError(tb, err)
	return e
}

func (p *pipeline) runs(name string) []*campaign.Run {
	p.tb.Helper()
	runs, err := campaign.NewReader(p.st, 1).LeadRuns(testTenant, leadID(name))
	require.NoError(p.tb, err)
	return runs
}

func (p *pipeline) lead(name string) *lead.Lead {
	p.tb.Helper()
	l, err := lead.NewReader(p.st, 1).Get(context.Background(), testTenant, leadID(name))
	require.NoError(p.tb, err)
	return l
}
