package enrich

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPath(t *testing.T) {
	t.Parallel()
	f := func(pageURL, want string) {
		t.Helper()
		require.Equal(t, want, Path(pageURL), pageURL)
	}
	f("https://example.com", "/")
	f("https://example.com/", "/")
	f("https://example.com/pricing", "/pricing")
	f("https://example.com/pricing?utm_source=x#top", "/pricing")
	f("https://example.com/docs/a/b/", "/docs/a/b/")
	f("https://example.com?x=1", "/")
	f("https://example.com#frag", "/")
	f("https://user@example.com:8080/x/y?z", "/x/y")
	f("https://example.com/a%20b", "/a%20b")
	f("//cdn.example.com/a/b", "/a/b")
	f("/docs/a?b=1", "/docs/a")
	f("example.com/pricing", "/pricing")
	f("example.com", "/")
	f("about:blank", "/")
	f("", "/")
}

func TestUTMFromURL(t *testing.T) {
	t.Parallel()
	f := func(pageURL string, want UTM) {
		t.Helper()
		require.Equal(t, want, UTMFromURL(pageURL), pageURL)
	}
	f("https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring%20sale&utm_term=running+shoes&utm_content=ad%2F1",
		UTM{Source: "google", Medium: "cpc", Campaign: "spring sale", Term: "running shoes", Content: "ad/1"})
	f("https://example.com/landing?ref=x&utm_campaign=caf%C3%A9&utm_source=newsletter#top",
		UTM{Source: "newsletter", Campaign: "café"})
	f("https://example.com/?UTM_Source=Google&utm_MEDIUM=Email", UTM{Source: "Google", Medium: "Email"})
	// The first non-empty value wins.
	f("https://example.com/?utm_source=a&utm_source=b", UTM{Source: "a"})
	f("https://example.com/?utm_source=&utm_source=b", UTM{Source: "b"})
	// A value that does not decode is kept.
	f("https://example.com/?utm_campaign=100%", UTM{Campaign: "100%"})
	// Parameters in the fragment are not the query's.
	f("https://example.com/#?utm_source=x", UTM{})
	f("https://example.com/?utm_source=x#utm_medium=y", UTM{Source: "x"})
	f("/pricing?utm_source=x", UTM{Source: "x"})
	f("https://example.com/?utm_sources=x&utm_=y&utm_source", UTM{})
	f("https://example.com/pricing", UTM{})
	f("", UTM{})
}

func TestUTMFromCampaignJSON(t *testing.T) {
	t.Parallel()
	f := func(campaign string, want UTM) {
		t.Helper()
		require.Equal(t, want, UTMFromCampaignJSON([]byte(campaign)), campaign)
	}
	f(`{"name":"spring","source":"google","medium":"cpc","term":"shoes","content":"ad1"}`,
		UTM{Source: "google", Medium: "cpc", Campaign: "spring", Term: "shoes", Content: "ad1"})
	f(`{"name":"sale \"50%\"","source":"caf\u00e9"}`, UTM{Source: "café", Campaign: `sale "50%"`})
	f(`{"name":2024,"source":"x","id":"ignored","medium":{"a":1},"term":null}`, UTM{Source: "x", Campaign: "2024"})
	f(`{"Source":"case matters"}`, UTM{})
	f(`null`, UTM{})
	f(`["source","x"]`, UTM{})
	f(`not json`, UTM{})
	f(``, UTM{})
	require.Equal(t, UTM{}, UTMFromCampaignJSON(nil))

	// The result owns its memory: the caller may reuse the buffer.
	buf := []byte(`{"source":"google","name":"spring"}`)
	u := UTMFromCampaignJSON(buf)
	copy(buf, `{"source":"XXXXXX","name":"XXXXXX"}`)
	require.Equal(t, UTM{Source: "google", Campaign: "spring"}, u)
}

func TestResolveUTM(t *testing.T) {
	t.Parallel()
	pageURL := "https://example.com/?utm_source=url&utm_medium=email"
	f := func(campaign string, want UTM) {
		t.Helper()
		require.Equal(t, want, ResolveUTM([]byte(campaign), pageURL), campaign)
	}
	f(`{"source":"ctx","name":"c"}`, UTM{Source: "ctx", Campaign: "c"})
	f(`{"name":"no source"}`, UTM{Source: "url", Medium: "email"})
	f(``, UTM{Source: "url", Medium: "email"})
	require.Equal(t, UTM{}, ResolveUTM(nil, "https://example.com/"))
}
