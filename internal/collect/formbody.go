package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// formData is a form post as read: the meta fields apart, the other fields
// in the order they first appeared.
type formData struct {
	writeKey, anonymousID, userID, messageID string
	redirects                                [2]string // the first _redirect, the first redirect
	fields                                   []formField
	index                                    map[string]int // name → position in fields
	isJSON                                   bool
	// page and campaign are a JSON body's context.page and
	// context.campaign, when it has them (contrail.js sends the page).
	page     *formPage
	campaign json.RawMessage
}

// formField is one submitted field. A urlencoded or multipart field has its
// values; a field of a JSON body has its value as sent.
type formField struct {
	name   string
	values []string
	raw    string
}

// parseForm reads a form post of the given Content-Type: urlencoded,
// multipart (files are skipped) or a JSON object (application/json, or
// text/plain as navigator.sendBeacon sends it). A body without a
// Content-Type is JSON when it starts with '{', else urlencoded.
func parseForm(contentType string, body []byte) (*formData, *reqError) {
	f := &formData{index: map[string]int{}}
	mt, params, err := mime.ParseMediaType(contentType)
	switch {
	case contentType == "":
		mt = "application/x-www-form-urlencoded"
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
			mt = "application/json"
		}
	case err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter):
		return nil, refuse(CodeUnsupportedContentType, "Content-Type "+strconv.Quote(contentType)+" cannot be read")
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		return f, f.readURLEncoded(string(body))
	case "multipart/form-data":
		return f, f.readMultipart(body, params["boundary"])
	case "application/json", "text/plain":
		f.isJSON = true
		return f, f.readJSON(string(body))
	}
	return nil, refuse(CodeUnsupportedContentType, "Content-Type "+mt+" is not supported; send application/x-www-form-urlencoded, multipart/form-data, application/json or text/plain holding JSON")
}

func (f *formData) readURLEncoded(body string) *reqError {
	for pair := range strings.SplitSeq(body, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return refuse(CodeInvalidForm, "reading field name "+strconv.Quote(truncate(k, 40))+": "+err.Error())
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return refuse(CodeInvalidForm, "reading field "+strconv.Quote(truncate(name, 40))+": "+err.Error())
		}
		if e := f.add(name, value); e != nil {
			return e
		}
	}
	return nil
}

// readMultipart reads the fields of a multipart body. The body is already in
// memory, bounded by the body limit; file parts are skipped unread.
func (f *formData) readMultipart(body []byte, boundary string) *reqError {
	if boundary == "" {
		return refuse(CodeInvalidForm, "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return refuse(CodeInvalidForm, "reading multipart body: "+err.Error())
		}
		name := p.FormName()
		if name == "" || isFilePart(p) {
			continue
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return refuse(CodeInvalidForm, "reading multipart field "+strconv.Quote(truncate(name, 40))+": "+err.Error())
		}
		if e := f.add(name, string(v)); e != nil {
			return e
		}
	}
}

// isFilePart reports whether p is a file input, even one the visitor left
// empty (filename="").
func isFilePart(p *multipart.Part) bool {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return p.FileName() != ""
	}
	_, ok := params["filename"]
	return ok
}

// readJSON reads a flat JSON object; the values of the fields are kept as
// sent.
func (f *formData) readJSON(body string) *reqError {
	body = strings.TrimSpace(body)
	if body == "" || body[0] != '{' {
		return refuse(CodeInvalidJSON, "body must be a JSON object")
	}
	if !gjson.Valid(body) {
		return refuse(CodeInvalidJSON, "body is not valid JSON")
	}
	var bad *reqError
	gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
		var code Code
		var msg string
		var id idField
		switch k.Str {
		case "writeKey":
			f.writeKey = v.String()
		case "anonymousId":
			code, msg = idValue(k.Str, v, &id)
			f.anonymousID = id.s
		case "userId":
			code, msg = idValue(k.Str, v, &id)
			f.userID = id.s
		case "messageId":
			code, msg = idValue(k.Str, v, &id)
			f.messageID = id.s
		case "_redirect", "redirect":
			if v.Type != gjson.String && v.Type != gjson.Null {
				code, msg = CodeInvalidRedirect, k.Str+" must be a string"
			}
			f.setRedirect(k.Str, v.Str)
		case "context":
			code, msg = f.readContext(v)
		default:
			bad = f.addRaw(k.Str, v.Raw)
		}
		if code != "" {
			bad = refuse(code, msg)
		}
		return bad == nil
	})
	return bad
}

// add records one value of a urlencoded or multipart field. A meta field
// keeps its first value.
func (f *formData) add(name, value string) *reqError {
	switch name {
	case "":
		return nil
	case "writeKey":
		f.writeKey = first(f.writeKey, value)
	case "anonymousId":
		f.anonymousID = first(f.anonymousID, value)
	case "userId":
		f.userID = first(f.userID, value)
	case "messageId":
		f.messageID = first(f.messageID, value)
	case "_redirect", "redirect":
		f.setRedirect(name, value)
	default:
		if i, ok := f.index[name]; ok {
			f.fields[i].values = append(f.fields[i].values, value)
			return nil
		}
		if e := f.newField(name); e != nil {
			return e
		}
		f.fields[len(f.fields)-1].values = []string{value}
	}
	return nil
}

// addRaw records a field of a JSON body. A repeated key keeps its first
// value, as gjson reads it.
func (f *formData) addRaw(name, raw string) *reqError {
	if _, ok := f.index[name]; ok || name == "" {
		return nil
	}
	if e := f.newField(name); e != nil {
		return e
	}
	f.fields[len(f.fields)-1].raw = raw
	return nil
}

func (f *formData) newField(name string) *reqError {
	if len(name) > maxFormFieldNameLen {
		return refuse(CodeInvalidForm, "field name "+strconv.Quote(truncate(name, 40))+"... is longer than "+strconv.Itoa(maxFormFieldNameLen)+" bytes")
	}
	if len(f.fields) == maxFormFields {
		return refuse(CodeInvalidForm, "a form has at most "+strconv.Itoa(maxFormFields)+" fields")
	}
	f.index[name] = len(f.fields)
	f.fields = append(f.fields, formField{name: name})
	return nil
}

// setRedirect keeps the first non-empty value of _redirect and of redirect.
func (f *formData) setRedirect(name, value string) {
	i := 0
	if name == "redirect" {
		i = 1
	}
	f.redirects[i] = first(f.redirects[i], value)
}

// redirect returns where to send the browser: _redirect, else redirect, else "".
func (f *formData) redirect() string { return first(f.redirects[0], f.redirects[1]) }

// email returns the trimmed email field and replaces the field's value with
// it; present is false when there is no email or it is blank.
func (f *formData) email() (email string, present bool, e *reqError) {
	i, ok := f.index["email"]
	if !ok {
		return "", false, nil
	}
	fd := &f.fields[i]
	if !f.isJSON {
		if len(fd.values) > 1 {
			return "", false, refuse(CodeInvalidEmail, "email is given "+strconv.Itoa(len(fd.values))+" times")
		}
		email = strings.TrimSpace(fd.values[0])
		fd.values[0] = email
		return email, email != "", nil
	}
	v := gjson.Parse(fd.raw)
	switch v.Type {
	case gjson.Null:
		return "", false, nil
	case gjson.String:
		email = strings.TrimSpace(v.Str)
		fd.raw = string(appendJSON(nil, email))
		return email, email != "", nil
	}
	return "", false, refuse(CodeInvalidEmail, "email must be a string")
}

// traits returns the fields as a JSON object: a urlencoded or multipart field
// is a string, or an array of strings when it was given several times; a
// JSON field is its value as sent.
func (f *formData) traits() json.RawMessage {
	b := []byte{'{'}
	for i, fd := range f.fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendJSON(b, fd.name), ':')
		switch {
		case f.isJSON:
			b = append(b, fd.raw...)
		case len(fd.values) == 1:
			b = appendJSON(b, fd.values[0])
		default:
			b = appendJSON(b, fd.values)
		}
	}
	return append(b, '}')
}

// readContext keeps the page and the campaign of a JSON body's context,
// as a Segment event carries them; the rest of it (the user agent, the
// IP) the collector takes from the request.
func (f *formData) readContext(v gjson.Result) (Code, string) {
	if v.Type == gjson.Null {
		return "", ""
	}
	if !v.IsObject() {
		return CodeInvalidField, "context must be an object"
	}
	if p := v.Get("page"); p.Exists() && p.Type != gjson.Null {
		if !p.IsObject() {
			return CodeInvalidField, "context.page must be an object"
		}
		page := &formPage{}
		for _, fd := range []struct {
			name string
			dst  *string
		}{{"url", &page.URL}, {"path", &page.Path}, {"referrer", &page.Referrer}, {"search", &page.Search}, {"title", &page.Title}} {
			x := p.Get(fd.name)
			if x.Exists() && x.Type != gjson.String && x.Type != gjson.Null {
				return CodeInvalidField, "context.page." + fd.name + " must be a string"
			}
			*fd.dst = x.Str
		}
		if page.URL != "" || page.Path != "" {
			f.page = page
		}
	}
	if c := v.Get("campaign"); c.Exists() && c.Type != gjson.Null {
		if !c.IsObject() {
			return CodeInvalidField, "context.campaign must be an object"
		}
		f.campaign = json.RawMessage(c.Raw)
	}
	return "", ""
}

// appendJSON appends the JSON of v, a string or strings, without escaping
// HTML: the stored text is what the visitor typed.
func appendJSON(dst []byte, v any) []byte {
	w := bytes.NewBuffer(dst)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings always encode
	return bytes.TrimSuffix(w.Bytes(), []byte{'\n'})
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
