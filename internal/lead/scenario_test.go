package lead_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/tenant"
)

// A scenario is a script of collector events and API writes for one
// tenant, run through the whole pipeline (visitor and lead shards), and
// what the lead shards must make of it. See testdata/scenarios/*.yaml.
//
// A lead is named by a reference: a userId ("alice"), "email:<address>"
// (looked up through the email index), or "emailid:<address>" (the id of
// a lead first known by that email).
type scenario struct {
	// Skip names a known bug that makes the scenario fail.
	Skip     string         `yaml:"skip"`
	Settings map[string]any `yaml:"settings"`
	Steps    []step         `yaml:"steps"`
	Expect   expectations   `yaml:"expect"`
}

type step struct {
	// Type is an event (page, screen, track, identify, alias, form) or an
	// API write (patch, score, list_add, list_remove, merge, erase).
	Type       string         `yaml:"type"`
	ID         string         `yaml:"id"` // messageId; default generated
	Anon       string         `yaml:"anon"`
	User       string         `yaml:"user"`
	Previous   string         `yaml:"previous"`
	Event      string         `yaml:"event"` // track: the event name
	Name       string         `yaml:"name"`  // form: the form's id; screen: its name
	Path       string         `yaml:"path"`  // "{i}" is the repeat's number
	Traits     map[string]any `yaml:"traits"`
	Properties map[string]any `yaml:"properties"`
	// At is RFC 3339, or ±duration from the previous step; default one
	// minute after it. Received is +duration after At; by default the
	// collector's clock, which never goes back.
	At       string `yaml:"at"`
	Received string `yaml:"received"`
	// Repeat sends the step that many times, Every apart (default 1m).
	Repeat int    `yaml:"repeat"`
	Every  string `yaml:"every"`

	// Lead is the lead an API write is for; Into a merge's winner.
	Lead         string  `yaml:"lead"`
	Into         string  `yaml:"into"`
	Change       int64   `yaml:"change"`
	List         string  `yaml:"list"`
	Email        *string `yaml:"email"`
	Unsubscribed *bool   `yaml:"unsubscribed"`

	// Hold leaves the step's messages queued, so the next step's inputs
	// race them; by default each step settles.
	Hold bool `yaml:"hold"`
	// Snapshot records the lead shards' whole state under a name;
	// Unchanged requires it to be the same as at that snapshot.
	Snapshot  string `yaml:"snapshot"`
	Unchanged string `yaml:"unchanged"`
	// Forgotten lists personal data that no stored key or value may
	// hold any more (after an erasure).
	Forgotten []string `yaml:"forgotten"`
}

type expectations struct {
	Leads    []leadExpect             `yaml:"leads"`
	Visitors map[string]visitorExpect `yaml:"visitors"`
	// Lists gives the members of lists, as lead references.
	Lists map[string][]string `yaml:"lists"`
	// Rejected counts the inputs a processor refused (sent to DEAD).
	Rejected int `yaml:"rejected"`
}

type leadExpect struct {
	Ref    string `yaml:"lead"`
	Exists *bool  `yaml:"exists"` // default true
	// Is is the lead the reference must resolve to (after merges).
	Is         string            `yaml:"is"`
	UserID     *string           `yaml:"user_id"`
	Email      *string           `yaml:"email"`
	Score      *int64            `yaml:"score"`
	Traits     map[string]any    `yaml:"traits"` // a null value: absent
	TraitTimes map[string]string `yaml:"trait_times"`
	Lists      []string          `yaml:"lists"`
	Visitors   *int              `yaml:"visitors"`
	Activities *int              `yaml:"activities"` // stored activities
	// Timeline (oldest first) and NewestFirst list the activities of the
	// given Types (all when empty) as "type detail [backfill]".
	Timeline    []string `yaml:"timeline"`
	NewestFirst []string `yaml:"timeline_newest_first"`
	Types       []string `yaml:"types"`
}

type visitorExpect struct {
	Lead    *string `yaml:"lead"` // the linked lead's reference, "" anonymous
	Erased  bool    `yaml:"erased"`
	History *int    `yaml:"history"` // anonymous history entries stored
}

func TestScenarios(t *testing.T) {
	forEachScenario(t, func(t *testing.T, sc scenario) { play(t, sc, false).check(sc.Expect) })
}

// TestScenariosLeadsFirst plays every scenario with the shards' messages
// delivered in another order: the outcome must not depend on it.
func TestScenariosLeadsFirst(t *testing.T) {
	forEachScenario(t, func(t *testing.T, sc scenario) { play(t, sc, true).check(sc.Expect) })
}

// TestScenariosDeterministic plays every scenario twice: the shards must
// store the same bytes, as a replay on another node would (DESIGN.md §5).
func TestScenariosDeterministic(t *testing.T) {
	forEachScenario(t, func(t *testing.T, sc scenario) {
		a, b := play(t, sc, false), play(t, sc, false)
		require.Equal(t, a.pl.keys(""), b.pl.keys(""), "state after two runs of the same script")
	})
}

// forEachScenario runs fn on each scenario of testdata/scenarios, in
// parallel; a scenario marked with a known bug is skipped.
func forEachScenario(t *testing.T, fn func(t *testing.T, sc scenario)) {
	files, err := filepath.Glob("testdata/scenarios/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			var sc scenario
			dec := yaml.NewDecoder(bytes.NewReader(raw))
			dec.KnownFields(true)
			require.NoError(t, dec.Decode(&sc), "reading %s", f)
			if sc.Skip != "" {
				t.Skip(sc.Skip)
			}
			fn(t, sc)
		})
	}
}

// runner plays one scenario.
type runner struct {
	t         *testing.T
	pl        *pipeline
	at, clock time.Time // the event time of the step, the collector's clock
	snapshots map[string]map[string]string
	names     map[string]string // lead id → reference, for describing merges
}

// play runs a scenario's steps through a new pipeline.
func play(t *testing.T, sc scenario, leadsFirst bool) *runner {
	var set tenant.Settings
	if sc.Settings != nil {
		b, err := json.Marshal(sc.Settings)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &set))
		require.NoError(t, set.Validate())
	}
	r := &runner{t: t, pl: newPipeline(t, 3, 3, set), snapshots: map[string]map[string]string{}, names: map[string]string{}}
	r.pl.leadsFirst = leadsFirst
	r.at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i, s := range sc.Steps {
		r.step(i, s)
	}
	r.pl.settle()
	return r
}

func (r *runner) step(i int, s step) {
	t := r.t
	switch {
	case s.Snapshot != "":
		r.pl.settle()
		r.snapshots[s.Snapshot] = r.pl.keys("l/")
		return
	case s.Unchanged != "":
		r.pl.settle()
		want, ok := r.snapshots[s.Unchanged]
		require.True(t, ok, "step %d: no snapshot %q", i, s.Unchanged)
		require.Equal(t, want, r.pl.keys("l/"), "step %d: the lead shards' state changed since snapshot %s", i, s.Unchanged)
		return
	case s.Forgotten != nil:
		r.pl.settle()
		all := r.pl.keys("")
		for _, data := range s.Forgotten {
			var found []string
			for k, v := range all {
				if strings.Contains(k, data) || strings.Contains(v, data) {
					found = append(found, fmt.Sprintf("%q = %q", k, v))
				}
			}
			require.Empty(t, found, "step %d: %q is still stored", i, data)
		}
		return
	}
	r.advance(i, s.At)
	n := max(s.Repeat, 1)
	every := time.Minute
	if s.Every != "" {
		d, err := time.ParseDuration(s.Every)
		require.NoError(t, err, "step %d every", i)
		every = d
	}
	for k := range n {
		if k > 0 {
			r.at = r.at.Add(every)
		}
		recv := r.at
		if s.Received != "" {
			d, err := time.ParseDuration(strings.TrimPrefix(s.Received, "+"))
			require.NoError(t, err, "step %d received", i)
			recv = r.at.Add(d)
		}
		if recv.Before(r.clock) {
			recv = r.clock
		}
		r.clock = recv
		r.input(i, k+1, s, recv)
	}
	if !s.Hold {
		r.pl.settle()
	}
}

// advance sets the step's event time.
func (r *runner) advance(i int, at string) {
	switch {
	case at == "" && i == 0:
	case at == "":
		r.at = r.at.Add(time.Minute)
	case strings.HasPrefix(at, "+") || strings.HasPrefix(at, "-"):
		d, err := time.ParseDuration(at)
		require.NoError(r.t, err, "step %d at", i)
		r.at = r.at.Add(d)
	default:
		v, err := time.Parse(time.RFC3339, at)
		require.NoError(r.t, err, "step %d at", i)
		r.at = v
	}
}

// input sends repetition k of step i.
func (r *runner) input(i, k int, s step, recv time.Time) {
	t := r.t
	switch s.Type {
	case "patch":
		x := lead.Patch{Email: s.Email, Unsubscribed: s.Unsubscribed}
		if s.Traits != nil {
			x.Traits = map[string]json.RawMessage{}
			for name, v := range s.Traits {
				x.Traits[name] = mustJSON(t, v)
			}
		}
		r.command(s, lead.CmdPatch, x)
	case "score":
		r.command(s, lead.CmdScore, lead.ScoreChange{Change: s.Change})
	case "list_add":
		r.command(s, lead.CmdListAdd, lead.ListChange{List: s.List})
	case "list_remove":
		r.command(s, lead.CmdListRemove, lead.ListChange{List: s.List})
	case "merge":
		require.NotEmpty(t, s.Into, "step %d: merge into whom?", i)
		r.command(s, lead.CmdMerge, lead.MergeInto{Winner: r.leadID(s.Into), By: "scenario"})
	case "erase":
		r.command(s, lead.CmdErase, struct{}{})
	default:
		r.pl.send(r.event(i, k, s, recv))
	}
}

func (r *runner) command(s step, name string, args any) {
	require.NotEmpty(r.t, s.Lead, "%s: which lead?", name)
	r.pl.command(r.leadID(s.Lead), name, args, r.at)
}

// event builds the collector's event for repetition k of step i.
func (r *runner) event(i, k int, s step, recv time.Time) event.Event {
	t := r.t
	typ := event.ParseType(s.Type)
	if s.Type == "form" {
		typ = event.TypeForm // not a Segment call: ParseType refuses it
	}
	require.NotEqual(t, event.TypeUnknown, typ, "step %d type %q", i, s.Type)
	path := strings.ReplaceAll(s.Path, "{i}", strconv.Itoa(k))
	e := event.Event{
		Tenant: testTenant, Type: typ, MessageID: s.ID, AnonymousID: s.Anon, UserID: s.User, PreviousID: s.Previous,
		Event: s.Event, Name: s.Name, Timestamp: r.at, ReceivedAt: recv,
	}
	if s.ID != "" && s.Repeat > 1 {
		e.MessageID = fmt.Sprintf("%s-%d", s.ID, k)
	}
	if s.User != "" {
		r.names[event.LeadID(testTenant, s.User)] = s.User
	}
	props := map[string]any{}
	for name, v := range s.Properties {
		props[name] = v
	}
	ctx := map[string]any{"library": map[string]any{"name": "analytics.js"}}
	if path != "" {
		if typ == event.TypePage {
			props["path"] = path
		} else {
			ctx["page"] = map[string]any{"path": path}
		}
	}
	if len(props) > 0 {
		e.Properties = mustJSON(t, props)
	}
	if s.Traits != nil {
		e.Traits = mustJSON(t, s.Traits)
		if email, ok := s.Traits["email"].(string); ok {
			norm := event.NormalizeEmail(email)
			r.names[lead.EmailLeadID(testTenant, norm)] = "emailid:" + norm
		}
	}
	e.Context = mustJSON(t, ctx)
	return e
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// leadID returns the id a reference names: a userId's, the lead an email
// is indexed to (else the id it would get), or an email lead's.
func (r *runner) leadID(ref string) string {
	switch {
	case strings.HasPrefix(ref, "email:"):
		email := event.NormalizeEmail(strings.TrimPrefix(ref, "email:"))
		if l, err := r.pl.reader.ByEmail(context.Background(), testTenant, email); err == nil {
			return l.ID
		}
		return lead.EmailLeadID(testTenant, email)
	case strings.HasPrefix(ref, "emailid:"):
		return lead.EmailLeadID(testTenant, event.NormalizeEmail(strings.TrimPrefix(ref, "emailid:")))
	}
	return event.LeadID(testTenant, ref)
}

// lookup reads a lead as the API would: by email, or by id.
func (r *runner) lookup(ref string) (*lead.Lead, error) {
	ctx := context.Background()
	switch {
	case strings.HasPrefix(ref, "email:"):
		return r.pl.reader.ByEmail(ctx, testTenant, strings.TrimPrefix(ref, "email:"))
	case strings.HasPrefix(ref, "emailid:"):
		return r.pl.reader.Get(ctx, testTenant, r.leadID(ref))
	}
	return r.pl.reader.ByUserID(ctx, testTenant, ref)
}

// describe writes an activity as the scenarios list it.
func (r *runner) describe(a lead.Activity) string {
	s := a.Type
	detail := ""
	switch a.Type {
	case lead.ActVisitPage:
		detail = a.Page
	case lead.ActTrack, lead.ActClickLink, lead.ActFillForm:
		detail = a.Event
	case lead.ActChangeField:
		detail = a.Field
	case lead.ActChangeScore:
		detail = fmt.Sprintf("%+d", a.Change)
	case lead.ActAddToList, lead.ActRemoveList:
		detail = a.List
	case lead.ActMergeLead:
		detail = a.Lead
		if n, ok := r.names[a.Lead]; ok {
			detail = n
		}
	}
	if detail != "" {
		s += " " + detail
	}
	if a.Backfill {
		s += " backfill"
	}
	return s
}
