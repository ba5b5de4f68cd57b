package visitor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
)

// A scenario is a script of events for one tenant and what the visitor
// shards must make of them. See testdata/scenarios/*.yaml.
type scenario struct {
	Settings tenant.Settings `yaml:"-"`
	RawSet   map[string]any  `yaml:"settings"`
	Events   []scenarioEvent `yaml:"events"`
	Expect   struct {
		// Leads lists the LEADS outputs in order, as "user type name [backfill]".
		Leads []string `yaml:"leads"`
		// Sessions gives each event's session label ("-" for none, "dup"
		// for a duplicate); equal labels mean equal session ids.
		Sessions []string `yaml:"sessions"`
		// New lists the events (by index) that start a session.
		New []int `yaml:"new_sessions"`
		// Visitors are the states after the script, by visitor key.
		Visitors map[string]struct {
			Lead    string `yaml:"lead"` // userId of the linked lead, "" anonymous
			Pages   uint32 `yaml:"pages"`
			Landing string `yaml:"landing"`
			History int    `yaml:"history"`
			Gone    bool   `yaml:"gone"` // expired
		} `yaml:"visitors"`
		Processed  int `yaml:"processed"`
		Duplicates int `yaml:"duplicates"`
		Bots       int `yaml:"bots"`
		// Enrichment checks fields of given events' enrichment, by index.
		Enrichment map[int]map[string]string `yaml:"enrichment"`
	} `yaml:"expect"`
}

type scenarioEvent struct {
	Type       string         `yaml:"type"`
	ID         string         `yaml:"id"` // messageId; default m<index>
	Anon       string         `yaml:"anon"`
	User       string         `yaml:"user"`
	Previous   string         `yaml:"previous"`
	Event      string         `yaml:"event"`
	Path       string         `yaml:"path"`
	URL        string         `yaml:"url"`
	Referrer   string         `yaml:"referrer"`
	UA         string         `yaml:"ua"`
	Library    string         `yaml:"library"`
	Campaign   map[string]any `yaml:"campaign"`
	At         string         `yaml:"at"`       // RFC 3339, or +duration after the previous event
	Received   string         `yaml:"received"` // +duration after At (late arrival); default At
	SameBatch  bool           `yaml:"same_batch"`
	Properties map[string]any `yaml:"properties"`
}

type fixedTenants map[string]*tenant.Tenant

func (f fixedTenants) ByID(id string) (*tenant.Tenant, bool) { t, ok := f[id]; return t, ok }

const scenarioTenant = "tn_scenario"

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) { runScenario(t, f) })
	}
}

func runScenario(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var sc scenario
	require.NoError(t, yaml.Unmarshal(raw, &sc))
	if sc.RawSet != nil {
		b, err := json.Marshal(sc.RawSet)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &sc.Settings))
		require.NoError(t, sc.Settings.Validate())
	}
	const parts = 4
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	m := NewMetrics(prometheus.NewRegistry())
	cfg := DefaultConfig()
	cfg.Partitions, cfg.LeadPartitions = parts, 2
	cfg.Tenants = fixedTenants{scenarioTenant: {ID: scenarioTenant, Settings: sc.Settings}}
	procs := make([]*Processor, parts)
	for p := range procs {
		procs[p], err = New(cfg, p, m)
		require.NoError(t, err)
	}

	// Build the events and group them into log messages.
	var at time.Time
	var msgs [][]event.Event
	var index [][]int // scenario index of each event of each message
	for i, se := range sc.Events {
		e := buildEvent(t, i, se, &at)
		if se.SameBatch && len(msgs) > 0 {
			msgs[len(msgs)-1] = append(msgs[len(msgs)-1], e)
			index[len(index)-1] = append(index[len(index)-1], i)
			continue
		}
		msgs = append(msgs, []event.Event{e})
		index = append(index, []int{i})
	}

	// Apply them; forwarded events (outputs to EVENTS) are applied as the
	// next message of their partition, as the log would deliver them.
	seqs := make([]uint64, parts)
	got := make([]event.Event, len(sc.Events))
	gotSet := make([]bool, len(sc.Events))
	var leads []string
	type pendingMsg struct {
		events []event.Event
		idx    []int
	}
	queue := make([]pendingMsg, 0, len(msgs))
	for i := range msgs {
		queue = append(queue, pendingMsg{msgs[i], index[i]})
	}
	ctx := context.Background()
	for len(queue) > 0 {
		pm := queue[0]
		queue = queue[1:]
		p := event.Partition(scenarioTenant, pm.events[0].VisitorKey(), parts)
		for _, e := range pm.events[1:] {
			require.Equal(t, p, event.Partition(scenarioTenant, e.VisitorKey(), parts), "same_batch events must share a partition")
		}
		seqs[p]++
		before := make([]event.Event, len(pm.events))
		copy(before, pm.events)
		outs, errs, err := shard.ApplyLocal(ctx, st, eventlog.StreamEvents, p, seqs[p], recorder{procs[p], &before}, pm.events)
		require.NoError(t, err)
		for i, e := range errs {
			require.NoError(t, e, "event %v", pm.idx)
			if pm.idx[i] >= 0 {
				got[pm.idx[i]], gotSet[pm.idx[i]] = before[i], true
			}
		}
		for _, o := range outs {
			evs, err := event.DecodeBatch(o.Data)
			require.NoError(t, err)
			switch {
			case strings.HasPrefix(o.Subject, eventlog.LeadsPrefix):
				for _, e := range evs {
					require.Equal(t, eventlog.LeadsSubject(event.Partition(e.Tenant, e.Enrichment.LeadID, 2)), o.Subject)
					leads = append(leads, describeLead(e))
				}
			case strings.HasPrefix(o.Subject, eventlog.EventsPrefix):
				idx := make([]int, len(evs))
				for i := range idx {
					idx[i] = -1
				}
				queue = append([]pendingMsg{{evs, idx}}, queue...) // delivered next
			default:
				t.Fatalf("unexpected output subject %s", o.Subject)
			}
		}
	}

	ex := sc.Expect
	if ex.Leads == nil {
		ex.Leads = []string{}
	}
	if leads == nil {
		leads = []string{}
	}
	require.Equal(t, ex.Leads, leads, "LEADS outputs")
	if ex.Sessions != nil {
		require.Len(t, ex.Sessions, len(sc.Events), "expect.sessions needs a label per event")
		labels := map[string]string{} // label → session id
		ids := map[string]string{}    // session id → label
		for i, want := range ex.Sessions {
			sid := got[i].Enrichment.SessionID
			switch want {
			case "-":
				require.Empty(t, sid, "event %d has no session", i)
				continue
			case "dup":
				require.True(t, !gotSet[i] || got[i].Enrichment == (event.Enrichment{}), "event %d is a duplicate", i)
				continue
			}
			require.NotEmpty(t, sid, "event %d has a session", i)
			if l, ok := labels[want]; ok {
				require.Equal(t, l, sid, "event %d is in session %s", i, want)
			} else {
				require.NotContains(t, ids, sid, "event %d starts session %s, distinct from %s", i, want, ids[sid])
				labels[want], ids[sid] = sid, want
			}
		}
	}
	if ex.New != nil {
		var news []int
		for i := range got {
			if got[i].Enrichment.NewSession {
				news = append(news, i)
			}
		}
		require.Equal(t, ex.New, news, "events starting a session")
	}
	for vk, want := range ex.Visitors {
		p := event.Partition(scenarioTenant, vk, parts)
		v, err := store.Get(st.DB(), StateKey(p, scenarioTenant, vk))
		require.NoError(t, err)
		if want.Gone {
			require.Nil(t, v, "visitor %s expired", vk)
			continue
		}
		require.NotNil(t, v, "visitor %s", vk)
		var s state
		require.NoError(t, decodeState(v, &s))
		wantLead := ""
		if want.Lead != "" {
			wantLead = event.LeadID(scenarioTenant, want.Lead)
		}
		require.Equal(t, wantLead, s.lead, "visitor %s lead", vk)
		require.Equal(t, want.Pages, s.pages, "visitor %s pages in session", vk)
		require.Equal(t, want.Landing, s.landing, "visitor %s landing page", vk)
		require.Equal(t, want.History, int(s.histNext-s.histFirst), "visitor %s history length", vk)
		n := 0
		it, err := st.NewIter([]byte(fmt.Sprintf("v/%d/h/%s/%s\x00", p, scenarioTenant, vk)), []byte(fmt.Sprintf("v/%d/h/%s/%s\x01", p, scenarioTenant, vk)))
		require.NoError(t, err)
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		require.NoError(t, it.Close())
		require.Equal(t, want.History, n, "visitor %s history entries stored", vk)
	}
	total := 0
	for p := range parts {
		v, err := store.Get(st.DB(), ProcessedKey(p, scenarioTenant))
		require.NoError(t, err)
		var n int
		_, _ = fmt.Sscan(string(v), &n)
		total += n
	}
	require.Equal(t, ex.Processed, total, "processed events")
	require.Equal(t, float64(ex.Duplicates), testutil.ToFloat64(m.Duplicates(scenarioTenant)), "duplicates")
	require.Equal(t, float64(ex.Bots), testutil.ToFloat64(m.bots.WithLabelValues(scenarioTenant)), "bot events")
	for i, fields := range ex.Enrichment {
		b, err := json.Marshal(&got[i])
		require.NoError(t, err)
		var j struct {
			Contrail map[string]any `json:"contrail"`
		}
		require.NoError(t, json.Unmarshal(b, &j))
		for k, want := range fields {
			require.Equal(t, want, fmt.Sprint(j.Contrail[k]), "event %d enrichment %s", i, k)
		}
	}
}

// recorder keeps a copy of each event as the processor left it.
type recorder struct {
	p    *Processor
	seen *[]event.Event
}

func (r recorder) Process(ctx context.Context, tx *shard.Tx, e *event.Event) error {
	err := r.p.Process(ctx, tx, e)
	(*r.seen)[tx.Index] = *e
	return err
}

func describeLead(e event.Event) string {
	user := e.UserID
	for u, id := range leadNames {
		if id == e.Enrichment.LeadID {
			user = u
		}
	}
	name := e.Event
	if e.Type == event.TypePage {
		name = e.Enrichment.Path
	}
	s := user + " " + e.Type.String()
	if name != "" {
		s += " " + name
	}
	if e.Enrichment.Backfill {
		s += " backfill"
	}
	return s
}

// leadNames maps the userIds used in scenarios to their lead ids.
var leadNames = func() map[string]string {
	m := map[string]string{}
	for _, u := range []string{"u1", "u2", "u3", "alice", "bob"} {
		m[u] = event.LeadID(scenarioTenant, u)
	}
	return m
}()

func buildEvent(t *testing.T, i int, se scenarioEvent, at *time.Time) event.Event {
	t.Helper()
	switch {
	case strings.HasPrefix(se.At, "+") || strings.HasPrefix(se.At, "-"):
		d, err := time.ParseDuration(se.At)
		require.NoError(t, err)
		*at = at.Add(d)
	case se.At != "":
		v, err := time.Parse(time.RFC3339, se.At)
		require.NoError(t, err)
		*at = v
	case at.IsZero():
		*at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	}
	recv := *at
	if se.Received != "" {
		d, err := time.ParseDuration(strings.TrimPrefix(se.Received, "+"))
		require.NoError(t, err)
		recv = at.Add(d)
	}
	id := se.ID
	if id == "" {
		id = fmt.Sprintf("m%d", i)
	}
	e := event.Event{
		Tenant: scenarioTenant, Type: event.ParseType(se.Type), MessageID: id, AnonymousID: se.Anon, UserID: se.User,
		PreviousID: se.Previous, Event: se.Event, Timestamp: *at, ReceivedAt: recv,
	}
	require.NotEqual(t, event.TypeUnknown, e.Type, "event %d type %q", i, se.Type)
	props := map[string]any{}
	for k, v := range se.Properties {
		props[k] = v
	}
	ctx := map[string]any{}
	if e.Type == event.TypePage {
		if se.Path != "" {
			props["path"] = se.Path
		}
		if se.URL != "" {
			props["url"] = se.URL
		}
		if se.Referrer != "" {
			props["referrer"] = se.Referrer
		}
	}
	if se.UA != "" {
		ctx["userAgent"] = se.UA
	}
	lib := se.Library
	if lib == "" {
		lib = "analytics.js"
	}
	ctx["library"] = map[string]any{"name": lib}
	if se.Campaign != nil {
		ctx["campaign"] = se.Campaign
	}
	if len(props) > 0 {
		e.Properties, _ = json.Marshal(props)
	}
	e.Context, _ = json.Marshal(ctx)
	return e
}
