package collect

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFormRedirectTarget(t *testing.T) {
	f := func(target, referer, origin, want string) {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/form/x", nil)
		if referer != "" {
			r.Header.Set("Referer", referer)
		}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		got, e := formRedirect(target, r)
		if want == "" {
			require.NotNil(t, e, "%q is an open redirect, got %q", target, got)
			require.Equal(t, CodeInvalidRedirect, e.code)
			return
		}
		require.Nil(t, e, target)
		require.Equal(t, want, got)
	}
	const site = "https://www.example.com/contact?x=1"
	f("/thanks", site, "", "https://www.example.com/thanks")
	f("/thanks?a=1#top", "", "https://shop.example.com", "https://shop.example.com/thanks?a=1#top")
	f("/thanks", "", "", "/thanks")
	f("/thanks", "", "null", "/thanks")
	f("https://www.example.com/ok?x=1", site, "", "https://www.example.com/ok?x=1")
	f("https://WWW.Example.com/ok", site, "", "https://WWW.Example.com/ok")
	f("http://www.example.com/ok", "", "https://www.example.com", "http://www.example.com/ok")
	f("https://www.example.com/ok", "https://evil.example/", "https://www.example.com", "https://www.example.com/ok")

	f("https://evil.example/", site, "", "")
	f("https://www.example.com:8443/", site, "", "")
	f("https://www.example.com@evil.example/", site, "", "")
	f("https://user@www.example.com/", site, "", "")
	f("https://www.example.com/", "", "", "")
	f("https://www.example.com/", "javascript:alert(1)//www.example.com", "", "")
	f("//evil.example/", site, "", "")
	f("/\\evil.example/", site, "", "")
	f("/\t/evil.example/", site, "", "")
	f("/ /evil.example/", site, "", "")
	f("javascript:alert(1)", site, "", "")
	f("ftp://www.example.com/", site, "", "")
	f("thanks", site, "", "")
	f("www.example.com/thanks", site, "", "")
}

func TestValidEmail(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		require.Equal(t, want, validEmail(s), "%q", s)
	}
	f("a@b.co", true)
	f("first.last+tag@sub.example.com", true)
	f("élodie@exemple.fr", true)
	f("a@b", true) // a shape check, not a domain check
	f("", false)
	f("ann", false)
	f("@b.co", false)
	f("a@", false)
	f("a@b@c", false)
	f("a b@c.d", false)
	f("a@c.d\u00a0", false)
	f("a@c\n.d", false)
	f("a@b.co\xff", false)
	f(strings.Repeat("a", 64)+"@"+strings.Repeat("b", 189), true) // 254 bytes
	f(strings.Repeat("a", 64)+"@"+strings.Repeat("b", 190), false)
}

func TestValidFormID(t *testing.T) {
	f := func(s string, want bool) {
		t.Helper()
		require.Equal(t, want, validFormID(s), "%q", s)
	}
	f("contact-us", true)
	f("Newsletter_2026.v2", true)
	f(strings.Repeat("x", maxFormIDLen), true)
	f(strings.Repeat("x", maxFormIDLen+1), false)
	f("", false)
	f("a b", false)
	f("a/b", false)
	f("é", false)
}

func TestAJSCookieValue(t *testing.T) {
	f := func(raw, want string) {
		t.Helper()
		require.Equal(t, want, ajsCookieValue(raw))
	}
	f("%22abc%22", "abc")
	f("abc", "abc")
	f(`"abc"`, "abc")
	f("%22a%5C%22b%22", `a"b`)
	f("%22unterminated", `"unterminated`)
	f("%zz", "%zz")
}

func TestParseFormFields(t *testing.T) {
	f := func(contentType, body, wantTraits string) {
		t.Helper()
		fd, e := parseForm(contentType, []byte(body))
		require.Nil(t, e, body)
		require.JSONEq(t, wantTraits, string(fd.traits()), body)
	}
	f(urlencoded, "b=2&a=1&b=3&writeKey=k&anonymousId=x&userId=u&messageId=m&_redirect=/r&redirect=/s", `{"b":["2","3"],"a":"1"}`)
	f(urlencoded, "a&=x&&c=%E2%9C%93+ok", `{"a":"","c":"✓ ok"}`)
	f("", "a=1", `{"a":"1"}`)
	f("", ` {"a":{"b":[1,null]}}`, `{"a":{"b":[1,null]}}`)
	f("application/json; charset=utf-8", `{"a":"<b>&","a":"second","writeKey":"k"}`, `{"a":"<b>&"}`)

	fd, e := parseForm(urlencoded, []byte("redirect=/s&_redirect=/r&writeKey=k1&writeKey=k2&userId=&userId=u"))
	require.Nil(t, e)
	require.Equal(t, "/r", fd.redirect(), "_redirect wins over redirect")
	require.Equal(t, "k1", fd.writeKey)
	require.Equal(t, "u", fd.userID, "the first non-empty value")
}
