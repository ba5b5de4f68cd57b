package app_test

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/browsertest"
	"github.com/contrailhq/contrail/internal/event"
)

// sitePage is a page of the test site: another origin than the node's, as
// a customer's site would be, with the snippet tag pointing at the node.
var sitePage = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<script defer src="{{.Node}}/contrail.js" data-write-key="{{.WriteKey}}"></script>
</head><body>
<h1 id="title">{{.Title}}</h1>
{{if eq .Title "Home"}}<p><a id="to-pricing" class="nav cta" href="/pricing">  See   pricing </a></p>{{end}}
{{if eq .Title "Pricing"}}<form data-contrail-form="signup" action="/thanks" method="post">
<input type="email" name="email" id="email">
<input name="company" id="company">
<input type="password" name="password" id="password">
<input type="hidden" name="csrf_token" value="do-not-send">
<button type="submit" id="send">Sign up</button>
</form>{{end}}
</body></html>`))

// TestSnippetInBrowser loads the tracking snippet from a node into Chromium
// on a page of another origin, and follows a visitor: page view, link
// click, form fill. The form fill makes the visitor a lead whose timeline
// holds the anonymous history.
func TestSnippetInBrowser(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	tenantID, wk, ak := createTenant(t, n, "site")

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		titles := map[string]string{"/": "Home", "/pricing": "Pricing", "/thanks": "Thanks"}
		title, ok := titles[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = sitePage.Execute(w, map[string]string{"Title": title, "Node": n.URL, "WriteKey": wk})
	}))
	t.Cleanup(site.Close)
	require.NotEqual(t, site.URL, n.URL)

	ctx := browsertest.New(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(site.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("to-pricing")),
	))
	anon, err := chromedp.Run(ctx, chromedp.Poll[string]("window.contrail && window.contrail.anonymousId && window.contrail.anonymousId()"))
	require.NoError(t, err)
	cookie, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.cookie"))
	require.NoError(t, err)
	require.Contains(t, cookie, "contrail_aid="+anon, "the visitor id is a first-party cookie of the site")
	browsertest.Screenshot(t, ctx, "home")

	// The page view of the landing page arrives.
	stored := waitEvents(t, n, tenantID, func(evs []event.Event) bool { return hasPage(evs, "/") })
	home := findEvent(stored, func(e event.Event) bool { return e.Type == event.TypePage })
	require.Equal(t, anon, home.AnonymousID)
	require.Empty(t, home.UserID)
	props := gjson.ParseBytes(home.Properties)
	require.Equal(t, "Home", props.Get("title").Str)
	require.Equal(t, site.URL+"/", props.Get("url").Str)
	require.Equal(t, "contrail.js", gjson.GetBytes(home.Context, "library.name").Str)
	require.Equal(t, "/", gjson.GetBytes(home.Context, "page.path").Str)
	require.NotContains(t, gjson.GetBytes(home.Context, "userAgent").Str, "Headless")

	// Click the link: the click is tracked, the browser goes on to the page.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("to-pricing")),
		chromedp.WaitVisible(chromedp.ID("email")),
	))
	// Fill the form and send it: the form posts to the site itself, the
	// snippet sends the fill to the collector.
	email := "ada@example.test"
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("company"), "Acme"),
		chromedp.SendKeys(chromedp.ID("password"), "hunter2"),
	))
	browsertest.Screenshot(t, ctx, "pricing-filled")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("title")),
	))
	require.Eventually(t, func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		return err == nil && loc == site.URL+"/thanks"
	}, 10*time.Second, 10*time.Millisecond, "the form's own submission went on")
	browsertest.Screenshot(t, ctx, "thanks")
	browsertest.RequireNoExceptions(t, ctx)

	stored = waitEvents(t, n, tenantID, func(evs []event.Event) bool {
		return hasPage(evs, "/pricing") && slices.ContainsFunc(evs, isLinkClick) && slices.ContainsFunc(evs, isForm)
	})
	click := findEvent(stored, isLinkClick)
	require.Equal(t, anon, click.AnonymousID)
	require.JSONEq(t, fmt.Sprintf(`{"href":%q,"text":"See pricing","id":"to-pricing","classes":"nav cta","outbound":false}`, site.URL+"/pricing"),
		string(click.Properties))
	form := findEvent(stored, isForm)
	require.Equal(t, "signup", form.Name)
	require.Equal(t, anon, form.AnonymousID, "the fill carries the visitor, so the visitor becomes the lead")
	require.JSONEq(t, `{"email":"ada@example.test","company":"Acme"}`, string(form.Traits), "no password, no token")
	require.Equal(t, "/pricing", gjson.GetBytes(form.Properties, "path").Str, "the page of the fill")

	// The fill made the visitor a lead whose timeline holds the anonymous
	// page views and click (back-filled) and the fill.
	lead := waitLead(t, n, ak, "email="+email, func(l leadView) bool { return slices.Contains(l.Visitors, anon) })
	want := []string{"visit_page /", "visit_page /pricing", "click_link", "fill_form signup"}
	var acts activityPage
	var body []byte
	poll(t, 20*time.Second, func() bool {
		var st int
		st, body = apiDo(t, n, ak, http.MethodGet, "/api/v1/leads/"+lead.ID+"/activities?limit=100", nil, &acts)
		require.Equal(t, http.StatusOK, st, "%s", body)
		return len(missingActivities(acts.Activities, want)) == 0
	}, func() string {
		return fmt.Sprintf("the lead's timeline misses %v: %s", missingActivities(acts.Activities, want), body)
	})
	for _, a := range acts.Activities {
		switch {
		case a.Type == "visit_page" && (a.Page == "/" || a.Page == "/pricing"), a.Type == "click_link":
			require.True(t, a.Backfill, "%s %s happened while the visitor was anonymous", a.Type, a.Page)
		case a.Type == "fill_form":
			require.False(t, a.Backfill, "the fill made the lead")
			require.Equal(t, "/pricing", a.Page)
		}
	}
}

// waitEvents polls the node's log until ok holds for the tenant's events,
// and returns them.
func waitEvents(t *testing.T, n *testNode, tenantID string, ok func([]event.Event) bool) []event.Event {
	t.Helper()
	var evs []event.Event
	poll(t, 20*time.Second, func() bool {
		evs = evs[:0]
		for _, l := range readAll(t, n) {
			if l.Event.Tenant == tenantID {
				evs = append(evs, l.Event)
			}
		}
		return ok(evs)
	}, func() string {
		var got []string
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%s %s%s", e.Type, e.Event, e.Name))
		}
		return fmt.Sprintf("the events did not arrive; stored: %v", got)
	})
	return evs
}

// poll checks cond on the test's goroutine (so cond may use require) until
// it holds, and fails the test with why() at the deadline.
func poll(t *testing.T, timeout time.Duration, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, why())
		}
		<-tick.C
	}
}

func hasPage(evs []event.Event, path string) bool {
	return slices.ContainsFunc(evs, func(e event.Event) bool {
		return e.Type == event.TypePage && gjson.GetBytes(e.Properties, "path").Str == path
	})
}

func isLinkClick(e event.Event) bool { return e.Type == event.TypeTrack && e.Event == "Link Clicked" }
func isForm(e event.Event) bool      { return e.Type == event.TypeForm }

func findEvent(evs []event.Event, match func(event.Event) bool) event.Event {
	i := slices.IndexFunc(evs, match)
	if i < 0 {
		return event.Event{}
	}
	return evs[i]
}

// missingActivities returns the entries of want ("type", "visit_page PATH"
// or "fill_form FORM") that acts lacks.
func missingActivities(acts []activityView, want []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(acts, func(a activityView) bool {
			key := a.Type
			switch a.Type {
			case "visit_page":
				key += " " + a.Page
			case "fill_form":
				key += " " + a.Event
			}
			return key == w
		}) {
			missing = append(missing, w)
		}
	}
	return missing
}
