package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	analytics "gopkg.in/segmentio/analytics-go.v3"

	"github.com/contrailhq/contrail/internal/browsertest"
)

// browserSignIn signs in through the dashboard's form, as a person would:
// the key typed into the field, the form sent.
func browserSignIn(t *testing.T, n *testNode, opts []browsertest.Option, key string) browserTab {
	t.Helper()
	ctx := browsertest.New(t, opts...)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(n.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
		chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.CSS("nav[aria-label=Main]")),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.NotContains(t, loc, key, "the key is never in a URL")
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.NotContains(t, html, key, "the key is never in a page")
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.cookie"))
	require.NoError(t, err)
	require.NotContains(t, cookies, "contrail_session", "the session cookie is HttpOnly")
	return browserTab{t: t, ctx: ctx, n: n}
}

// browserTab is a signed-in tab.
type browserTab struct {
	t   *testing.T
	ctx context.Context
	n   *testNode
}

// open loads a dashboard page and waits for its heading.
func (b browserTab) open(path string) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, chromedp.Navigate(b.n.URL+path), chromedp.WaitVisible(chromedp.CSS("main h1"))))
}

// text reads an element's text.
func (b browserTab) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	require.NoError(b.t, err, css)
	return strings.TrimSpace(s)
}

// waitJS waits until a JavaScript expression is true.
func (b browserTab) waitJS(expr string, timeout time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(b.t, err, "waiting for %s", expr)
}

// summaryView is the report API's summary.
type summaryView struct {
	Pageviews, Visitors, Sessions, Events int64
}

// TestDashboardReportInBrowser: known traffic sent with Segment's Go
// library; the report shows the numbers the report API gives, a click on
// a page filters by it, the page refreshes itself when more traffic
// arrives, and it reads on a phone without sideways scrolling.
func TestDashboardReportInBrowser(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	var msgs []analytics.Message
	paths := []string{"/", "/pricing", "/pricing", "/docs", "/", "/pricing", "/blog", "/pricing", "/", "/docs"}
	for i, p := range paths {
		msgs = append(msgs, analytics.Page{AnonymousId: fmt.Sprintf("v%d", i%6), Name: p,
			Properties: analytics.NewProperties().SetURL("https://acme.test" + p + "?utm_source=newsletter").SetPath(p).SetReferrer("https://www.google.com/")})
	}
	msgs = append(msgs, analytics.Track{AnonymousId: "v1", Event: "Signed Up"}, analytics.Track{AnonymousId: "v2", Event: "Signed Up"})
	segmentSend(t, n, wk, msgs...)

	day := time.Now().UTC()
	from, to := day.AddDate(0, 0, -1).Format("2006-01-02"), day.AddDate(0, 0, 1).Format("2006-01-02")
	apiRange := url.Values{"from": {day.AddDate(0, 0, -1).Format("2006-01-02") + "T00:00:00Z"}, "to": {day.AddDate(0, 0, 2).Format("2006-01-02") + "T00:00:00Z"}}
	var want summaryView
	waitFor(t, 20*time.Second, "the report API counts the traffic", func() bool {
		st, _ := apiDo(t, n, ak, "GET", "/api/v1/reports/summary?"+apiRange.Encode(), nil, &want)
		return st == http.StatusOK && want.Pageviews == int64(len(paths)) && want.Events == 2
	})

	b := browserSignIn(t, n, nil, ak)
	b.open("/report?from=" + from + "&to=" + to)
	require.Equal(t, fmt.Sprint(want.Visitors), b.text(`dd[data-metric=visitors]`))
	require.Equal(t, fmt.Sprint(want.Pageviews), b.text(`dd[data-metric=pageviews]`))
	require.Equal(t, fmt.Sprint(want.Sessions), b.text(`dd[data-metric=sessions]`))
	require.Equal(t, "2", b.text(`dd[data-metric=events]`))
	require.Equal(t, int64(6), want.Visitors)

	var top struct {
		Rows []struct {
			Value              string
			Visitors, Pageview int64
		} `json:"rows"`
	}
	st, _ := apiDo(t, n, ak, "GET", "/api/v1/reports/top?dimension=page&"+apiRange.Encode(), nil, &top)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, "/pricing", top.Rows[0].Value)
	require.Equal(t, "/pricing", b.text(`table[data-dimension=page] tbody tr:first-child a`))
	require.Equal(t, fmt.Sprint(top.Rows[0].Visitors), b.text(`table[data-dimension=page] tbody tr:first-child td:nth-child(2)`))
	require.Contains(t, b.text(`table[data-dimension=event]`), "Signed Up")
	browsertest.Screenshot(t, b.ctx, "report")

	// A click on a row filters the report by it.
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`table[data-dimension=page] tbody tr:first-child a`)), chromedp.WaitVisible(chromedp.CSS("p.filter"))))
	var filtered summaryView
	q := url.Values{"filter": {"page:/pricing"}}
	for k, v := range apiRange {
		q[k] = v
	}
	st, _ = apiDo(t, n, ak, "GET", "/api/v1/reports/summary?"+q.Encode(), nil, &filtered)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, int64(4), filtered.Pageviews)
	require.Equal(t, "4", b.text(`dd[data-metric=pageviews]`))
	require.Contains(t, b.text("p.filter"), "page:/pricing")
	browsertest.Screenshot(t, b.ctx, "filtered")

	// Live traffic shows without a reload.
	b.open("/report?from=" + from + "&to=" + to)
	_, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("window.__before = true"))
	require.NoError(t, err)
	segmentSend(t, n, wk, analytics.Page{AnonymousId: "v99", Name: "/new", Properties: analytics.NewProperties().SetURL("https://acme.test/new").SetPath("/new")})
	b.waitJS(`document.querySelector("dd[data-metric=pageviews]").textContent.trim() === "11"`, 30*time.Second)
	kept, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("window.__before === true"))
	require.NoError(t, err)
	require.True(t, kept, "the page refreshed its numbers in place, not by reloading")

	// On a phone the report fits the screen's width.
	phone := browserSignIn(t, n, []browsertest.Option{browsertest.Phone()}, ak)
	phone.open("/report?from=" + from + "&to=" + to)
	fits, err := chromedp.Run(phone.ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.documentElement.scrollWidth <= %d", browsertest.PhoneWidth)))
	require.NoError(t, err)
	require.True(t, fits, "no sideways scrolling on a phone")
	browsertest.Screenshot(t, phone.ctx, "report-phone")
	browsertest.RequireNoExceptions(t, b.ctx)
}

// TestDashboardLeadInBrowser: a visitor browses anonymously, then is
// identified; the live view shows the events as they come; searching the
// lead's email opens its page, whose timeline holds the anonymous pages,
// marked as such.
func TestDashboardLeadInBrowser(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	_, wk, ak := createTenant(t, n, "acme")
	b := browserSignIn(t, n, nil, ak)

	b.open("/live")
	b.waitJS(`document.querySelector("[data-live-status]").textContent.startsWith("Live")`, 15*time.Second)
	segmentSend(t, n, wk,
		analytics.Page{AnonymousId: "anon-7", Name: "Pricing", Properties: analytics.NewProperties().SetURL("https://acme.test/pricing").SetPath("/pricing")},
		analytics.Page{AnonymousId: "anon-7", Name: "Docs", Properties: analytics.NewProperties().SetURL("https://acme.test/docs").SetPath("/docs")})
	b.waitJS(`[...document.querySelectorAll("table.live tbody tr")].some(r => r.textContent.includes("/docs") && r.textContent.includes("anon-7"))`, 15*time.Second)
	browsertest.Screenshot(t, b.ctx, "live")

	segmentSend(t, n, wk, analytics.Identify{AnonymousId: "anon-7", UserId: "ann", Traits: analytics.NewTraits().SetEmail("ann@acme.test").SetName("Ann")})
	b.waitJS(`[...document.querySelectorAll("table.live tbody tr")].some(r => r.textContent.includes("identify") && r.textContent.includes("ann"))`, 15*time.Second)
	l := waitLead(t, n, ak, "email=ann@acme.test", func(l leadView) bool { return l.ID != "" })
	waitFor(t, 20*time.Second, "the anonymous pages are in the timeline", func() bool {
		return countActivities(t, n, ak, l.ID, "visit_page") == 2
	})

	b.open("/leads")
	require.NoError(t, chromedp.Do(b.ctx,
		chromedp.SendKeys(chromedp.ID("q"), "ann@acme.test"),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS("ol.timeline")),
	))
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(loc, "/leads/"+l.ID), loc)
	require.Equal(t, "ann@acme.test", b.text("main h1"))
	timeline := b.text("ol.timeline")
	require.Contains(t, timeline, "Visited /pricing")
	require.Contains(t, timeline, "Visited /docs")
	backfilled, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("ol.timeline li[data-backfill] .badge").length`))
	require.NoError(t, err)
	require.Equal(t, 2, backfilled, "both anonymous page views are marked")
	require.Contains(t, b.text("dl.props"), "ann")
	browsertest.Screenshot(t, b.ctx, "lead")
	browsertest.RequireNoExceptions(t, b.ctx)
}

// TestDashboardCampaignInBrowser: a pasted campaign with mistakes is
// refused with each problem on its line, and the caret taken to the first;
// fixed, it publishes; its page shows the flow; it pauses and resumes.
func TestDashboardCampaignInBrowser(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	_, _, ak := createTenant(t, n, "acme")
	b := browserSignIn(t, n, nil, ak)

	bad := "name: Hot leads\ntriggers:\n  - type: visits_web_page\n    constraint: event.page ==\nflow:\n  - type: teleport\n"
	b.open("/campaigns/new")
	require.NoError(t, chromedp.Do(b.ctx,
		chromedp.SetValue(chromedp.ID("spec"), bad),
		chromedp.Click(chromedp.CSS(`button[name=save]`)),
		chromedp.WaitVisible(chromedp.ID("problems")),
	))
	require.Contains(t, b.text("#problems"), "2 problem")
	require.Contains(t, b.text("#L4"), "triggers[0].constraint")
	require.Contains(t, b.text("#L6"), `"teleport"`)
	cls, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("L6").className`))
	require.NoError(t, err)
	require.Equal(t, "bad", cls)
	caretLine, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(() => { const s = document.getElementById("spec"); return s.value.slice(0, s.selectionStart).split("\n").length })()`))
	require.NoError(t, err)
	require.Equal(t, 4, caretLine, "the caret is on the first problem's line")
	browsertest.Screenshot(t, b.ctx, "invalid-campaign")

	good := "name: Hot leads\ntriggers:\n  - type: visits_web_page\nflow:\n  - type: change_score\n    change: 10\n  - type: add_to_list\n    list: Hot\n"
	require.NoError(t, chromedp.Do(b.ctx,
		chromedp.SetValue(chromedp.ID("spec"), good),
		chromedp.Click(chromedp.CSS(`button[name=publish]`)),
		chromedp.WaitVisible(chromedp.CSS("ol.flow")),
	))
	require.Contains(t, b.text("p.flash"), "Published version 1")
	require.Contains(t, b.text("ol.flow"), "change_score")
	require.Contains(t, b.text("ol.flow"), "add_to_list")
	require.Equal(t, "active", b.text("main h1 .status"))
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`form[action$="/pause"] button`)), chromedp.WaitVisible(chromedp.CSS(`form[action$="/resume"]`))))
	require.Equal(t, "paused", b.text("main h1 .status"))
	browsertest.Screenshot(t, b.ctx, "campaign")
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`form[action$="/resume"] button`)), chromedp.WaitVisible(chromedp.CSS(`form[action$="/pause"]`))))
	require.Equal(t, "active", b.text("main h1 .status"))
	browsertest.RequireNoExceptions(t, b.ctx)
}

// TestDashboardAdminInBrowser: the admin sees every tenant, pauses one
// (the API agrees), resumes it, and makes an API key that works.
func TestDashboardAdminInBrowser(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	id, _, _ := createTenant(t, n, "acme")
	createTenant(t, n, "globex")
	b := browserSignIn(t, n, nil, n.Token)
	b.waitJS(`location.pathname === "/tenants"`, 10*time.Second)
	require.Contains(t, b.text("table.tenants"), "acme")
	require.Contains(t, b.text("table.tenants"), "globex")

	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Pause acme"]`)), chromedp.WaitVisible(chromedp.CSS("p.flash"))))
	require.Contains(t, b.text(`tr[data-tenant=acme]`), "paused")
	var tv struct {
		Paused bool `json:"paused"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, "GET", "/api/v1/tenants/"+id, nil, &tv))
	require.True(t, tv.Paused, "the API says the tenant is paused")
	browsertest.Screenshot(t, b.ctx, "tenant-paused")
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`button[aria-label="Resume acme"]`)), chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Pause acme"]`))))
	require.Equal(t, http.StatusOK, adminDo(t, n, "GET", "/api/v1/tenants/"+id, nil, &tv))
	require.False(t, tv.Paused)

	require.NoError(t, chromedp.Do(b.ctx,
		chromedp.Click(chromedp.CSS(`tr[data-tenant=acme] form[action$="/keys"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`code[data-new-key=api]`)),
	))
	key := b.text(`code[data-new-key=api]`)
	require.True(t, strings.HasPrefix(key, "ak_"), key)
	st, _ := apiDo(t, n, key, "GET", "/api/v1/campaigns", nil, nil)
	require.Equal(t, http.StatusOK, st, "the new key works")

	// Opening a tenant shows its report.
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Navigate(n.URL+"/tenants"), chromedp.WaitVisible(chromedp.CSS("table.tenants")),
		chromedp.Click(chromedp.CSS(`tr[data-tenant=globex] th button`)), chromedp.WaitVisible(chromedp.CSS("dd[data-metric=visitors]"))))
	require.Equal(t, "globex", b.text("header .tenant"))
	browsertest.Screenshot(t, b.ctx, "admin-report")
	browsertest.RequireNoExceptions(t, b.ctx)
}
