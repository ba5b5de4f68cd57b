package enrich

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/publicsuffix"
)

const page = "https://www.example.com/pricing?plan=pro"

func TestReferrer(t *testing.T) {
	t.Parallel()
	f := func(referrer, pageURL, wantChannel, wantDomain string) {
		t.Helper()
		channel, domain := Referrer(referrer, pageURL)
		require.Equal(t, wantChannel, channel, "channel of %q on %q", referrer, pageURL)
		require.Equal(t, wantDomain, domain, "domain of %q on %q", referrer, pageURL)
	}
	// direct
	f("", page, ChannelDirect, "")
	f("", "", ChannelDirect, "")

	// internal: same registrable domain, www or not.
	f("https://www.example.com/blog", "https://example.com/pricing", ChannelInternal, "example.com")
	f("https://example.com/", page, ChannelInternal, "example.com")
	f("https://shop.example.com/cart", page, ChannelInternal, "shop.example.com")
	f("https://WWW.Example.COM/", page, ChannelInternal, "example.com")
	f("http://localhost:3000/a", "http://localhost:3000/b", ChannelInternal, "localhost")
	f("http://[::1]:8080/a", "http://[::1]:8080/b", ChannelInternal, "::1")
	f("https://example.co.uk/", "https://www.example.co.uk/", ChannelInternal, "example.co.uk")
	// Two sites under one public suffix are two sites.
	f("https://alice.github.io/", "https://bob.github.io/", ChannelOther, "alice.github.io")
	f("https://other.co.uk/", "https://www.example.co.uk/", ChannelOther, "other.co.uk")

	// search
	f("https://www.google.com/", page, ChannelSearch, "google.com")
	f("https://www.google.co.uk/", page, ChannelSearch, "google.co.uk")
	f("https://www.google.com.br/search?q=x", page, ChannelSearch, "google.com.br")
	f("HTTPS://WWW.Bing.COM:443/search?q=x", page, ChannelSearch, "bing.com")
	f("https://cn.bing.com/", page, ChannelSearch, "cn.bing.com")
	f("https://duckduckgo.com/", page, ChannelSearch, "duckduckgo.com")
	f("www.duckduckgo.com/", page, ChannelSearch, "duckduckgo.com")
	f("https://search.yahoo.com/", page, ChannelSearch, "search.yahoo.com")
	f("https://yandex.com.tr/", page, ChannelSearch, "yandex.com.tr")
	f("https://user:pw@yandex.ru/search/", page, ChannelSearch, "yandex.ru")
	f("https://www.baidu.com/link?url=x", page, ChannelSearch, "baidu.com")
	f("https://www.ecosia.org/", page, ChannelSearch, "ecosia.org")
	f("https://www.qwant.com/", page, ChannelSearch, "qwant.com")
	f("android-app://com.google.android.googlequicksearchbox/", page, ChannelSearch, "com.google.android.googlequicksearchbox")

	// social
	f("https://t.co/abc123", page, ChannelSocial, "t.co")
	f("https://l.facebook.com/l.php?u=x", page, ChannelSocial, "l.facebook.com")
	f("https://x.com/someone/status/1", page, ChannelSocial, "x.com")
	f("https://www.linkedin.com/", page, ChannelSocial, "linkedin.com")
	f("https://lnkd.in/abc", page, ChannelSocial, "lnkd.in")
	f("https://old.reddit.com/r/golang/", page, ChannelSocial, "old.reddit.com")
	f("https://m.youtube.com/watch?v=1", page, ChannelSocial, "m.youtube.com")
	f("https://www.pinterest.co.uk/", page, ChannelSocial, "pinterest.co.uk")
	f("https://www.tiktok.com/", page, ChannelSocial, "tiktok.com")
	f("https://news.ycombinator.com/item?id=1", page, ChannelSocial, "news.ycombinator.com")

	// email: longer entries win over google.com and yahoo.
	f("https://mail.google.com/mail/u/0/", page, ChannelEmail, "mail.google.com")
	f("https://outlook.live.com/mail/0/", page, ChannelEmail, "outlook.live.com")
	f("https://mg.mail.yahoo.com/", page, ChannelEmail, "mg.mail.yahoo.com")
	f("android-app://com.google.android.gm/", page, ChannelEmail, "com.google.android.gm")

	// other
	f("https://docs.google.com/document/d/1", page, ChannelOther, "docs.google.com")
	f("https://unknown-blog.net/post?id=1#c", page, ChannelOther, "unknown-blog.net")
	f("https://googleblog.example/", page, ChannelOther, "googleblog.example")
	f("https://mygoogle.com/", page, ChannelOther, "mygoogle.com")
	f("about:blank", page, ChannelOther, "")
	f("/relative/path", page, ChannelOther, "")
	f("https://unknown-blog.net/", "", ChannelOther, "unknown-blog.net")
	f("https://www.google.com/", "not a url", ChannelSearch, "google.com")
}

func TestChannel(t *testing.T) {
	t.Parallel()
	f := func(referrer, utmMedium, wantChannel, wantDomain string) {
		t.Helper()
		channel, domain := Channel(referrer, page, utmMedium)
		require.Equal(t, wantChannel, channel, "channel of %q with medium %q", referrer, utmMedium)
		require.Equal(t, wantDomain, domain, "domain of %q with medium %q", referrer, utmMedium)
	}
	f("", "", ChannelDirect, "")
	f("https://www.google.com/", "", ChannelSearch, "google.com")

	// email and social mediums win over the referrer.
	f("", "email", ChannelEmail, "")
	f("https://t.co/x", "Newsletter", ChannelEmail, "t.co")
	f("https://tracking.example.net/r", "e-mail", ChannelEmail, "tracking.example.net")
	f("https://news.site/", "social-media", ChannelSocial, "news.site")
	f("", "social", ChannelSocial, "")

	// paid: the referrer decides unless the medium names the network.
	f("https://www.google.com/", "cpc", ChannelSearch, "google.com")
	f("https://www.bing.com/", "PPC", ChannelSearch, "bing.com")
	f("https://l.facebook.com/", "cpc", ChannelSocial, "l.facebook.com")
	f("https://example.org/", "PaidSearch", ChannelSearch, "example.org")
	f("", "paid_social", ChannelSocial, "")
	f("https://ads.example.org/", "cpc", ChannelOther, "ads.example.org")

	// Any medium without a referrer is not direct.
	f("", "cpc", ChannelOther, "")
	f("", "banner", ChannelOther, "")

	// Other mediums keep the referrer's channel.
	f("https://www.google.com/", "referral", ChannelSearch, "google.com")
	f("https://www.example.com/a", "banner", ChannelInternal, "example.com")
}

// TestReferrerTables checks the rules the lookups rely on.
func TestReferrerTables(t *testing.T) {
	t.Parallel()
	valid := map[string]bool{ChannelSearch: true, ChannelSocial: true, ChannelEmail: true, ChannelOther: true}
	for host, channel := range referrerHosts {
		require.True(t, valid[channel], "%s: channel %q", host, channel)
		require.Equal(t, strings.ToLower(host), host)
		require.False(t, strings.HasPrefix(host, "www."), host)
		suffix, _ := publicsuffix.PublicSuffix(host)
		require.NotEqual(t, suffix, host, "%s is a public suffix", host)
	}
	for label, channel := range referrerBrands {
		require.True(t, valid[channel], "%s: channel %q", label, channel)
		require.Equal(t, strings.ToLower(label), label)
		require.NotContains(t, label, ".")
	}
}
