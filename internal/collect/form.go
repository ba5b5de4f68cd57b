package collect

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/contrailhq/contrail/internal/enrich"
	"github.com/contrailhq/contrail/internal/tenant"
)

// The form endpoint, POST /v1/form/{formId}, takes a web form's post, with or
// without JavaScript, and stores it as one event of type form: Name is the
// form id, Traits the submitted fields. The event is built here as the JSON
// a client would have sent and goes through store like any other event, so
// it gets the same validation, admission, IP policy and group commit.

const (
	maxFormIDLen        = 128
	maxFormFieldNameLen = 128
	maxFormFields       = 200
	maxEmailLen         = 254

	// formCookie keeps the identity of a device whose anonymousId the form
	// endpoint generated. The page's own scripts may read it.
	formCookie = "contrail_id"
	// snippetCookie is /contrail.js's visitor cookie, on the site's domain.
	snippetCookie    = "contrail_aid"
	ajsCookie        = "ajs_anonymous_id"
	formCookieMaxAge = 2 * 365 * 24 * 60 * 60 // seconds
)

// formThanks is the answer to a form posted without JavaScript nor redirect.
const formThanks = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Thank you</title></head>
<body><p>Thank you. Your form was sent.</p></body></html>
`

// formAnswer is what a stored form fill is answered with.
type formAnswer struct {
	messageID   string
	anonymousID string
	newVisitor  bool   // anonymousID was generated here: set formCookie
	json        bool   // the JavaScript flow: answer JSON
	location    string // the 303's Location, or "" for the thank-you page
}

// serveForm handles one form post and returns the status it answered.
func (c *Collector) serveForm(w http.ResponseWriter, r *http.Request, req *request, buf *bytes.Buffer) int {
	a, e := c.processForm(r, req, buf)
	if e != nil {
		return c.refused(w, req, e)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if a.newVisitor {
		http.SetCookie(w, &http.Cookie{
			Name: formCookie, Value: a.anonymousID, Path: "/", MaxAge: formCookieMaxAge,
			SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
		})
	}
	switch {
	case a.json:
		b, _ := json.Marshal(struct {
			Success     bool   `json:"success"`
			MessageID   string `json:"messageId"`
			AnonymousID string `json:"anonymousId"`
		}{true, a.messageID, a.anonymousID})
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(b, '\n'))
		return http.StatusOK
	case a.location != "":
		h.Set("Location", a.location)
		w.WriteHeader(http.StatusSeeOther)
		return http.StatusSeeOther
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(formThanks))
	return http.StatusOK
}

// processForm authenticates and reads the post, builds its event and stores
// it. Every refusal happens before store: a refused post stores nothing.
func (c *Collector) processForm(r *http.Request, req *request, buf *bytes.Buffer) (formAnswer, *reqError) {
	formID := r.PathValue("formId")
	if !validFormID(formID) {
		return formAnswer{}, refuse(CodeInvalidFormID, "the form id must be 1 to "+strconv.Itoa(maxFormIDLen)+" characters of A-Z, a-z, 0-9, '_', '.' and '-'")
	}
	if e := c.authBasic(r, req); e != nil {
		return formAnswer{}, e
	}
	if e := c.readBody(r, req, buf); e != nil {
		return formAnswer{}, e
	}
	f, e := parseForm(r.Header.Get("Content-Type"), req.body)
	if e != nil {
		return formAnswer{}, e
	}
	if req.tenant == nil {
		key := f.writeKey
		if key == "" {
			key = r.URL.Query().Get("writeKey")
		}
		if e := c.authBody(req, key); e != nil {
			return formAnswer{}, e
		}
	}
	t := req.tenant
	userID := f.userID
	if t.IsBlockedID(userID) { // "" included: a blank userId field is no id
		userID = ""
	}
	if e := f.checkIdentity(userID); e != nil {
		return formAnswer{}, e
	}
	a := formAnswer{json: f.isJSON || acceptsJSON(r)}
	if target := f.redirect(); target != "" {
		if a.location, e = formRedirect(target, r); e != nil {
			return formAnswer{}, e
		}
	}
	a.anonymousID, a.newVisitor = formAnonymousID(r, t, f.anonymousID)

	var raw strings.Builder
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false) // keep the fields as typed
	if err := enc.Encode(formEventJSON(formID, f, userID, a.anonymousID, r, req.peerIP)); err != nil {
		// Unreachable: every part is a string or valid JSON.
		return formAnswer{}, refuse(CodeInvalidForm, "encoding the form event: "+err.Error())
	}
	if e := c.store(r.Context(), req, []string{strings.TrimSuffix(raw.String(), "\n")}, nil); e != nil {
		return formAnswer{}, e
	}
	if res := req.results[0]; res.code != "" {
		return formAnswer{}, refuse(res.code, res.msg)
	}
	a.messageID = req.results[0].messageID
	return a, nil
}

// formEvent is the JSON a client would send for a form fill.
type formEvent struct {
	MessageID   string          `json:"messageId,omitempty"`
	AnonymousID string          `json:"anonymousId"`
	UserID      string          `json:"userId,omitempty"`
	Name        string          `json:"name"`
	Traits      json.RawMessage `json:"traits"`
	Properties  formProperties  `json:"properties"`
	Context     formContext     `json:"context"`
}

type formProperties struct {
	FormID string `json:"form_id"`
	URL    string `json:"url,omitempty"`
	Path   string `json:"path,omitempty"`
}

// formContext carries what the visitor shard reads for enrichment: the
// user agent and the page (enrich.go reads both from the context).
type formContext struct {
	IP        string          `json:"ip,omitempty"`
	UserAgent string          `json:"userAgent,omitempty"`
	Page      *formPage       `json:"page,omitempty"`
	Campaign  json.RawMessage `json:"campaign,omitempty"`
}

type formPage struct {
	URL      string `json:"url"`
	Path     string `json:"path"`
	Referrer string `json:"referrer,omitempty"`
	Search   string `json:"search,omitempty"`
	Title    string `json:"title,omitempty"`
}

// formEventJSON builds the form fill's event. The page is the one a JSON
// body's context names, else the Referer: the page holding the form.
func formEventJSON(formID string, f *formData, userID, anonymousID string, r *http.Request, peerIP string) *formEvent {
	ev := &formEvent{
		MessageID:   strings.TrimSpace(f.messageID),
		AnonymousID: anonymousID,
		UserID:      userID,
		Name:        formID,
		Traits:      f.traits(),
		Properties:  formProperties{FormID: formID},
		Context:     formContext{IP: peerIP, UserAgent: r.UserAgent()},
	}
	switch ref := r.Referer(); {
	case f.page != nil:
		page := *f.page
		if page.Path == "" {
			page.Path = enrich.Path(page.URL)
		}
		ev.Properties.URL, ev.Properties.Path = page.URL, page.Path
		ev.Context.Page = &page
	case ref != "":
		path := enrich.Path(ref)
		ev.Properties.URL, ev.Properties.Path = ref, path
		ev.Context.Page = &formPage{URL: ref, Path: path}
	}
	ev.Context.Campaign = f.campaign
	return ev
}

// checkIdentity requires a usable userId or a well-formed email, and keeps
// the email trimmed in the traits.
func (f *formData) checkIdentity(userID string) *reqError {
	email, present, e := f.email()
	if e != nil {
		return e
	}
	if present {
		if !validEmail(email) {
			return refuse(CodeInvalidEmail, "email is not a valid address")
		}
		return nil
	}
	if userID != "" {
		return nil
	}
	if f.userID != "" {
		return refuse(CodeMissingIdentity, "userId "+strconv.Quote(f.userID)+" is not a usable id; send an email or a userId")
	}
	return refuse(CodeMissingIdentity, "a form fill needs an email or a userId field")
}

// validFormID reports whether id is 1 to maxFormIDLen of [A-Za-z0-9_.-].
func validFormID(id string) bool {
	if id == "" || len(id) > maxFormIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '.', b == '-':
		default:
			return false
		}
	}
	return true
}

// validEmail is a shape check, not RFC 5322: one '@' between a non-empty
// local part and domain, no whitespace or control characters, and at most
// maxEmailLen bytes.
func validEmail(s string) bool {
	if len(s) > maxEmailLen || !utf8.ValidString(s) || strings.Count(s, "@") != 1 {
		return false
	}
	if i := strings.IndexByte(s, '@'); i == 0 || i == len(s)-1 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// acceptsJSON reports whether the client asked for a JSON answer: a script
// posting the form rather than the browser navigating.
func acceptsJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "application/json") {
			return true
		}
	}
	return false
}

// formRedirect checks a redirect target and returns the Location to answer
// with. Open redirects are refused: the target is a path, taken on the site
// that posted the form (the Referer's or Origin's origin, when known), or an
// http(s) URL on that site's host.
func formRedirect(target string, r *http.Request) (string, *reqError) {
	bad := refuse(CodeInvalidRedirect, "the redirect must be a path starting with '/' or an http(s) URL on the host of the page holding the form")
	// Browsers drop tabs and newlines from URLs and read '\' as '/':
	// "/\t/evil.example" and "/\evil.example" would leave the site.
	for i := 0; i < len(target); i++ {
		if b := target[i]; b <= ' ' || b == 0x7f || b == '\\' {
			return "", bad
		}
	}
	if strings.HasPrefix(target, "/") {
		if strings.HasPrefix(target, "//") {
			return "", bad
		}
		return siteOrigin(r) + target, nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", bad
	}
	for _, h := range [...]string{"Referer", "Origin"} {
		if site := httpURL(r.Header.Get(h)); site != nil && strings.EqualFold(site.Host, u.Host) {
			return target, nil
		}
	}
	return "", bad
}

// siteOrigin returns "scheme://host" of the page that posted the form, from
// the Referer, else the Origin header, or "" when neither names one.
func siteOrigin(r *http.Request) string {
	for _, h := range [...]string{"Referer", "Origin"} {
		if u := httpURL(r.Header.Get(h)); u != nil {
			return u.Scheme + "://" + u.Host
		}
	}
	return ""
}

// httpURL parses s as an absolute http(s) URL with a host, or returns nil.
func httpURL(s string) *url.URL {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil
	}
	return u
}

// formAnonymousID returns the device's anonymousId: the posted one, else
// analytics.js's cookie, else the cookie this endpoint sets, else a new id
// (generated is then true). Ids the tenant blocks are skipped. A posted id is
// kept even when too long, so that store refuses it as for other endpoints;
// a cookie the visitor cannot fix is skipped instead.
func formAnonymousID(r *http.Request, t *tenant.Tenant, posted string) (id string, generated bool) {
	if !t.IsBlockedID(posted) {
		return posted, false
	}
	usable := func(s string) bool { return len(s) <= maxIDLen && !t.IsBlockedID(s) }
	if ck, err := r.Cookie(ajsCookie); err == nil {
		if v := ajsCookieValue(ck.Value); usable(v) {
			return v, false
		}
	}
	// The tracking snippet's cookie, when the site and the collector share
	// a host, then the form endpoint's own.
	for _, name := range []string{snippetCookie, formCookie} {
		if ck, err := r.Cookie(name); err == nil && usable(ck.Value) {
			return ck.Value, false
		}
	}
	return newAnonymousID(), true
}

// ajsCookieValue decodes analytics.js's ajs_anonymous_id cookie, which holds
// the id URL-encoded and JSON-quoted ("%22abc%22"); newer versions store it
// plain.
func ajsCookieValue(v string) string {
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	if len(v) >= 2 && v[0] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	return v
}

// newAnonymousID returns a random version 4 UUID, as analytics.js makes.
func newAnonymousID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	hex.Encode(s[9:13], b[4:6])
	hex.Encode(s[14:18], b[6:8])
	hex.Encode(s[19:23], b[8:10])
	hex.Encode(s[24:], b[10:])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}
