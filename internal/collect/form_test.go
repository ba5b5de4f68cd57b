package collect

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
)

const urlencoded = "application/x-www-form-urlencoded"

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// formReq is one post to the form endpoint.
type formReq struct {
	path        string // default /v1/form/contact-us
	contentType string
	body        string
	header      map[string]string // Cookie, Referer, Accept...
	basic       string            // write key as Basic auth user
}

// sendForm posts fr without following redirects.
func sendForm(t testing.TB, srv *httptest.Server, fr formReq) (*http.Response, string) {
	t.Helper()
	if fr.path == "" {
		fr.path = "/v1/form/contact-us"
	}
	req, err := http.NewRequest("POST", srv.URL+fr.path, strings.NewReader(fr.body))
	require.NoError(t, err)
	if fr.contentType != "" {
		req.Header.Set("Content-Type", fr.contentType)
	}
	for k, v := range fr.header {
		req.Header.Set(k, v)
	}
	if fr.basic != "" {
		req.SetBasicAuth(fr.basic, "")
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp, readAll(resp)
}

// storedEvents returns every event appended to log.
func storedEvents(log *fakeLog) []event.Event {
	var out []event.Event
	for _, m := range log.messages() {
		out = append(out, m.events...)
	}
	return out
}

// onlyEvent returns the one event stored.
func onlyEvent(t testing.TB, log *fakeLog) event.Event {
	t.Helper()
	evs := storedEvents(log)
	require.Len(t, evs, 1)
	return evs[0]
}

func TestFormURLEncodedRedirect(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, c := startCollector(t, log, 4, nil)
	const ref = "https://www.example.com/contact?utm_source=news"
	resp, body := sendForm(t, srv, formReq{
		contentType: urlencoded,
		body:        "writeKey=wk&email=+ann%40example.com+&name=Ann+%3CLee%3E&interest=a&interest=b&_redirect=%2Fthanks&anonymousId=undefined",
		header: map[string]string{
			"Referer": ref, "User-Agent": "Mozilla/5.0 (test)", "Origin": "https://www.example.com",
			"Cookie": "ajs_anonymous_id=%22abc-123%22; contrail_id=other",
		},
	})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	require.Equal(t, "https://www.example.com/thanks", resp.Header.Get("Location"), "a path is taken on the site that posted the form")
	require.Empty(t, resp.Header.Values("Set-Cookie"), "the device already has an id")
	require.Equal(t, "https://www.example.com", resp.Header.Get("Access-Control-Allow-Origin"))

	e := onlyEvent(t, log)
	require.Equal(t, event.TypeForm, e.Type)
	require.Equal(t, "contact-us", e.Name)
	require.Equal(t, "tn_test", e.Tenant)
	require.Equal(t, "abc-123", e.AnonymousID, "from the ajs cookie; the blocked posted id is skipped")
	require.Empty(t, e.UserID)
	require.Empty(t, e.Event)
	require.True(t, strings.HasPrefix(e.MessageID, "ctr-"), e.MessageID)
	require.Equal(t, "127.0.0.1", e.IP)
	require.False(t, e.ReceivedAt.IsZero())
	require.Equal(t, e.ReceivedAt, e.Timestamp)
	require.JSONEq(t, `{"email":"ann@example.com","name":"Ann <Lee>","interest":["a","b"]}`, string(e.Traits))
	require.Contains(t, string(e.Traits), `"Ann <Lee>"`, "stored as typed, not HTML-escaped")
	require.JSONEq(t, `{"form_id":"contact-us","url":"`+ref+`","path":"/contact"}`, string(e.Properties))
	require.JSONEq(t, `{"ip":"127.0.0.1","userAgent":"Mozilla/5.0 (test)","page":{"url":"`+ref+`","path":"/contact"}}`, string(e.Context))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.requests.WithLabelValues("form", "303")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.accepted.WithLabelValues("tn_test")))
}

func TestFormJSON(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 4, nil)
	resp, body := sendForm(t, srv, formReq{
		contentType: "application/json",
		body:        `{"writeKey":"wk","email":"bob@example.com","plan":"pro","seats":5,"consent":true,"tags":["x"],"messageId":"m-1","userId":42}`,
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var answer map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &answer))
	anon, _ := answer["anonymousId"].(string)
	require.Regexp(t, uuidV4, anon, "a new visitor gets a new id")
	require.Equal(t, map[string]any{"success": true, "messageId": "m-1", "anonymousId": anon}, answer)

	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	ck := cookies[0]
	require.Equal(t, "contrail_id", ck.Name)
	require.Equal(t, anon, ck.Value)
	require.Equal(t, "/", ck.Path)
	require.Equal(t, 2*365*24*3600, ck.MaxAge)
	require.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	require.False(t, ck.HttpOnly, "the page's scripts may read it")

	e := onlyEvent(t, log)
	require.Equal(t, event.TypeForm, e.Type)
	require.Equal(t, anon, e.AnonymousID)
	require.Equal(t, "42", e.UserID)
	require.Equal(t, "m-1", e.MessageID)
	require.JSONEq(t, `{"email":"bob@example.com","plan":"pro","seats":5,"consent":true,"tags":["x"]}`, string(e.Traits))
	require.JSONEq(t, `{"form_id":"contact-us"}`, string(e.Properties), "no Referer, no page")

	// The device comes back with its cookie: same id, no new cookie.
	resp, body = sendForm(t, srv, formReq{
		contentType: "application/json", body: `{"writeKey":"wk","userId":"u-7"}`,
		header: map[string]string{"Cookie": "contrail_id=" + anon},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Empty(t, resp.Cookies())
	evs := storedEvents(log)
	require.Len(t, evs, 2)
	require.Equal(t, anon, evs[1].AnonymousID)
	require.Equal(t, "u-7", evs[1].UserID)
	require.JSONEq(t, `{}`, string(evs[1].Traits))
}

// A JSON body may carry the page and the campaign in its context, as a
// Segment event does: the page is the form fill's (over the Referer), and
// neither becomes a trait.
func TestFormJSONContext(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 4, nil)
	resp, body := sendForm(t, srv, formReq{
		contentType: "text/plain",
		body: `{"writeKey":"wk","email":"ann@example.com","plan":"pro","context":{"page":{"url":"https://shop.example/pricing?utm_source=news",` +
			`"referrer":"https://www.google.com/","title":"Pricing"},"campaign":{"source":"news","medium":"email"},"userAgent":"ignored","ip":"6.6.6.6"}}`,
		header: map[string]string{"Referer": "https://shop.example/other", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	e := onlyEvent(t, log)
	require.JSONEq(t, `{"email":"ann@example.com","plan":"pro"}`, string(e.Traits))
	require.JSONEq(t, `{"form_id":"contact-us","url":"https://shop.example/pricing?utm_source=news","path":"/pricing"}`, string(e.Properties))
	var ctx struct {
		IP, UserAgent string
		Page          map[string]string
		Campaign      map[string]string
	}
	require.NoError(t, json.Unmarshal(e.Context, &ctx), string(e.Context))
	require.Equal(t, map[string]string{"url": "https://shop.example/pricing?utm_source=news", "path": "/pricing",
		"referrer": "https://www.google.com/", "title": "Pricing"}, ctx.Page)
	require.Equal(t, map[string]string{"source": "news", "medium": "email"}, ctx.Campaign)
	require.Equal(t, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", ctx.UserAgent, "the request's, not the body's")
	require.NotEqual(t, "6.6.6.6", ctx.IP, "the peer's, not the body's")

	// A context that is not one is refused, and nothing is stored.
	for _, bad := range []string{`"context":"x"`, `"context":{"page":"x"}`, `"context":{"page":{"url":1}}`, `"context":{"campaign":[]}`} {
		resp, body := sendForm(t, srv, formReq{contentType: "application/json", body: `{"writeKey":"wk","email":"ann@example.com",` + bad + `}`})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, string(CodeInvalidField), bad)
	}
	require.Len(t, storedEvents(log), 1)
}

// navigator.sendBeacon posts text/plain and cannot set headers: the write
// key comes in the query.
func TestFormBeaconWriteKeyInQuery(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 1, nil)
	resp, body := sendForm(t, srv, formReq{
		path: "/v1/form/news.letter_2?writeKey=wk", contentType: "text/plain;charset=UTF-8",
		body: `{"email":"c@example.org","anonymousId":"dev-1"}`,
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"anonymousId":"dev-1"`)
	e := onlyEvent(t, log)
	require.Equal(t, "news.letter_2", e.Name)
	require.Equal(t, "dev-1", e.AnonymousID)
	require.JSONEq(t, `{"email":"c@example.org"}`, string(e.Traits))
}

func TestFormMultipart(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 2, nil)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.WriteField("email", "dee@example.com"))
	require.NoError(t, mw.WriteField("tag", "one"))
	require.NoError(t, mw.WriteField("tag", "two"))
	require.NoError(t, mw.WriteField("userId", "u-9"))
	fw, err := mw.CreateFormFile("cv", "cv.pdf")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("%PDF-1.4 not a field"))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="photo"; filename=""`) // a file input left empty
	h.Set("Content-Type", "application/octet-stream")
	_, err = mw.CreatePart(h)
	require.NoError(t, err)
	require.NoError(t, mw.Close())

	resp, body := sendForm(t, srv, formReq{
		contentType: mw.FormDataContentType(), body: b.String(), basic: "wk",
		header: map[string]string{"Accept": "application/json, text/plain, */*"},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"success":true`)
	e := onlyEvent(t, log)
	require.Equal(t, "u-9", e.UserID)
	require.JSONEq(t, `{"email":"dee@example.com","tag":["one","two"]}`, string(e.Traits), "files are not fields")
}

func TestFormThankYouPage(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 1, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("email=eve%40example.com"))
	require.NoError(t, zw.Close())
	resp, body := sendForm(t, srv, formReq{
		contentType: urlencoded, body: gz.String(), basic: "wk",
		header: map[string]string{"Content-Encoding": "gzip"},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, body, "Thank you")
	require.Len(t, resp.Cookies(), 1, "a new visitor gets its cookie in every flow")
	e := onlyEvent(t, log)
	require.Equal(t, resp.Cookies()[0].Value, e.AnonymousID)
	require.JSONEq(t, `{"email":"eve@example.com"}`, string(e.Traits))
}

func TestFormWriteKey(t *testing.T) {
	t.Parallel()
	f := func(path, body, basic string, wantStatus int, wantCode Code) {
		t.Helper()
		log := &fakeLog{}
		srv, _ := startCollector(t, log, 1, nil)
		resp, answer := sendForm(t, srv, formReq{path: path, contentType: urlencoded, body: body, basic: basic})
		require.Equal(t, wantStatus, resp.StatusCode, answer)
		if wantCode != "" {
			require.Contains(t, answer, `"code":"`+string(wantCode)+`"`)
			require.Empty(t, storedEvents(log))
			return
		}
		require.Equal(t, "tn_test", onlyEvent(t, log).Tenant)
	}
	const p = "/v1/form/f1"
	f(p, "email=a%40b.co", "wk", 200, "")
	f(p, "email=a%40b.co&writeKey=wk", "", 200, "")
	f(p+"?writeKey=wk", "email=a%40b.co", "", 200, "")
	f(p+"?writeKey=nope", "email=a%40b.co&writeKey=wk", "", 200, "") // the field wins over the query
	f(p, "email=a%40b.co", "nope", 401, CodeInvalidWriteKey)
	f(p, "email=a%40b.co&writeKey=nope", "", 401, CodeInvalidWriteKey)
	f(p+"?writeKey=nope", "email=a%40b.co", "", 401, CodeInvalidWriteKey)
	f(p, "email=a%40b.co", "", 401, CodeMissingWriteKey)
}

// Every refusal answers the collector's JSON error, and stores nothing.
func TestFormRefusals(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, c := startCollector(t, log, 2, nil)
	c.deps.Tenants.(fakeTenants)["wk"].Limits.MaxEventBytes = 1024 // before any request
	const ref = "https://www.example.com/contact"
	f := func(fr formReq, wantStatus int, wantCode Code) {
		t.Helper()
		if fr.contentType == "" {
			fr.contentType = urlencoded
		}
		fr.basic = "wk"
		resp, body := sendForm(t, srv, fr)
		require.Equal(t, wantStatus, resp.StatusCode, body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var answer struct {
			Success bool `json:"success"`
			Error   struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal([]byte(body), &answer), body)
		require.False(t, answer.Success)
		require.Equal(t, string(wantCode), answer.Error.Code, answer.Error.Message)
		require.Empty(t, storedEvents(log), "nothing stored for %+v", fr)
	}
	withRef := map[string]string{"Referer": ref}
	// Identity.
	f(formReq{body: "name=Ann"}, 400, CodeMissingIdentity)
	f(formReq{body: "email=+++&name=Ann"}, 400, CodeMissingIdentity)
	f(formReq{body: "name=Ann", path: "/v1/form/x?userId=u"}, 400, CodeMissingIdentity) // ids are not read from the query
	f(formReq{body: "userId=undefined&name=Ann"}, 400, CodeMissingIdentity)
	f(formReq{contentType: "application/json", body: `{"userId":null,"email":null}`}, 400, CodeMissingIdentity)
	f(formReq{body: "email=ann"}, 400, CodeInvalidEmail)
	f(formReq{body: "email=ann%40b.co&userId=u&email=x%40y.z"}, 400, CodeInvalidEmail)
	f(formReq{body: "email=not+an%40email&userId=u"}, 400, CodeInvalidEmail)
	f(formReq{contentType: "application/json", body: `{"email":42}`}, 400, CodeInvalidEmail)
	// Redirects.
	f(formReq{body: "email=a%40b.co&_redirect=%2F%2Fevil.example%2F", header: withRef}, 400, CodeInvalidRedirect)
	f(formReq{body: "email=a%40b.co&redirect=https%3A%2F%2Fevil.example%2F", header: withRef}, 400, CodeInvalidRedirect)
	f(formReq{body: "email=a%40b.co&_redirect=javascript%3Aalert(1)", header: withRef}, 400, CodeInvalidRedirect)
	f(formReq{body: "email=a%40b.co&_redirect=https%3A%2F%2Fwww.example.com%2F"}, 400, CodeInvalidRedirect) // no Referer nor Origin
	f(formReq{contentType: "application/json", body: `{"email":"a@b.co","_redirect":["/x"]}`}, 400, CodeInvalidRedirect)
	// Form ids.
	f(formReq{path: "/v1/form/a%20b", body: "email=a%40b.co"}, 400, CodeInvalidFormID)
	f(formReq{path: "/v1/form/a%24b", body: "email=a%40b.co"}, 400, CodeInvalidFormID)
	f(formReq{path: "/v1/form/" + strings.Repeat("f", maxFormIDLen+1), body: "email=a%40b.co"}, 400, CodeInvalidFormID)
	// Bodies.
	f(formReq{body: "email=a%40b.co&bad=%zz"}, 400, CodeInvalidForm)
	f(formReq{body: "email=a%40b.co&" + strings.Repeat("n", maxFormFieldNameLen+1) + "=1"}, 400, CodeInvalidForm)
	var many strings.Builder
	many.WriteString("email=a%40b.co")
	for i := range maxFormFields {
		many.WriteString("&f" + strconv.Itoa(i) + "=1")
	}
	f(formReq{body: many.String()}, 400, CodeInvalidForm)
	f(formReq{contentType: "multipart/form-data", body: "email=a%40b.co"}, 400, CodeInvalidForm)
	f(formReq{contentType: "application/json", body: `{"email":"a@b.co"`}, 400, CodeInvalidJSON)
	f(formReq{contentType: "text/plain", body: "email=a@b.co\r\n"}, 400, CodeInvalidJSON)
	f(formReq{contentType: "application/xml", body: "<email/>"}, 415, CodeUnsupportedContentType)
	f(formReq{body: "email=a%40b.co&note=" + strings.Repeat("x", 1024)}, 413, CodeEventTooLarge)
	f(formReq{body: "email=a%40b.co&anonymousId=" + strings.Repeat("x", maxIDLen+1)}, 400, CodeInvalidID)
}

// The anonymousId comes from the post, else the ajs cookie, else the
// contrail_id cookie; blocked or unreadable ids are skipped.
func TestFormAnonymousID(t *testing.T) {
	t.Parallel()
	log := &fakeLog{}
	srv, _ := startCollector(t, log, 1, nil)
	f := func(field, cookie, want string) {
		t.Helper()
		body := "email=a%40b.co"
		if field != "" {
			body += "&anonymousId=" + field
		}
		resp, answer := sendForm(t, srv, formReq{
			contentType: urlencoded, body: body, basic: "wk",
			header: map[string]string{"Cookie": cookie, "Accept": "application/json"},
		})
		require.Equal(t, http.StatusOK, resp.StatusCode, answer)
		evs := storedEvents(log)
		got := evs[len(evs)-1].AnonymousID
		require.Contains(t, answer, `"anonymousId":"`+got+`"`)
		if want == "new" {
			require.Regexp(t, uuidV4, got)
			require.Len(t, resp.Cookies(), 1)
			return
		}
		require.Equal(t, want, got)
		require.Empty(t, resp.Cookies())
	}
	f("posted", "ajs_anonymous_id=%22ajs%22; contrail_id=ours", "posted")
	f("", "ajs_anonymous_id=%22ajs%22; contrail_id=ours", "ajs")
	f("", `ajs_anonymous_id="quoted"`, "quoted")
	f("", "ajs_anonymous_id=plain-v2", "plain-v2")
	f("null", "ajs_anonymous_id=%22undefined%22; contrail_id=ours", "ours")
	f("", "ajs_anonymous_id="+strings.Repeat("x", maxIDLen+1)+"; contrail_id=ours", "ours")
	f("", "contrail_id=ours", "ours")
	f("", "contrail_id=ours; contrail_aid=snippet", "snippet") // /contrail.js's cookie, same host
	f("", "contrail_aid=anonymous; contrail_id=ours", "ours")
	f("", "contrail_id=anonymous", "new")
	f("", "", "new")
}
