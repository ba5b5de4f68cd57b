package campaign_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/lead"
)

// scenario is a script in testdata/scenarios: campaigns, then inputs at
// given times, then what must have happened.
type scenario struct {
	Description string          `yaml:"description"`
	Campaigns   []scenarioCamp  `yaml:"campaigns"`
	Inputs      []scenarioInput `yaml:"inputs"`
	Expect      struct {
		Leads    map[string]map[string]any `yaml:"leads"`
		Runs     map[string][]expectRun    `yaml:"runs"`
		Effects  []map[string]any          `yaml:"effects"`
		Timeline map[string][]string       `yaml:"timeline"`
		Stats    map[string]map[string]int `yaml:"stats"`
	} `yaml:"expect"`
}

type scenarioCamp struct {
	ID   string    `yaml:"id"`
	Spec yaml.Node `yaml:"spec"`
}

type scenarioInput struct {
	At         string            `yaml:"at"`
	Lead       string            `yaml:"lead"`
	Page       string            `yaml:"page"`
	Track      string            `yaml:"track"`
	Properties map[string]any    `yaml:"properties"`
	Identify   map[string]any    `yaml:"identify"`
	Patch      map[string]any    `yaml:"patch"`
	Score      int64             `yaml:"score"`
	ListAdd    string            `yaml:"list_add"`
	ListRemove string            `yaml:"list_remove"`
	Request    *campaign.Request `yaml:"request"`
	Timers     bool              `yaml:"timers"`
	Repeat     int               `yaml:"repeat"`
	Backfill   bool              `yaml:"backfill"`
	// Publish puts a new version of a campaign live; Pause takes one out.
	Publish *scenarioCamp `yaml:"publish"`
	Pause   string        `yaml:"pause"`
}

type expectRun struct {
	Campaign string   `yaml:"campaign"`
	Version  int      `yaml:"version"`
	Status   string   `yaml:"status"`
	Steps    []string `yaml:"steps"`
	TimedOut *bool    `yaml:"timed_out"`
}

// leadRefs are "$ANN" in an expected value: the id of lead ann.
var leadRefs = regexp.MustCompile(`\$[A-Z]+`)

// base is the scenarios' day: a Monday.
var base = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func parseAt(tb testing.TB, s string) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	day := 0
	if d, rest, ok := strings.Cut(s, " "); ok && strings.HasPrefix(d, "+") {
		n, err := strconv.Atoi(d[1:])
		require.NoError(tb, err, "day offset %q", d)
		day, s = n, rest
	}
	layout := "15:04"
	if strings.Count(s, ":") == 2 {
		layout = "15:04:05"
	}
	t, err := time.Parse(layout, s)
	require.NoError(tb, err, "time %q: want RFC 3339, HH:MM or +D HH:MM", s)
	return base.AddDate(0, 0, day).Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second)
}

func specOf(tb testing.TB, n yaml.Node) campaign.Spec {
	tb.Helper()
	b, err := yaml.Marshal(&n)
	require.NoError(tb, err)
	spec, err := campaign.Parse(b)
	require.NoError(tb, err)
	return spec
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			var sc scenario
			require.NoError(t, yaml.Unmarshal(b, &sc))
			runScenario(t, &sc)
		})
	}
}

func runScenario(t *testing.T, sc *scenario) {
	p := newPipeline(t)
	for _, c := range sc.Campaigns {
		p.cat.add(t, p.x, c.ID, specOf(t, c.Spec))
	}
	for i, in := range sc.Inputs {
		at := parseAt(t, in.At)
		require.False(t, at.Before(p.now), "input %d: time goes backwards", i)
		p.now = at
		switch {
		case in.Publish != nil:
			p.cat.add(t, p.x, in.Publish.ID, specOf(t, in.Publish.Spec))
			continue
		case in.Pause != "":
			p.cat.pause(in.Pause)
			continue
		case in.Timers:
			p.fireTimers()
			continue
		}
		require.NotEmpty(t, in.Lead, "input %d: a lead is required", i)
		var e event.Event
		switch {
		case in.Page != "":
			e = visit(in.Lead, in.Page, at)
		case in.Track != "":
			props, _ := json.Marshal(in.Properties)
			e = track(in.Lead, in.Track, string(props), at)
		case in.Identify != nil:
			traits, _ := json.Marshal(in.Identify)
			e = identify(in.Lead, string(traits), at)
		case in.Patch != nil:
			var patch lead.Patch
			b, _ := json.Marshal(in.Patch)
			require.NoError(t, json.Unmarshal(b, &patch))
			e = command(t, in.Lead, lead.CmdPatch, patch, at)
		case in.Score != 0:
			e = command(t, in.Lead, lead.CmdScore, lead.ScoreChange{Change: in.Score}, at)
		case in.ListAdd != "":
			e = command(t, in.Lead, lead.CmdListAdd, lead.ListChange{List: in.ListAdd}, at)
		case in.ListRemove != "":
			e = command(t, in.Lead, lead.CmdListRemove, lead.ListChange{List: in.ListRemove}, at)
		case in.Request != nil:
			e = command(t, in.Lead, campaign.CmdRequest, in.Request, at)
		default:
			t.Fatalf("input %d: nothing to do", i)
		}
		if in.Backfill {
			// History attached at promotion: its own time is older; it
			// arrives now.
			e.Enrichment.Backfill = true
			e.ReceivedAt = at
			e.Timestamp = at.Add(-1 * time.Hour)
		}
		n := max(in.Repeat, 1)
		events := make([]event.Event, n)
		for j := range events {
			events[j] = e
			events[j].MessageID = e.MessageID + "-" + string(rune('a'+j%26)) + string(rune('a'+j/26))
		}
		p.apply(events...)
	}
	checkScenario(t, p, sc)
}

func checkScenario(t *testing.T, p *pipeline, sc *scenario) {
	for name, want := range sc.Expect.Leads {
		l := p.lead(name)
		require.NotNil(t, l, "lead %s", name)
		b, _ := json.Marshal(l)
		var got map[string]any
		require.NoError(t, json.Unmarshal(b, &got))
		for k, v := range want {
			wb, _ := json.Marshal(v)
			gb, _ := json.Marshal(got[k])
			if k == "traits" { // compare only the traits named
				var gt map[string]any
				_ = json.Unmarshal(gb, &gt)
				for tk, tv := range v.(map[string]any) {
					a, _ := json.Marshal(tv)
					g, _ := json.Marshal(gt[tk])
					assert.JSONEq(t, string(a), string(g), "lead %s trait %s", name, tk)
				}
				continue
			}
			assert.JSONEq(t, string(wb), string(gb), "lead %s field %s", name, k)
		}
	}
	for name, want := range sc.Expect.Runs {
		runs := p.runs(name)
		slices.Reverse(runs) // oldest first
		got := make([]expectRun, len(runs))
		for i, r := range runs {
			got[i] = expectRun{Campaign: r.Campaign, Version: r.Version, Status: r.Status}
			for _, s := range r.Steps {
				got[i].Steps = append(got[i].Steps, s.Type)
			}
			if want := indexOr(want, i); want != nil && want.TimedOut != nil {
				to := r.TimedOut
				got[i].TimedOut = &to
			}
			if want := indexOr(want, i); want != nil && want.Version == 0 {
				got[i].Version = 0
			}
		}
		assert.Equal(t, want, got, "runs of %s", name)
	}
	if sc.Expect.Effects != nil {
		got := make([]map[string]any, len(p.effects))
		for i, j := range p.effects {
			got[i] = effectView(j, sc.Expect.Effects, i)
		}
		want := make([]map[string]any, len(sc.Expect.Effects))
		for i, e := range sc.Expect.Effects {
			want[i] = map[string]any{}
			for k, v := range e {
				if k == "lead" {
					v = leadID(v.(string))
				}
				if str, ok := v.(string); ok {
					v = leadRefs.ReplaceAllStringFunc(str, func(m string) string { return leadID(strings.ToLower(m[1:])) })
				}
				want[i][k] = v
			}
		}
		assert.Equal(t, want, got, "external effects")
	}
	for name, want := range sc.Expect.Timeline {
		acts, _, err := lead.NewReader(p.st, 1).Activities(t.Context(), testTenant, leadID(name), lead.ActivityQuery{Limit: 1000})
		require.NoError(t, err)
		slices.Reverse(acts)
		var got []string
		for _, a := range acts {
			got = append(got, a.Type)
		}
		assert.Equal(t, want, got, "timeline of %s", name)
	}
	for id, want := range sc.Expect.Stats {
		ver, _ := p.cat.Active(testTenant, id)
		st, err := campaign.NewReader(p.st, 1).Stats(testTenant, id, ver)
		require.NoError(t, err)
		got := map[string]int{"entered": int(st.Entered), "completed": int(st.Completed), "failed": int(st.Failed), "removed": int(st.Removed), "waiting": int(st.Waiting)}
		for k := range got {
			if _, ok := want[k]; !ok {
				delete(got, k)
			}
		}
		assert.Equal(t, want, got, "stats of %s", id)
	}
}

func indexOr[T any](xs []T, i int) *T {
	if i < len(xs) {
		return &xs[i]
	}
	return nil
}

// effectView is an effect with the fields the scenario names.
func effectView(j deliver.Job, want []map[string]any, i int) map[string]any {
	all := map[string]any{
		"kind": j.Kind, "lead": j.Lead, "campaign": j.Campaign, "url": j.URL, "method": j.Method, "body": j.Body,
		"to": j.To, "subject": j.Subject, "text": j.Text, "html": j.HTML, "from": j.From, "step": j.Step, "version": j.Version,
	}
	out := map[string]any{}
	fields := []string{"kind", "lead"}
	if i < len(want) {
		fields = fields[:0]
		for k := range want[i] {
			fields = append(fields, k)
		}
	}
	for _, k := range fields {
		out[k] = all[k]
	}
	return out
}

// sortJobs orders effects as they were asked for: by time, run, step.
func sortJobs(jobs []deliver.Job) {
	slices.SortStableFunc(jobs, func(a, b deliver.Job) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if c := strings.Compare(a.Run, b.Run); c != 0 {
			return c
		}
		return a.Step - b.Step
	})
}
