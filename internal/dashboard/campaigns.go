package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/campaign"
)

// campaignRow is a campaign in the list.
type campaignRow struct {
	campaign.Campaign
	Stats *campaign.Stats
}

// campaignsPage lists the tenant's campaigns with their counters.
func (s *Server) campaignsPage(w http.ResponseWriter, rq *request) {
	var list struct {
		Campaigns []campaign.Campaign `json:"campaigns"`
	}
	if err := s.do(rq.Context(), &rq.sess, call{method: "GET", path: "/api/v1/campaigns"}, &list); err != nil {
		s.fail(w, rq, err)
		return
	}
	sort.Slice(list.Campaigns, func(i, j int) bool { return list.Campaigns[i].UpdatedAt.After(list.Campaigns[j].UpdatedAt) })
	rows := make([]campaignRow, len(list.Campaigns))
	for i, c := range list.Campaigns {
		rows[i].Campaign = c
		if c.Version > 0 {
			var st api.StatsView
			if s.do(rq.Context(), &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(c.ID) + "/stats"}, &st) == nil {
				rows[i].Stats = &st.Stats
			}
		}
	}
	s.render(w, rq, http.StatusOK, "campaigns", page{Title: "Campaigns", Nav: "campaigns", Data: rows})
}

// campaignNames maps the tenant's campaign ids to names.
func (s *Server) campaignNames(rq *request) map[string]string {
	var list struct {
		Campaigns []campaign.Campaign `json:"campaigns"`
	}
	out := map[string]string{}
	if s.do(rq.Context(), &rq.sess, call{method: "GET", path: "/api/v1/campaigns"}, &list) == nil {
		for _, c := range list.Campaigns {
			out[c.ID] = c.Name
		}
	}
	return out
}

// flowStep is one step of a campaign's flow with its counters.
type flowStep struct {
	campaign.StepStats
	Depth int
	What  string
}

// campaignView is a campaign's page data.
type campaignView struct {
	Campaign campaign.Campaign
	Stats    *campaign.Stats
	Flow     []flowStep
	Runs     []api.RunView
	Status   string
	Statuses []string
	Error    string
}

var runStatuses = []string{campaign.RunRunning, campaign.RunWaiting, campaign.RunAwaiting, campaign.RunCompleted, campaign.RunFailed, campaign.RunRemoved}

// campaignPage shows a campaign: its flow with how many leads took and
// wait in each step, its counters, and its latest runs.
func (s *Server) campaignPage(w http.ResponseWriter, rq *request) {
	ctx := rq.Context()
	id := rq.PathValue("id")
	v := campaignView{Status: rq.URL.Query().Get("status"), Statuses: runStatuses}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(id)}, &v.Campaign); err != nil {
		s.fail(w, rq, err)
		return
	}
	if v.Campaign.Version > 0 {
		var st api.StatsView
		if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(id) + "/stats"}, &st); err != nil {
			v.Error = errorText(err)
		} else {
			v.Stats = &st.Stats
		}
		params := url.Values{"limit": {"50"}}
		if v.Status != "" {
			params.Set("status", v.Status)
		}
		var runs struct {
			Runs []api.RunView `json:"runs"`
		}
		if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(id) + "/runs", query: params}, &runs); err != nil {
			v.Error = errorText(err)
		}
		v.Runs = runs.Runs
	}
	v.Flow = flowOf(v.Campaign, v.Stats)
	s.render(w, rq, http.StatusOK, "campaign", page{Title: v.Campaign.Name, Nav: "campaigns", Data: v})
}

// flowOf lists a campaign's steps, nested, with their counters: those of
// its published version when it has one, else its draft's steps.
func flowOf(c campaign.Campaign, st *campaign.Stats) []flowStep {
	var out []flowStep
	if st != nil && len(st.Steps) > 0 {
		for _, row := range st.Steps {
			f := flowStep{StepStats: row, Depth: strings.Count(row.Path, ".flow[") + strings.Count(row.Path, ".default[")}
			if !c.Unpublished { // the draft is the published version
				if step, ok := stepAt(c.Spec, row.Path); ok {
					f.What = describeStep(step)
				}
			}
			out = append(out, f)
		}
		return out
	}
	var walk func(steps []campaign.Step, path string, depth int)
	walk = func(steps []campaign.Step, path string, depth int) {
		for i, step := range steps {
			p := path + "[" + strconv.Itoa(i) + "]"
			out = append(out, flowStep{StepStats: campaign.StepStats{PC: -1, Path: p, Type: step.Type}, Depth: depth, What: describeStep(step)})
			for b, br := range step.Branches {
				walk(br.Flow, p+".branches["+strconv.Itoa(b)+"].flow", depth+1)
			}
			walk(step.Default, p+".default", depth+1)
		}
	}
	walk(c.Spec.Flow, "flow", 0)
	return out
}

var pathPart = regexp.MustCompile(`(\w+)\[(\d+)\]`)

// stepAt finds the step at a path such as "flow[1].branches[0].flow[2]"
// or "flow[3].default[0]".
func stepAt(spec campaign.Spec, path string) (campaign.Step, bool) {
	steps := spec.Flow
	var cur *campaign.Step
	inBranch := false
	for k, m := range pathPart.FindAllStringSubmatch(path, -1) {
		i, _ := strconv.Atoi(m[2])
		switch {
		case m[1] == "flow" && (k == 0 || inBranch):
			// steps is the top flow, or the branch's just read
		case m[1] == "default" && cur != nil:
			steps = cur.Default
		case m[1] == "branches" && cur != nil && i < len(cur.Branches):
			steps, inBranch = cur.Branches[i].Flow, true
			continue
		default:
			return campaign.Step{}, false
		}
		if i >= len(steps) {
			return campaign.Step{}, false
		}
		cur, inBranch = &steps[i], false
	}
	if cur == nil {
		return campaign.Step{}, false
	}
	return *cur, true
}

// describeStep says what a step does, in a line.
func describeStep(s campaign.Step) string {
	switch s.Type {
	case "change_score":
		return "score " + signed(s.Change)
	case "change_field":
		return s.Field + " = " + string(s.Value)
	case "add_to_list", "remove_from_list":
		return s.List
	case "wait":
		if s.Until != "" {
			return "until " + s.Until
		}
		return s.Duration
	case "wait_for_event":
		t := s.Timeout
		if s.Trigger != nil {
			return s.Trigger.Type + ", at most " + t
		}
		return t
	case "choice":
		conds := make([]string, len(s.Branches))
		for i, b := range s.Branches {
			conds[i] = "if " + b.If
		}
		return strings.Join(conds, " · ") + " · else"
	case "call_webhook":
		m := s.Method
		if m == "" {
			m = "POST"
		}
		return m + " " + s.URL
	case "send_email":
		return s.Subject
	case "request_campaign":
		return s.Campaign + strings.Join(s.Campaigns, ", ")
	case "interesting_moment":
		return s.Description
	}
	return ""
}

// runPage shows one run: each step it took, when, and how it went (a
// webhook's status and attempts).
func (s *Server) runPage(w http.ResponseWriter, rq *request) {
	ctx := rq.Context()
	id, runID, leadID := rq.PathValue("id"), rq.PathValue("run"), rq.URL.Query().Get("lead")
	var c campaign.Campaign
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(id)}, &c); err != nil {
		s.fail(w, rq, err)
		return
	}
	params := url.Values{"limit": {"1000"}}
	if leadID != "" {
		params.Set("lead", leadID)
	}
	var runs struct {
		Runs []api.RunView `json:"runs"`
	}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(id) + "/runs", query: params}, &runs); err != nil {
		s.fail(w, rq, err)
		return
	}
	for _, run := range runs.Runs {
		if run.ID == runID {
			s.render(w, rq, http.StatusOK, "run", page{Title: "Run " + run.ID, Nav: "campaigns", Data: struct {
				Campaign campaign.Campaign
				Run      api.RunView
			}{c, run}})
			return
		}
	}
	s.renderError(w, rq, http.StatusNotFound, "No such run of this campaign.")
}

// editorView is the campaign editor's data.
type editorView struct {
	ID       string // empty for a new campaign
	Name     string
	Source   string
	Problems []campaign.FieldError
	Lines    []sourceLine
	Message  string
}

// sourceLine is a numbered line of the pasted campaign, with the problems
// placed on it.
type sourceLine struct {
	N        int
	Text     string
	Problems []string
}

// exampleCampaign is what a new campaign starts from.
const exampleCampaign = `name: Pricing page visitors
triggers:
  - type: visits_web_page
    constraint: event.page == "/pricing"
qualification: once
flow:
  - type: change_score
    change: 10
  - type: add_to_list
    list: Hot
  - type: wait
    duration: 10m
  - type: choice
    branches:
      - if: lead.score > 50
        flow:
          - type: interesting_moment
            description: Hot lead looked at pricing
`

// campaignEditor shows a campaign's draft (or an example) to edit.
func (s *Server) campaignEditor(w http.ResponseWriter, rq *request) {
	v := editorView{ID: rq.PathValue("id"), Source: exampleCampaign}
	if v.ID != "" {
		var c campaign.Campaign
		if err := s.do(rq.Context(), &rq.sess, call{method: "GET", path: "/api/v1/campaigns/" + url.PathEscape(v.ID)}, &c); err != nil {
			s.fail(w, rq, err)
			return
		}
		v.Name, v.Source = c.Name, specYAML(c.Spec)
	}
	s.render(w, rq, http.StatusOK, "editor", page{Title: editorTitle(v), Nav: "campaigns", Data: v})
}

func editorTitle(v editorView) string {
	if v.ID == "" {
		return "New campaign"
	}
	return "Edit " + v.Name
}

// saveCampaign stores the pasted campaign as a new campaign or as the
// draft of one, and publishes it when asked; problems are shown on the
// lines they are about.
func (s *Server) saveCampaign(w http.ResponseWriter, rq *request) {
	rq.Body = http.MaxBytesReader(w, rq.Body, 1<<20+4096)
	v := editorView{ID: rq.PathValue("id"), Source: rq.PostFormValue("spec")}
	c := call{method: "POST", path: "/api/v1/campaigns", body: []byte(v.Source), contentType: "application/yaml"}
	if v.ID != "" {
		c.method, c.path = "PUT", "/api/v1/campaigns/"+url.PathEscape(v.ID)
	}
	var saved campaign.Campaign
	err := s.do(rq.Context(), &rq.sess, c, &saved)
	if err == nil && rq.PostFormValue("publish") != "" {
		err = s.do(rq.Context(), &rq.sess, call{method: "POST", path: "/api/v1/campaigns/" + url.PathEscape(saved.ID) + "/publish"}, &saved)
		if err == nil {
			http.Redirect(w, rq.Request, "/campaigns/"+url.PathEscape(saved.ID)+"?flash=Published+version+"+strconv.Itoa(saved.Version), http.StatusSeeOther)
			return
		}
		v.ID = saved.ID // saved, not published: edit the stored draft now
	}
	if err == nil {
		http.Redirect(w, rq.Request, "/campaigns/"+url.PathEscape(saved.ID)+"?flash=Saved", http.StatusSeeOther)
		return
	}
	var e *apiError
	if !errors.As(err, &e) || e.Status >= 500 {
		s.fail(w, rq, err)
		return
	}
	v.Message, v.Problems = e.Message, e.Problems
	if len(v.Problems) > 0 {
		v.Message = "The campaign has " + strconv.Itoa(len(v.Problems)) + " problem(s); each is marked on its line below."
	}
	v.Lines = placeProblems(v.Source, v.Problems)
	s.render(w, rq, http.StatusUnprocessableEntity, "editor", page{Title: editorTitle(v), Nav: "campaigns", Data: v})
}

// placeProblems numbers the source's lines and puts each problem on the
// line the API placed it at (or the first line when it could not).
func placeProblems(src string, probs []campaign.FieldError) []sourceLine {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	out := make([]sourceLine, len(lines))
	for i, l := range lines {
		out[i] = sourceLine{N: i + 1, Text: l}
	}
	for _, p := range probs {
		i := 0
		if p.At != nil && p.At.Line >= 1 && p.At.Line <= len(out) {
			i = p.At.Line - 1
		}
		msg := p.Message
		if p.Path != "" {
			msg = p.Path + ": " + msg
		}
		if p.Column > 0 && isExpression(p.Path) {
			msg += " (at column " + strconv.Itoa(p.Column) + " of the expression)"
		}
		out[i].Problems = append(out[i].Problems, msg)
	}
	return out
}

// isExpression reports whether path names an expression: a constraint, a
// filter or a choice's condition.
func isExpression(path string) bool {
	return strings.HasSuffix(path, ".constraint") || strings.HasSuffix(path, ".if") || strings.HasPrefix(path, "filters[")
}

// specYAML writes a campaign as YAML, in the order of its fields.
func specYAML(spec campaign.Spec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		return ""
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil { // JSON is YAML
		return string(b)
	}
	blockStyle(&n)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return string(b)
	}
	return out.String()
}

// blockStyle drops the flow style JSON brought, so that YAML is written
// in blocks.
func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle && n.Tag == "!!str" {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// campaignAction publishes, pauses or resumes a campaign.
func (s *Server) campaignAction(w http.ResponseWriter, rq *request) {
	id, action := rq.PathValue("id"), rq.PathValue("action")
	switch action {
	case "publish", "pause", "resume":
	default:
		s.renderError(w, rq, http.StatusNotFound, "No such action.")
		return
	}
	var c campaign.Campaign
	err := s.do(rq.Context(), &rq.sess, call{method: "POST", path: "/api/v1/campaigns/" + url.PathEscape(id) + "/" + action}, &c)
	back := "/campaigns/" + url.PathEscape(id)
	if err != nil {
		var e *apiError
		if errors.As(err, &e) && e.Status < 500 && e.Status != http.StatusNotFound {
			http.Redirect(w, rq.Request, back+"?flash="+url.QueryEscape("Could not "+action+": "+e.Message), http.StatusSeeOther)
			return
		}
		s.fail(w, rq, err)
		return
	}
	done := map[string]string{"publish": "Published version " + strconv.Itoa(c.Version), "pause": "Paused: it takes no new leads; runs under way go on", "resume": "Resumed"}[action]
	http.Redirect(w, rq.Request, back+"?flash="+url.QueryEscape(done), http.StatusSeeOther)
}
