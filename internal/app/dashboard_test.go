package app_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	analytics "gopkg.in/segmentio/analytics-go.v3"
)

// dash is a browser without JavaScript: a cookie jar that signs in to the
// dashboard and follows its forms.
type dash struct {
	t    testing.TB
	n    *testNode
	http *http.Client
}

func newDash(t testing.TB, n *testNode) *dash {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &dash{t: t, n: n, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the status, the Location and the body.
func (d *dash) do(method, path string, form url.Values) (int, string, string) {
	d.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, d.n.URL+path, body)
	require.NoError(d.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := d.http.Do(req)
	require.NoError(d.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

var (
	csrfInput = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	csrfMeta  = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)
)

// signIn signs in with key through the sign-in form.
func (d *dash) signIn(key string) {
	d.t.Helper()
	st, _, page := d.do("GET", "/signin", nil)
	require.Equal(d.t, http.StatusOK, st)
	m := csrfInput.FindStringSubmatch(page)
	require.NotNil(d.t, m, "the sign-in form carries a CSRF token")
	st, loc, body := d.do("POST", "/signin", url.Values{"_csrf": {m[1]}, "key": {key}, "next": {"/"}})
	require.Equal(d.t, http.StatusSeeOther, st, "%s", body)
	require.NotEqual(d.t, "/signin", loc)
}

// token reads the session's CSRF token off a page.
func (d *dash) token() string {
	d.t.Helper()
	_, _, page := d.do("GET", "/setup", nil)
	m := csrfMeta.FindStringSubmatch(page)
	require.NotNil(d.t, m, "a signed-in page carries the CSRF token")
	return m[1]
}

// TestDashboardNeedsSignIn: every page sends a stranger to sign in and
// back; the live stream and partial refreshes answer 401; a bad key does
// not sign in; a forged or tampered session cookie is no session.
func TestDashboardNeedsSignIn(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	d := newDash(t, n)
	for _, p := range []string{"/report", "/live", "/leads", "/leads/ld_x", "/campaigns", "/campaigns/new", "/campaigns/cmp_x", "/tenants", "/setup"} {
		st, loc, _ := d.do("GET", p, nil)
		require.Equal(t, http.StatusSeeOther, st, p)
		require.Equal(t, "/signin?next="+url.QueryEscape(p), loc, p)
	}
	st, loc, _ := d.do("GET", "/", nil)
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/signin", loc)
	st, _, _ = d.do("GET", "/live/stream", nil)
	require.Equal(t, http.StatusUnauthorized, st)
	st, _, _ = d.do("POST", "/campaigns/new", url.Values{"spec": {"name: x"}})
	require.Equal(t, http.StatusUnauthorized, st, "a POST without a session changes nothing")

	_, _, page := d.do("GET", "/signin", nil)
	tok := csrfInput.FindStringSubmatch(page)[1]
	st, _, body := d.do("POST", "/signin", url.Values{"_csrf": {tok}, "key": {"ak_not_a_key"}})
	require.Equal(t, http.StatusUnauthorized, st)
	require.Contains(t, body, "not a tenant API key")
	st, _, _ = d.do("GET", "/report", nil)
	require.Equal(t, http.StatusSeeOther, st, "still signed out")

	// A session cookie this deployment did not seal is ignored.
	u, _ := url.Parse(n.URL)
	d.http.Jar.SetCookies(u, []*http.Cookie{{Name: "contrail_session", Value: "eyJrIjoiYWsifQ", Path: "/"}})
	st, _, _ = d.do("GET", "/report", nil)
	require.Equal(t, http.StatusSeeOther, st)

	// After sign-in the page asked for is where the browser goes.
	_, wk, ak := createTenant(t, n, "acme")
	_ = wk
	_, _, page = d.do("GET", "/signin?next=%2Fleads", nil)
	tok = csrfInput.FindStringSubmatch(page)[1]
	st, loc, _ = d.do("POST", "/signin", url.Values{"_csrf": {tok}, "key": {ak}, "next": {"/leads"}})
	require.Equal(t, http.StatusSeeOther, st)
	require.Equal(t, "/leads", loc)
	// An open redirect is not: next must be a path of this site.
	d = newDash(t, n)
	_, _, page = d.do("GET", "/signin", nil)
	tok = csrfInput.FindStringSubmatch(page)[1]
	_, loc, _ = d.do("POST", "/signin", url.Values{"_csrf": {tok}, "key": {ak}, "next": {"//evil.example/x"}})
	require.Equal(t, "/", loc)
}

// TestDashboardCSRF: a change without the session's CSRF token, or with
// another session's, is refused with 403 and changes nothing; the sign-in
// form has its own token.
func TestDashboardCSRF(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	_, _, ak := createTenant(t, n, "acme")
	d := newDash(t, n)

	// Signing in needs the form's token (against login CSRF).
	st, _, _ := d.do("POST", "/signin", url.Values{"key": {ak}})
	require.Equal(t, http.StatusForbidden, st)

	d.signIn(ak)
	spec := "name: c\ntriggers:\n  - type: lead_created\nflow:\n  - type: change_score\n    change: 1\n"
	st, _, body := d.do("POST", "/campaigns/new", url.Values{"spec": {spec}})
	require.Equal(t, http.StatusForbidden, st, "no token: %s", body)
	other := newDash(t, n)
	other.signIn(ak)
	st, _, _ = d.do("POST", "/campaigns/new", url.Values{"spec": {spec}, "_csrf": {other.token()}})
	require.Equal(t, http.StatusForbidden, st, "another session's token")
	st, _, _ = d.do("POST", "/signout", nil)
	require.Equal(t, http.StatusForbidden, st, "signing out is a change too")

	var list struct {
		Campaigns []any `json:"campaigns"`
	}
	code, _ := apiDo(t, n, ak, "GET", "/api/v1/campaigns", nil, &list)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, list.Campaigns, "nothing was created")

	st, loc, _ := d.do("POST", "/campaigns/new", url.Values{"spec": {spec}, "_csrf": {d.token()}})
	require.Equal(t, http.StatusSeeOther, st)
	require.Contains(t, loc, "/campaigns/cmp_")

	st, _, _ = d.do("POST", "/signout", url.Values{"_csrf": {d.token()}})
	require.Equal(t, http.StatusSeeOther, st)
	st, _, _ = d.do("GET", "/report", nil)
	require.Equal(t, http.StatusSeeOther, st, "signed out")
}

// TestDashboardTenantIsolation: a tenant's key shows that tenant's data
// and nothing of another's, by page, by id or by stream; the key itself
// never appears in a page; revoking it ends the session.
func TestDashboardTenantIsolation(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	aID, aWK, aAK := createTenant(t, n, "alpha")
	_, bWK, bAK := createTenant(t, n, "beta")

	segmentSend(t, n, aWK,
		analytics.Page{AnonymousId: "va1", Name: "Home", Properties: analytics.NewProperties().SetURL("https://alpha.test/alpha-only").SetPath("/alpha-only")},
		analytics.Identify{AnonymousId: "va1", UserId: "alpha-user", Traits: analytics.NewTraits().SetEmail("a@alpha.test")})
	segmentSend(t, n, bWK,
		analytics.Page{AnonymousId: "vb1", Name: "Home", Properties: analytics.NewProperties().SetURL("https://beta.test/beta-secret").SetPath("/beta-secret")},
		analytics.Identify{AnonymousId: "vb1", UserId: "beta-user", Traits: analytics.NewTraits().SetEmail("b@beta.test")})
	bLead := waitLead(t, n, bAK, "user_id=beta-user", func(l leadView) bool { return l.ID != "" })
	waitLead(t, n, aAK, "user_id=alpha-user", func(l leadView) bool { return l.ID != "" })
	bCampaign := createCampaign(t, n, bAK, `{"name":"beta plan","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1}]}`, true)

	d := newDash(t, n)
	d.signIn(aAK)
	from := time.Now().Add(-time.Hour).Format("2006-01-02")
	to := time.Now().Add(time.Hour).Format("2006-01-02")
	waitFor(t, 20*time.Second, "alpha's page view in its report", func() bool {
		_, _, page := d.do("GET", "/report?from="+from+"&to="+to, nil)
		return strings.Contains(page, "/alpha-only")
	})
	secrets := []string{"beta-secret", "b@beta.test", "beta-user", "beta plan", bWK, bLead.ID}
	for _, p := range []string{"/report?from=" + from + "&to=" + to, "/report?range=realtime", "/leads?q=b%40beta.test", "/leads?q=beta-user", "/campaigns", "/setup", "/live"} {
		st, _, page := d.do("GET", p, nil)
		require.Contains(t, []int{http.StatusOK, http.StatusSeeOther}, st, p)
		if q, ok := strings.CutPrefix(p, "/leads?q="); ok { // the search box shows what was searched
			q, _ = url.QueryUnescape(q)
			page = strings.NewReplacer(`value="`+q+`"`, "", "“"+q+"”", "").Replace(page)
		}
		for _, s := range secrets {
			require.NotContains(t, page, s, p)
		}
		require.NotContains(t, page, aAK, "%s: the API key is never in a page", p)
	}
	st, _, page := d.do("GET", "/leads?q=beta-user", nil)
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, page, "No lead is known")
	st, _, _ = d.do("GET", "/leads/"+bLead.ID, nil)
	require.Equal(t, http.StatusNotFound, st, "another tenant's lead, by id")
	st, _, _ = d.do("GET", "/campaigns/"+bCampaign.ID, nil)
	require.Equal(t, http.StatusNotFound, st, "another tenant's campaign, by id")
	st, _, _ = d.do("GET", "/campaigns/"+bCampaign.ID+"/edit", nil)
	require.Equal(t, http.StatusNotFound, st)
	st, _, _ = d.do("POST", "/campaigns/"+bCampaign.ID+"/pause", url.Values{"_csrf": {d.token()}})
	require.Equal(t, http.StatusNotFound, st, "another tenant's campaign cannot be paused")
	st, _, _ = d.do("GET", "/tenants", nil)
	require.Equal(t, http.StatusForbidden, st, "a tenant's key is not the admin")
	st, _, _ = d.do("POST", "/tenants/"+aID+"/pause", url.Values{"_csrf": {d.token()}})
	require.Equal(t, http.StatusForbidden, st)
	// Revoking the key ends the session at once.
	var keys struct {
		Keys []struct{ ID, Kind, Prefix string } `json:"keys"`
	}
	require.Equal(t, http.StatusOK, adminDo(t, n, "GET", "/api/v1/tenants/"+aID+"/keys", nil, &keys))
	for _, k := range keys.Keys {
		if k.Kind == "api" && strings.HasPrefix(aAK, k.Prefix) {
			require.Equal(t, http.StatusOK, adminDo(t, n, "DELETE", "/api/v1/tenants/"+aID+"/keys/"+k.ID, nil, nil))
		}
	}
	waitFor(t, 10*time.Second, "the revoked key's session ends", func() bool {
		st, _, _ := d.do("GET", "/report", nil)
		return st == http.StatusSeeOther
	})
}

// TestDashboardLiveStream: the live view's stream carries the signed-in
// tenant's events as they arrive, with what the view shows, and none of
// another tenant's, even when asked for by name.
func TestDashboardLiveStream(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	_, aWK, aAK := createTenant(t, n, "alpha")
	_, bWK, _ := createTenant(t, n, "beta")
	d := newDash(t, n)
	d.signIn(aAK)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", n.URL+"/live/stream?tenant=beta", nil)
	require.NoError(t, err)
	resp, err := d.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	segmentSend(t, n, bWK, analytics.Track{AnonymousId: "vb", Event: "Beta Secret"})
	segmentSend(t, n, aWK, analytics.Page{AnonymousId: "va", UserId: "u-a", Name: "Pricing", Properties: analytics.NewProperties().SetURL("https://alpha.test/pricing").SetPath("/pricing")},
		analytics.Track{AnonymousId: "va", Event: "Alpha Done"})
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		got = append(got, line)
		if strings.Contains(line, "Alpha Done") {
			break
		}
	}
	require.NoError(t, sc.Err())
	all := strings.Join(got, "\n")
	require.NotContains(t, all, "Beta Secret")
	require.Contains(t, all, `"type":"page"`)
	require.Contains(t, all, `"page":"/pricing"`)
	require.Contains(t, all, `"visitor":"va"`)
	require.Contains(t, all, `"lead":"u-a"`)
}
