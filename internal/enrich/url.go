package enrich

import (
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// The URL helpers here slice the string instead of calling net/url.Parse,
// which allocates a *url.URL and copies the parts for every call.

// splitURL splits u into its authority (host, with any port and userinfo)
// and the rest (path, query and fragment). A URL without "scheme://" or
// "//" has no authority: it is all rest.
func splitURL(u string) (authority, rest string) {
	if i := strings.Index(u, "://"); i >= 0 && isScheme(u[:i]) {
		u = u[i+3:]
	} else if strings.HasPrefix(u, "//") {
		u = u[2:]
	} else {
		return "", u
	}
	if end := strings.IndexAny(u, "/?#\\"); end >= 0 {
		return u[:end], u[end:]
	}
	return u, ""
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// hostOf returns the lower-cased host of an authority, without userinfo,
// port, IPv6 brackets or a trailing dot.
func hostOf(authority string) string {
	h := authority
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[1:end]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return lowerASCII(h)
}

// lowerASCII returns s in lower case, allocating only when s has an
// upper-case ASCII letter (browsers send hosts in lower case already).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Path returns the path of pageURL without query or fragment, "/" when it
// is empty. The path stays percent-encoded, as the browser sent it, so two
// spellings of one page are two paths; it is a substring of pageURL.
// A string without "scheme://" is taken as a path when it starts with '/',
// else as host and path ("example.com/pricing").
func Path(pageURL string) string {
	authority, rest := splitURL(pageURL)
	if authority == "" && !strings.HasPrefix(rest, "/") {
		// "example.com/pricing": skip the host.
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return "/"
	}
	return rest
}

// UTM holds the campaign parameters of a visit.
type UTM struct {
	Source   string // utm_source, context.campaign.source
	Medium   string // utm_medium, context.campaign.medium
	Campaign string // utm_campaign, context.campaign.name
	Term     string // utm_term, context.campaign.term
	Content  string // utm_content, context.campaign.content
}

// UTMFromURL returns the utm_source, utm_medium, utm_campaign, utm_term and
// utm_content query parameters of pageURL, URL-decoded ('+' is a space).
// Parameter names match case-insensitively; the first non-empty value of a
// parameter wins; a value that does not decode is kept as it is. Parameters
// in the fragment are ignored. Values that need no decoding are substrings
// of pageURL and cost no allocation.
func UTMFromURL(pageURL string) UTM {
	var u UTM
	_, rest := splitURL(pageURL)
	i := strings.IndexAny(rest, "?#")
	if i < 0 || rest[i] == '#' {
		return u
	}
	q := rest[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		key, val, _ := strings.Cut(pair, "=")
		if len(key) < len("utm_term") || !strings.EqualFold(key[:4], "utm_") {
			continue
		}
		var dst *string
		switch name := key[4:]; {
		case strings.EqualFold(name, "source"):
			dst = &u.Source
		case strings.EqualFold(name, "medium"):
			dst = &u.Medium
		case strings.EqualFold(name, "campaign"):
			dst = &u.Campaign
		case strings.EqualFold(name, "term"):
			dst = &u.Term
		case strings.EqualFold(name, "content"):
			dst = &u.Content
		default:
			continue
		}
		if *dst == "" {
			*dst = queryUnescape(val)
		}
	}
	return u
}

// queryUnescape decodes a query value, returning v itself when it has
// nothing to decode or does not decode.
func queryUnescape(v string) string {
	if !strings.ContainsAny(v, "%+") {
		return v
	}
	if d, err := url.QueryUnescape(v); err == nil {
		return d
	}
	return v
}

// UTMFromCampaignJSON reads Segment's context.campaign object, given as its
// raw JSON: {"name","source","medium","term","content"}, where "name" is the
// campaign. String and number values are taken; anything else, and input
// that is not a JSON object, gives empty fields. The result does not share
// memory with campaign.
func UTMFromCampaignJSON(campaign []byte) UTM {
	var u UTM
	if len(campaign) == 0 {
		return u
	}
	// One copy of the object, which the field values then share, is
	// cheaper than copying each of them.
	obj := gjson.Parse(string(campaign))
	if !obj.IsObject() {
		return u
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		var s string
		switch v.Type {
		case gjson.String:
			s = v.Str
		case gjson.Number:
			s = v.Raw
		default:
			return true
		}
		var dst *string
		switch k.Str {
		case "name":
			dst = &u.Campaign
		case "source":
			dst = &u.Source
		case "medium":
			dst = &u.Medium
		case "term":
			dst = &u.Term
		case "content":
			dst = &u.Content
		default:
			return true
		}
		if *dst == "" {
			*dst = s
		}
		return true
	})
	return u
}

// ResolveUTM returns the campaign of an event: context.campaign (its raw
// JSON, nil when absent) when it has a source, since the library read it
// from the landing URL and may have kept it across pages, else the UTM
// parameters of the page URL. The two are never mixed field by field.
func ResolveUTM(campaign []byte, pageURL string) UTM {
	if u := UTMFromCampaignJSON(campaign); u.Source != "" {
		return u
	}
	return UTMFromURL(pageURL)
}
