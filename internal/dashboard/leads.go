package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/tenant"
)

// leadsView is the lead search page's data.
type leadsView struct {
	Q      string
	List   string
	Lists  []tenant.List
	Leads  []*lead.Lead
	Next   string
	Missed bool // a search found nobody
}

// leadsPage finds leads by email, userId or id, or pages through a list.
func (s *Server) leadsPage(w http.ResponseWriter, rq *request) {
	q := rq.URL.Query()
	v := leadsView{Q: strings.TrimSpace(q.Get("q")), List: q.Get("list"), Lists: rq.tenant.Lists}
	ctx := rq.Context()
	switch {
	case v.Q != "":
		// An email, else a userId, else a lead id: the first that names a lead.
		tries := []url.Values{{"user_id": {v.Q}}}
		if strings.Contains(v.Q, "@") {
			tries = []url.Values{{"email": {v.Q}}, {"user_id": {v.Q}}}
		}
		for _, params := range tries {
			var page api.LeadPage
			err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads", query: params}, &page)
			if err == nil && len(page.Leads) > 0 {
				v.Leads = page.Leads
				break
			}
			if err != nil && !notFound(err) {
				s.fail(w, rq, err)
				return
			}
		}
		if len(v.Leads) == 0 {
			var l lead.Lead
			err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads/" + url.PathEscape(v.Q)}, &l)
			if err == nil {
				v.Leads = []*lead.Lead{&l}
			} else if !notFound(err) {
				s.fail(w, rq, err)
				return
			}
		}
		if len(v.Leads) == 1 && q.Get("cursor") == "" {
			http.Redirect(w, rq.Request, "/leads/"+url.PathEscape(v.Leads[0].ID), http.StatusSeeOther)
			return
		}
		v.Missed = len(v.Leads) == 0
	case v.List != "":
		var page api.LeadPage
		params := url.Values{"list": {v.List}, "limit": {"50"}}
		if c := q.Get("cursor"); c != "" {
			params.Set("cursor", c)
		}
		if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads", query: params}, &page); err != nil {
			s.fail(w, rq, err)
			return
		}
		v.Leads, v.Next = page.Leads, page.NextCursor
	}
	s.render(w, rq, http.StatusOK, "leads", page{Title: "Leads", Nav: "leads", Data: v})
}

// notFound reports whether err is the API saying there is no such thing.
func notFound(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// leadView is a lead's page data.
type leadView struct {
	Lead       lead.Lead
	Lists      []string // names
	Traits     []trait
	Activities []activityRow
	Next       string
	Type       string
	Types      []string
	Runs       []api.RunView
	RunsError  string
	Campaigns  map[string]string // id → name
}

type trait struct{ Name, Value, Updated string }

type activityRow struct {
	lead.Activity
	Summary string
}

// leadPage shows a lead: profile, lists, score, its timeline (newest
// first, by pages, filtered by type) and its campaign runs.
func (s *Server) leadPage(w http.ResponseWriter, rq *request) {
	ctx := rq.Context()
	id := rq.PathValue("id")
	q := rq.URL.Query()
	v := leadView{Type: q.Get("type"), Types: lead.ActivityTypes}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads/" + url.PathEscape(id)}, &v.Lead); err != nil {
		s.fail(w, rq, err)
		return
	}
	names := map[string]string{}
	for _, l := range rq.tenant.Lists {
		names[l.ID] = l.Name
	}
	for _, l := range v.Lead.Lists {
		if n, ok := names[l]; ok {
			l = n
		}
		v.Lists = append(v.Lists, l)
	}
	loc := rq.tenant.Settings.Location()
	for k, raw := range v.Lead.Traits {
		t := trait{Name: k, Value: traitText(raw)}
		if at, ok := v.Lead.TraitTimes[k]; ok && !at.IsZero() {
			t.Updated = formatTime(at.In(loc))
		}
		v.Traits = append(v.Traits, t)
	}
	slices.SortFunc(v.Traits, func(a, b trait) int { return strings.Compare(a.Name, b.Name) })

	params := url.Values{"limit": {"50"}}
	if v.Type != "" {
		params.Set("type", v.Type)
	}
	if c := q.Get("cursor"); c != "" {
		params.Set("cursor", c)
	}
	var acts api.ActivityPage
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads/" + url.PathEscape(v.Lead.ID) + "/activities", query: params}, &acts); err != nil {
		s.fail(w, rq, err)
		return
	}
	for _, a := range acts.Activities {
		a.Time = a.Time.In(loc)
		v.Activities = append(v.Activities, activityRow{Activity: a, Summary: activitySummary(a, names)})
	}
	v.Next = acts.NextCursor

	var runs struct {
		Runs []api.RunView `json:"runs"`
	}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/leads/" + url.PathEscape(v.Lead.ID) + "/runs"}, &runs); err != nil {
		v.RunsError = errorText(err)
	}
	v.Runs = runs.Runs
	v.Campaigns = s.campaignNames(rq)
	title := v.Lead.Email
	if title == "" {
		title = v.Lead.UserID
	}
	if title == "" {
		title = v.Lead.ID
	}
	s.render(w, rq, http.StatusOK, "lead", page{Title: title, Nav: "leads", Data: v})
}

// traitText shows a trait's JSON value: a string bare, the rest as JSON.
func traitText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// activitySummary says what an activity was, in a line.
func activitySummary(a lead.Activity, lists map[string]string) string {
	list := a.List
	if n, ok := lists[list]; ok {
		list = n
	}
	switch a.Type {
	case lead.ActVisitPage:
		s := "Visited " + a.Page
		if a.Referrer != "" {
			s += " from " + a.Referrer
		}
		return s
	case lead.ActClickLink:
		var p struct {
			Href string `json:"href"`
		}
		_ = json.Unmarshal(a.Properties, &p)
		if p.Href != "" {
			return "Clicked a link to " + p.Href
		}
		return "Clicked a link on " + a.Page
	case lead.ActFillForm:
		return "Filled out form " + a.Event
	case lead.ActTrack:
		return "Did " + a.Event
	case lead.ActIdentify:
		return "Identified"
	case lead.ActCreateLead:
		return "Became a lead"
	case lead.ActChangeField:
		return "Changed " + a.Field + " from " + orNone(a.Old) + " to " + orNone(a.New)
	case lead.ActChangeScore:
		s := "Score " + signed(a.Change)
		if a.Score != nil {
			s += " → " + formatInt(*a.Score)
		}
		return s
	case lead.ActAddToList:
		return "Added to list " + list
	case lead.ActRemoveList:
		return "Removed from list " + list
	case lead.ActMergeLead:
		return "Merged with lead " + a.Lead
	case lead.ActCampaignStep:
		return "Campaign step " + a.Step + ": " + a.Result
	case lead.ActInteresting:
		return "Interesting moment: " + a.Description
	}
	return a.Type
}

func orNone(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "(none)"
	}
	return traitText(raw)
}

func signed(n int64) string {
	if n >= 0 {
		return "+" + formatInt(n)
	}
	return formatInt(n)
}
