package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/config"
)

// leadView is a lead as the API answers it.
type leadView struct {
	ID         string                     `json:"id"`
	UserID     string                     `json:"user_id"`
	Email      string                     `json:"email"`
	Score      int64                      `json:"score"`
	Traits     map[string]json.RawMessage `json:"traits"`
	Lists      []string                   `json:"lists"`
	Visitors   []string                   `json:"visitors"`
	MergedFrom []string                   `json:"merged_from"`
}

type activityView struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Backfill bool      `json:"backfill"`
	Page     string    `json:"page"`
	Event    string    `json:"event"`
	Field    string    `json:"field"`
	List     string    `json:"list"`
	Change   int64     `json:"change"`
}

type activityPage struct {
	Activities []activityView `json:"activities"`
	NextCursor string         `json:"next_cursor"`
}

// waitLead polls until the lead query answers.
func waitLead(t testing.TB, n *testNode, key, query string, ok func(leadView) bool) leadView {
	t.Helper()
	var got leadView
	require.Eventually(t, func() bool {
		var page struct {
			Leads []leadView `json:"leads"`
		}
		st, _ := apiDo(t, n, key, http.MethodGet, "/api/v1/leads?"+query, nil, &page)
		if st != http.StatusOK || len(page.Leads) != 1 {
			return false
		}
		got = page.Leads[0]
		return ok == nil || ok(got)
	}, 10*time.Second, 10*time.Millisecond, "lead %s", query)
	return got
}

func TestLeadPromotionBackfill(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Log.Partitions, c.Log.LeadPartitions = 4, 4 })
	_, wk, ak := createTenant(t, n, "acme")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	page := func(id, path string, at time.Time) map[string]any {
		return map[string]any{"type": "page", "messageId": id, "anonymousId": "anon-1", "timestamp": at.Format(time.RFC3339),
			"properties": map[string]any{"path": path, "url": "https://acme.test" + path}}
	}
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil,
		page("p1", "/", base), page("p2", "/pricing", base.Add(time.Minute)), page("p3", "/docs", base.Add(2*time.Minute)))})
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, map[string]any{
		"type": "identify", "messageId": "i1", "anonymousId": "anon-1", "userId": "u-1",
		"timestamp": base.Add(3 * time.Minute).Format(time.RFC3339), "traits": map[string]any{"email": "Ann@Acme.test", "plan": "pro"},
	})})
	l := waitLead(t, n, ak, "user_id=u-1", func(l leadView) bool { return l.Email == "ann@acme.test" })
	require.Equal(t, "u-1", l.UserID)
	require.Equal(t, []string{"anon-1"}, l.Visitors)

	var acts activityPage
	st, body := apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+l.ID+"/activities?limit=100", nil, &acts)
	require.Equal(t, http.StatusOK, st, "%s", body)
	var pages []string
	for _, a := range acts.Activities {
		if a.Type == "visit_page" {
			require.True(t, a.Backfill, "anonymous page %s is marked back-fill", a.Page)
			pages = append(pages, a.Page)
		}
	}
	require.Equal(t, []string{"/docs", "/pricing", "/"}, pages, "newest first")
	byEmail := waitLead(t, n, ak, "email=ANN@acme.test", nil)
	require.Equal(t, l.ID, byEmail.ID)
}

// identifyLead sends an identify and waits for its lead.
func identifyLead(t testing.TB, n *testNode, wk, ak, anon, user string, traits map[string]any) leadView {
	t.Helper()
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, map[string]any{
		"type": "identify", "anonymousId": anon, "userId": user, "traits": traits,
	})})
	return waitLead(t, n, ak, "user_id="+user, nil)
}

func TestLeadAPIWrites(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Log.Partitions, c.Log.LeadPartitions = 4, 4 })
	_, wk, ak := createTenant(t, n, "acme")
	l := identifyLead(t, n, wk, ak, "dev-1", "u-1", map[string]any{"email": "a@acme.test"})

	// Patch: fields and flags, answered after they are applied.
	var got leadView
	st, body := apiDo(t, n, ak, http.MethodPatch, "/api/v1/leads/"+l.ID, map[string]any{
		"traits": map[string]any{"company": "Acme", "email": "new@acme.test"}, "unsubscribed": true,
	}, &got)
	require.Equal(t, http.StatusOK, st, "%s", body)
	require.JSONEq(t, `"Acme"`, string(got.Traits["company"]))
	require.Equal(t, "new@acme.test", got.Email)
	waitLead(t, n, ak, "email=new@acme.test", nil)
	st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads?email=a@acme.test", nil, nil)
	require.Equal(t, http.StatusNotFound, st, "the old email no longer finds the lead")

	// Score.
	st, body = apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/"+l.ID+"/score", map[string]any{"change": 10}, &got)
	require.Equal(t, http.StatusOK, st, "%s", body)
	require.Equal(t, int64(10), got.Score)
	st, _ = apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/"+l.ID+"/score", map[string]any{"change": -3}, &got)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, int64(7), got.Score)

	// Lists: create, add by id, email and userId (one unknown), page.
	l2 := identifyLead(t, n, wk, ak, "dev-2", "u-2", map[string]any{"email": "b@acme.test"})
	var list struct {
		ID string `json:"id"`
	}
	st, body = apiDo(t, n, ak, http.MethodPost, "/api/v1/lists", map[string]any{"name": "Hot"}, &list)
	require.Equal(t, http.StatusCreated, st, "%s", body)
	var res struct {
		Changed  int      `json:"changed"`
		NotFound []string `json:"not_found"`
	}
	require.Eventually(t, func() bool {
		st, _ = apiDo(t, n, ak, http.MethodPost, "/api/v1/lists/"+list.ID+"/members", map[string]any{
			"leads": []string{l.ID}, "emails": []string{"b@acme.test"}, "user_ids": []string{"nobody"},
		}, &res)
		return st == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "the node knows the new list")
	require.Equal(t, 2, res.Changed)
	require.Equal(t, []string{"nobody"}, res.NotFound)
	var page struct {
		Leads      []leadView `json:"leads"`
		NextCursor string     `json:"next_cursor"`
	}
	st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads?list=Hot&limit=1", nil, &page)
	require.Equal(t, http.StatusOK, st)
	require.Len(t, page.Leads, 1)
	require.NotEmpty(t, page.NextCursor)
	first := page.Leads[0].ID
	st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads?list="+list.ID+"&limit=1&cursor="+page.NextCursor, nil, &page)
	require.Equal(t, http.StatusOK, st)
	require.Len(t, page.Leads, 1)
	require.ElementsMatch(t, []string{l.ID, l2.ID}, []string{first, page.Leads[0].ID})
	require.Empty(t, page.NextCursor)

	// The timeline holds each change, newest first; a type filter selects.
	var acts activityPage
	st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+l.ID+"/activities?type=change_score,add_to_list", nil, &acts)
	require.Equal(t, http.StatusOK, st)
	var types []string
	for _, a := range acts.Activities {
		types = append(types, a.Type)
	}
	require.Equal(t, []string{"add_to_list", "change_score", "change_score"}, types)
	// Pagination: one at a time reaches the end and repeats nothing.
	seen := map[string]bool{}
	cursor := ""
	for i := 0; ; i++ {
		require.Less(t, i, 100)
		st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+l.ID+"/activities?limit=1&cursor="+cursor, nil, &acts)
		require.Equal(t, http.StatusOK, st)
		for _, a := range acts.Activities {
			require.False(t, seen[a.ID], "activity %s twice", a.ID)
			seen[a.ID] = true
		}
		if cursor = acts.NextCursor; cursor == "" {
			break
		}
	}
	require.GreaterOrEqual(t, len(seen), 8)
}

func TestLeadMergeAndErase(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Log.Partitions, c.Log.LeadPartitions = 4, 4 })
	_, wk, ak := createTenant(t, n, "acme")
	a := identifyLead(t, n, wk, ak, "dev-a", "u-a", map[string]any{"email": "a@acme.test"})
	b := identifyLead(t, n, wk, ak, "dev-b", "u-b", map[string]any{"email": "b@acme.test", "plan": "pro"})

	var out struct {
		Winner leadView `json:"winner"`
	}
	for range 2 { // a repeated merge answers the same and changes nothing
		st, body := apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/merge", map[string]any{"winner": a.ID, "loser": b.ID}, &out)
		require.Equal(t, http.StatusOK, st, "%s", body)
	}
	w := waitLead(t, n, ak, "user_id=u-b", func(l leadView) bool { return len(l.MergedFrom) == 1 })
	require.Equal(t, a.ID, w.ID, "the loser's userId resolves to the winner")
	require.ElementsMatch(t, []string{"dev-a", "dev-b"}, w.Visitors)
	require.JSONEq(t, `"pro"`, string(w.Traits["plan"]))
	require.Equal(t, a.ID, waitLead(t, n, ak, "email=b@acme.test", nil).ID)
	var acts activityPage
	apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+a.ID+"/activities?type=identify", nil, &acts)
	require.Len(t, acts.Activities, 2, "both identifies on the winner's timeline")
	st, _ := apiDo(t, n, ak, http.MethodPost, "/api/v1/leads/merge", map[string]any{"winner": b.ID, "loser": a.ID}, nil)
	require.Equal(t, http.StatusConflict, st, "the loser cannot win afterwards")

	// Erasure removes the lead and suppresses its devices.
	st, body := apiDo(t, n, ak, http.MethodDelete, "/api/v1/leads/"+a.ID, nil, nil)
	require.Equal(t, http.StatusOK, st, "%s", body)
	for _, q := range []string{"/api/v1/leads/" + a.ID, "/api/v1/leads/" + b.ID, "/api/v1/leads?user_id=u-a", "/api/v1/leads?email=a@acme.test", "/api/v1/leads/" + a.ID + "/activities"} {
		st, body = apiDo(t, n, ak, http.MethodGet, q, nil, nil)
		require.Equal(t, http.StatusNotFound, st, "%s: %s", q, body)
		require.Contains(t, string(body), `"lead_not_found"`)
	}
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil,
		map[string]any{"type": "page", "anonymousId": "dev-a", "properties": map[string]any{"path": "/again"}},
		map[string]any{"type": "identify", "anonymousId": "dev-new", "userId": "u-a"})})
	require.Eventually(t, func() bool {
		return metrics(t, n, "contrail_visitor_suppressed_events_total")[labels("tenant", w.ID)] >= 0 &&
			sumMetric(metrics(t, n, "contrail_visitor_suppressed_events_total")) >= 1 &&
			sumMetric(metrics(t, n, "contrail_lead_inputs_dropped_total")) >= 1
	}, 10*time.Second, 10*time.Millisecond)
	st, _ = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads?user_id=u-a", nil, nil)
	require.Equal(t, http.StatusNotFound, st, "later events of the userId do not bring the lead back")
}

func sumMetric(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

func TestLeadAPIBadInput(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Log.Partitions, c.Log.LeadPartitions = 2, 2 })
	_, wk, ak := createTenant(t, n, "acme")
	l := identifyLead(t, n, wk, ak, "dev-1", "u-1", map[string]any{"name": "Ann"})
	var list struct {
		ID string `json:"id"`
	}
	st, _ := apiDo(t, n, ak, http.MethodPost, "/api/v1/lists", map[string]any{"name": "Hot"}, &list)
	require.Equal(t, http.StatusCreated, st)
	many := make([]string, 1001)
	for i := range many {
		many[i] = l.ID
	}
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{http.MethodGet, "/api/v1/leads/ld_nope", nil, 404, "lead_not_found"},
		{http.MethodGet, "/api/v1/leads?email=nobody@acme.test", nil, 404, "lead_not_found"},
		{http.MethodGet, "/api/v1/leads", nil, 400, "invalid_parameter"},
		{http.MethodGet, "/api/v1/leads?list=nope", nil, 404, "list_not_found"},
		{http.MethodGet, "/api/v1/leads/" + l.ID + "/activities?cursor=zz", nil, 400, "invalid_cursor"},
		{http.MethodGet, "/api/v1/leads/" + l.ID + "/activities?type=nope", nil, 400, "invalid_parameter"},
		{http.MethodGet, "/api/v1/leads/" + l.ID + "/activities?limit=0", nil, 400, "invalid_parameter"},
		{http.MethodPatch, "/api/v1/leads/ld_nope", map[string]any{"traits": map[string]any{"a": 1}}, 404, "lead_not_found"},
		{http.MethodPatch, "/api/v1/leads/" + l.ID, "not an object", 400, "invalid_request"},
		{http.MethodPatch, "/api/v1/leads/" + l.ID, map[string]any{"colour": "red"}, 400, "invalid_request"},
		{http.MethodPatch, "/api/v1/leads/" + l.ID, map[string]any{}, 400, "invalid_request"},
		{http.MethodPatch, "/api/v1/leads/" + l.ID, map[string]any{"traits": map[string]any{"email": "nope"}, "unsubscribed": true}, 400, "invalid_request"},
		{http.MethodPost, "/api/v1/leads/" + l.ID + "/score", map[string]any{"change": "ten"}, 400, "invalid_request"},
		{http.MethodPost, "/api/v1/leads/" + l.ID + "/score", map[string]any{}, 400, "invalid_request"},
		{http.MethodPost, "/api/v1/leads/merge", map[string]any{"winner": l.ID, "loser": l.ID}, 400, "invalid_request"},
		{http.MethodPost, "/api/v1/leads/merge", map[string]any{"winner": l.ID, "loser": "ld_nope"}, 404, "lead_not_found"},
		{http.MethodDelete, "/api/v1/leads/ld_nope", nil, 404, "lead_not_found"},
		{http.MethodPost, "/api/v1/lists/" + list.ID + "/members", map[string]any{"leads": many}, 400, "too_many_leads"},
		{http.MethodPost, "/api/v1/lists/nope/members", map[string]any{"leads": []string{l.ID}}, 404, "list_not_found"},
		{http.MethodPost, "/api/v1/lists", map[string]any{"name": "hot"}, 409, "conflict"},
	} {
		st, body := apiDo(t, n, ak, c.method, c.path, c.body, nil)
		require.Equal(t, c.status, st, "%s %s: %s", c.method, c.path, body)
		require.Contains(t, string(body), `"code": "`+c.code+`"`, "%s %s", c.method, c.path)
	}
	st, _ = apiDo(t, n, "ak_wrong", http.MethodGet, "/api/v1/leads/"+l.ID, nil, nil)
	require.Equal(t, http.StatusUnauthorized, st)
	// Nothing was partially applied: the lead is as it was.
	got := waitLead(t, n, ak, "user_id=u-1", nil)
	require.Equal(t, int64(0), got.Score)
	require.Empty(t, got.Lists)
	require.NotContains(t, got.Traits, "email")
	require.False(t, got.Email != "")
}

// TestFormFillPromotes posts a plain HTML form (no JavaScript) after some
// anonymous browsing: the lead is created from the form's email, the
// visitor is promoted, and its history is on the lead's timeline.
func TestFormFillPromotes(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Log.Partitions, c.Log.LeadPartitions = 4, 4 })
	_, wk, ak := createTenant(t, n, "acme")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	var pages []any
	for i, path := range []string{"/", "/pricing", "/contact"} {
		pages = append(pages, map[string]any{"type": "page", "anonymousId": "anon-f", "timestamp": base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
			"properties": map[string]any{"path": path}})
	}
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, pages...)})

	form := url.Values{"writeKey": {wk}, "email": {" Bea@Acme.test "}, "company": {"Acme"}, "_redirect": {"/thanks"}}
	req, err := http.NewRequest(http.MethodPost, n.URL+"/v1/form/contact-us", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", "https://acme.test/contact")
	req.AddCookie(&http.Cookie{Name: "ajs_anonymous_id", Value: "%22anon-f%22"})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "https://acme.test/thanks", resp.Header.Get("Location"))

	// The link to the visitor and the fill to the lead's shard are sent
	// together, so the back-filled visits may create the lead before the
	// fill reaches it: wait for both.
	l := waitLead(t, n, ak, "email=bea@acme.test", func(l leadView) bool { return len(l.Visitors) == 1 && l.Traits["company"] != nil })
	require.JSONEq(t, `"Acme"`, string(l.Traits["company"]))
	require.Equal(t, []string{"anon-f"}, l.Visitors)
	// The back-fill arrives after the link: wait for the three visits.
	var acts activityPage
	require.Eventually(t, func() bool {
		acts = activityPage{}
		apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+l.ID+"/activities?type=visit_page,fill_form", nil, &acts)
		return len(acts.Activities) == 4
	}, 10*time.Second, 10*time.Millisecond)
	var got []string
	for _, a := range acts.Activities {
		got = append(got, fmt.Sprintf("%s %s %s %v", a.Type, a.Page, a.Event, a.Backfill))
	}
	require.Equal(t, []string{"fill_form /contact contact-us false", "visit_page /contact  true", "visit_page /pricing  true", "visit_page /  true"}, got)

	// The promoted visitor's next page goes to the lead live.
	send(t, n, collectReq{basicKey: wk, body: batchBody(t, nil, map[string]any{"type": "page", "anonymousId": "anon-f", "properties": map[string]any{"path": "/after"}})})
	require.Eventually(t, func() bool {
		acts = activityPage{} // decoding into a used value keeps the fields the answer omits
		apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+l.ID+"/activities?type=visit_page&limit=1", nil, &acts)
		return len(acts.Activities) == 1 && acts.Activities[0].Page == "/after" && !acts.Activities[0].Backfill
	}, 10*time.Second, 10*time.Millisecond, "the next page goes to the lead live: %+v", acts)

	// A second fill with the same email from another device reaches the
	// same lead; a post without an identifying field is refused.
	resp, err = http.Post(n.URL+"/v1/form/contact-us?writeKey="+wk, "application/json", strings.NewReader(`{"email":"bea@acme.test","anonymousId":"anon-g"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitLead(t, n, ak, "email=bea@acme.test", func(l2 leadView) bool { return l2.ID == l.ID && len(l2.Visitors) == 2 })
	resp, err = http.Post(n.URL+"/v1/form/contact-us?writeKey="+wk, "application/json", strings.NewReader(`{"company":"Acme"}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(b), "missing_identity")
}
