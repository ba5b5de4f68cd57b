package snippet_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/browsertest"
	"github.com/contrailhq/contrail/internal/snippet"
)

// sent is one request the snippet made to the collector.
type sent struct {
	Method, Path, ContentType, Referer string
	Mode                               string // Sec-Fetch-Mode: no-cors for a beacon, cors for fetch
	Body                               map[string]any
}

// collector is a fake collector: it serves the snippet and records what
// the snippet sends.
type collector struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []sent
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	mux := http.NewServeMux()
	mux.Handle("GET /contrail.js", snippet.Handler())
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := sent{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Referer: r.Referer(), Mode: r.Header.Get("Sec-Fetch-Mode")}
		_ = json.Unmarshal(b, &s.Body)
		c.mu.Lock()
		c.reqs = append(c.reqs, s)
		c.mu.Unlock()
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		w.WriteHeader(http.StatusOK)
	})
	c.Server = httptest.NewServer(mux)
	t.Cleanup(c.Close)
	return c
}

// take returns and forgets the requests recorded so far.
func (c *collector) take() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// wait takes the requests once there are n (and fails the test after 10s).
// A request that is not expected shows as one too many at the next wait.
func (c *collector) wait(t *testing.T, n int) []sent {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.reqs) >= n
	}, 10*time.Second, 10*time.Millisecond, "waiting for %d requests", n)
	got := c.take()
	require.Len(t, got, n, "requests: %+v", got)
	return got
}

// site serves test pages: the body of each path, after the snippet tag
// with the given attributes.
func site(t *testing.T, c *collector, pages map[string]string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body>%s</body></html>",
			strings.TrimPrefix(r.URL.Path, "/"), strings.ReplaceAll(body, "COLLECTOR", c.URL))
	}))
	t.Cleanup(s.Close)
	return s
}

const tag = `<script defer src="COLLECTOR/contrail.js" data-write-key="wk"></script>`

func str(v any) string { s, _ := v.(string); return s }

// pagePath returns the path of a page view, or "" for another request.
func pagePath(r sent) string {
	if r.Path != "/v1/page" {
		return ""
	}
	props, _ := r.Body["properties"].(map[string]any)
	return str(props["path"])
}

func TestSnippetInBrowser(t *testing.T) {
	c := newCollector(t)
	s := site(t, c, map[string]string{
		// Calls made before the script loaded are queued.
		"/app": `<script>window.contrail = window.contrail || [];
			contrail.push(["identify", "u-1", {plan: "pro"}]); contrail.push(["track", "Queued", {a: 1}]);</script>` + tag + `
			<a id="out" class="x y" href="https://example.org/go" onclick="event.preventDefault()"><b>Go</b> out</a>
			<a id="js" href="javascript:void 0">js</a>`,
		"/form": tag + `<form data-contrail-form="contact us!" onsubmit="return false">
			<input name="email" value=" ann@example.test "><input name="first_name" value="Ann">
			<input type="password" name="pw" value="x"><input name="card_number" value="4111">
			<input name="cvc" value="123"><input name="cc" autocomplete="cc-number" value="4111">
			<input type="file" name="cv"><input name="off" value="x" disabled>
			<input type="hidden" name="_redirect" value="/x"><input type="hidden" name="writeKey" value="evil">
			<input type="checkbox" name="topics" value="a" checked><input type="checkbox" name="topics" value="b" checked>
			<input type="checkbox" name="topics" value="c"><input type="radio" name="size" value="s"><input type="radio" name="size" value="m" checked>
			<select name="langs" multiple><option selected>go</option><option>js</option><option selected>sql</option></select>
			<textarea name="note">hi</textarea><button id="send" name="go" value="1">Send</button></form>
			<form id="nojs" action="COLLECTOR/v1/form/direct" onsubmit="return false"><input name="email" value="b@example.test"><button id="send2">Send</button></form>
			<form id="other" onsubmit="return false"><input name="email" value="c@example.test"><button id="send3">Send</button></form>`,
		"/all": strings.Replace(tag, "<script ", `<script data-forms="all" data-auto-page="false" `, 1) + `
			<form name="news" onsubmit="return false"><input type="email" name="mail" value="d@example.test"><button id="send">Send</button></form>`,
		"/dnt": `<script>Object.defineProperty(navigator, "doNotTrack", {value: "1"});</script>` +
			strings.Replace(tag, "<script ", "<script data-respect-dnt ", 1) + `<a id="a" href="#x">a</a>`,
		"/ajs": `<script>document.cookie = "ajs_anonymous_id=%22ajs-123%22; Path=/";</script>` + tag,
	})
	ctx := browsertest.New(t)
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	eval := func(js string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js))
		require.NoError(t, err)
	}

	t.Run("queue, page view, identity", func(t *testing.T) {
		run(chromedp.Navigate(s.URL + "/app?x=1#top"))
		got := c.wait(t, 3)
		// Beacons run in parallel: sort them back into the order of the calls.
		order := []string{"/v1/identify", "/v1/track", "/v1/page"}
		slices.SortFunc(got, func(a, b sent) int { return slices.Index(order, a.Path) - slices.Index(order, b.Path) })
		require.Equal(t, order, []string{got[0].Path, got[1].Path, got[2].Path})
		anon := str(got[0].Body["anonymousId"])
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, anon)
		for _, r := range got {
			require.Equal(t, http.MethodPost, r.Method)
			require.Equal(t, "text/plain", r.ContentType, "no CORS preflight")
			require.Equal(t, "no-cors", r.Mode, "a beacon")
			require.Equal(t, "wk", r.Body["writeKey"])
			require.Equal(t, anon, r.Body["anonymousId"])
			require.Equal(t, "u-1", r.Body["userId"], "identify's user id is on every later event")
			require.NotEmpty(t, r.Body["messageId"])
			_, err := time.Parse(time.RFC3339, str(r.Body["timestamp"]))
			require.NoError(t, err)
			ctx := r.Body["context"].(map[string]any)
			require.Equal(t, map[string]any{"name": "contrail.js", "version": "1"}, ctx["library"])
			require.NotEmpty(t, ctx["userAgent"])
			require.NotEmpty(t, ctx["locale"])
		}
		require.Equal(t, map[string]any{"plan": "pro"}, got[0].Body["traits"])
		require.Equal(t, "Queued", got[1].Body["event"])
		page := map[string]any{"path": "/app", "referrer": "", "search": "?x=1", "title": "app", "url": s.URL + "/app?x=1"}
		require.Equal(t, page, got[2].Body["properties"])
		require.Equal(t, page, got[2].Body["context"].(map[string]any)["page"])

		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL}})
		require.NoError(t, err)
		i := slices.IndexFunc(cookies.Cookies, func(ck *network.Cookie) bool { return ck.Name == "contrail_aid" })
		require.GreaterOrEqual(t, i, 0, "the visitor cookie is set")
		ck := cookies.Cookies[i]
		require.Equal(t, anon, ck.Value)
		require.Equal(t, "/", ck.Path)
		require.Equal(t, network.CookieSameSiteLax, ck.SameSite)
		require.False(t, ck.Secure, "http page")
		// Max-Age is two years; Chrome keeps a cookie at most 400 days.
		require.Greater(t, ck.Expires, float64(time.Now().Add(399*24*time.Hour).Unix()))
		browsertest.Screenshot(t, ctx, "app")
	})

	t.Run("single-page navigations", func(t *testing.T) {
		eval(`history.pushState({}, "", "/app/settings")`)
		got := c.wait(t, 1)
		props := got[0].Body["properties"].(map[string]any)
		require.Equal(t, "/app/settings", props["path"])
		require.Equal(t, s.URL+"/app?x=1", props["referrer"], "the previous page")
		eval(`history.replaceState({}, "", "/app/settings"); history.pushState({}, "", "/app/settings#tab")`)
		eval(`history.go(-2)`) // popstate, back to /app?x=1
		got = c.wait(t, 1)
		require.Equal(t, "/app", got[0].Body["properties"].(map[string]any)["path"])
	})

	t.Run("link clicks", func(t *testing.T) {
		run(chromedp.Click(chromedp.ID("out")), chromedp.Click(chromedp.ID("js")))
		eval(`document.getElementById("out").dispatchEvent(new MouseEvent("auxclick", {button: 1, bubbles: true}));
			document.getElementById("out").dispatchEvent(new MouseEvent("auxclick", {button: 2, bubbles: true}))`)
		got := c.wait(t, 2) // the left click and the middle click; not the javascript: link, not the right click
		for _, r := range got {
			require.Equal(t, "/v1/track", r.Path)
			require.Equal(t, "Link Clicked", r.Body["event"])
			require.Equal(t, map[string]any{"href": "https://example.org/go", "text": "Go out", "id": "out", "classes": "x y", "outbound": true}, r.Body["properties"])
		}
		browsertest.RequireNoExceptions(t, ctx)
	})

	t.Run("form fill", func(t *testing.T) {
		run(chromedp.Navigate(s.URL+"/form"), chromedp.WaitVisible(chromedp.ID("send")))
		c.wait(t, 1) // the page view
		run(chromedp.Click(chromedp.ID("send")))
		got := c.wait(t, 1)
		r := got[0]
		require.Equal(t, "/v1/form/contact-us-", r.Path, "the form id is made safe")
		require.Equal(t, "text/plain", r.ContentType, "no CORS preflight")
		require.Equal(t, "cors", r.Mode, "fetch")
		require.Equal(t, s.URL+"/form", r.Referer, "the whole page URL: the page of the fill")
		anon := str(r.Body["anonymousId"])
		require.NotEmpty(t, anon)
		ctxField, _ := r.Body["context"].(map[string]any)
		page, _ := ctxField["page"].(map[string]any)
		require.Equal(t, s.URL+"/form", page["url"], "the page of the fill, in the context too: a Referer may be cut")
		require.Equal(t, "/form", page["path"])
		delete(r.Body, "context")
		require.Equal(t, map[string]any{
			"writeKey": "wk", "anonymousId": anon, "userId": "u-1",
			"email": " ann@example.test ", "first_name": "Ann", "topics": []any{"a", "b"}, "size": "m",
			"langs": []any{"go", "sql"}, "note": "hi",
		}, r.Body, "no password, card, cvc, file, disabled field, redirect nor write key of the page")

		run(chromedp.Click(chromedp.ID("send")))  // the same fill again: a double click
		run(chromedp.Click(chromedp.ID("send2"))) // posts to the collector by itself
		injected, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#nojs [name=anonymousId]").value`))
		require.NoError(t, err)
		require.Equal(t, anon, injected, "a form posting to the collector gets the visitor's id")
		run(chromedp.Click(chromedp.ID("send3"))) // not marked for tracking
		run(chromedp.Navigate(s.URL + "/ajs"))    // a page view to wait for
		require.Equal(t, "/ajs", pagePath(c.wait(t, 1)[0]), "no other form was sent")
		browsertest.RequireNoExceptions(t, ctx)
	})

	t.Run("reset", func(t *testing.T) {
		before, err := chromedp.Run(ctx, chromedp.Evaluate[string](`contrail.anonymousId()`))
		require.NoError(t, err)
		after, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`contrail.reset(), [contrail.anonymousId(), String(localStorage.getItem("contrail_uid")), document.cookie]`))
		require.NoError(t, err)
		require.NotEqual(t, before, after[0], "a new visitor")
		require.Equal(t, "null", after[1], "no user")
		require.Contains(t, after[2], "contrail_aid="+after[0])
	})

	t.Run("analytics.js id", func(t *testing.T) {
		eval(`document.cookie = "contrail_aid=; Max-Age=0; Path=/"`)
		run(chromedp.Navigate(s.URL + "/ajs"))
		got := c.wait(t, 1)
		require.Equal(t, "ajs-123", got[0].Body["anonymousId"], "a visitor of analytics.js keeps its id")
		require.NotContains(t, got[0].Body, "userId")
	})

	t.Run("every form", func(t *testing.T) {
		run(chromedp.Navigate(s.URL+"/all"), chromedp.WaitVisible(chromedp.ID("send")), chromedp.Click(chromedp.ID("send")))
		got := c.wait(t, 1) // no page view: data-auto-page="false"
		require.Equal(t, "/v1/form/news", got[0].Path)
		require.Equal(t, "d@example.test", got[0].Body["email"], "the email input, whatever its name")
		require.Equal(t, "d@example.test", got[0].Body["mail"])
	})

	t.Run("do not track", func(t *testing.T) {
		run(chromedp.Navigate(s.URL+"/dnt"), chromedp.Click(chromedp.ID("a")))
		eval(`contrail.track("Nope")`)
		run(chromedp.Navigate(s.URL + "/ajs"))
		require.Equal(t, "/ajs", pagePath(c.wait(t, 1)[0]), "nothing from the page with Do Not Track")
	})
	browsertest.RequireNoExceptions(t, ctx)
}
