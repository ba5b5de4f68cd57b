package enrich

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Channels reported by [Referrer] and [Channel].
const (
	ChannelSearch   = "search"
	ChannelSocial   = "social"
	ChannelEmail    = "email"
	ChannelDirect   = "direct"
	ChannelInternal = "internal"
	ChannelOther    = "other"
)

// Referrer classifies where a visit came from by its referrer URL; pageURL
// is the URL of the page that was visited. The channel is:
//   - direct: there is no referrer;
//   - internal: the referrer has the same registrable domain (eTLD+1, by
//     the public suffix list) as the page, so www.example.com,
//     example.com and shop.example.com are one site, while two sites under
//     a shared suffix such as github.io are not (a referrer that is a
//     subdomain of the page's host is always internal);
//   - search, social or email: the referrer's host is in the table of
//     referrer_hosts.go, or is a subdomain of a host there (the longest
//     entry wins), or is one of the search engines that run a domain per
//     country, such as google.co.uk or yandex.com.tr;
//   - other: any other referrer, including one with no host.
//
// Android apps send "android-app://<package>" referrers; the package is
// looked up like a host, so the Gmail app is email.
//
// domain is the referrer's host, lower-cased, without userinfo, port and a
// leading "www.": "" when there is none. It is a substring of referrer
// unless referrer had upper-case letters.
func Referrer(referrer, pageURL string) (channel, domain string) {
	if referrer == "" {
		return ChannelDirect, ""
	}
	host := referrerHost(referrer)
	domain = strings.TrimPrefix(host, "www.")
	if host == "" {
		return ChannelOther, ""
	}
	// The public-suffix lookups cost ~100 ns and an allocation each (the
	// list first tries the name as an IP address), so the common cases are
	// decided without them: the same host, a subdomain of the page's host,
	// and a referrer in the table.
	var page string
	if pageURL != "" {
		pageAuth, _ := splitURL(pageURL)
		page = strings.TrimPrefix(hostOf(pageAuth), "www.")
		if page != "" && (domain == page || isSubdomain(domain, page)) {
			return ChannelInternal, domain
		}
	}
	if c, ok := lookupHost(host); ok {
		return c, domain
	}
	reg, label := registrable(host)
	if page != "" && (page == reg || isSubdomain(page, reg)) {
		if pageReg, _ := registrable(page); pageReg == reg {
			return ChannelInternal, domain
		}
	}
	if c, ok := referrerBrands[label]; ok {
		return c, domain
	}
	return ChannelOther, domain
}

// isSubdomain reports whether host is a subdomain of parent.
func isSubdomain(host, parent string) bool {
	return len(host) > len(parent) && host[len(host)-len(parent)-1] == '.' && strings.HasSuffix(host, parent)
}

// Channel is [Referrer] corrected by the visit's utm_medium, so that tagged
// links count where their sender meant them to (values compare
// case-insensitively):
//   - "email", "e-mail", "e_mail", "newsletter": email, whatever the referrer
//     (webmail often sends none, or a redirector's);
//   - "social", "social-media", "social_media", "socialmedia",
//     "social-network", "sm": social;
//   - paid media, "cpc", "ppc" and "paid*": a medium that names the network
//     ("paid_social", "paidsearch"...) gives social or search; otherwise the
//     referrer decides, so a Google ad click is search and a Facebook ad
//     click social;
//   - with any medium, a visit without a referrer is other, not direct:
//     direct means there is no information about the source at all.
//
// Any other medium leaves the referrer's channel. domain is always the
// referrer's, as [Referrer] returns it.
func Channel(referrer, pageURL, utmMedium string) (channel, domain string) {
	channel, domain = Referrer(referrer, pageURL)
	if utmMedium == "" {
		return channel, domain
	}
	m := lowerASCII(utmMedium)
	switch m {
	case "email", "e-mail", "e_mail", "newsletter":
		return ChannelEmail, domain
	case "social", "social-media", "social_media", "socialmedia", "social-network", "sm":
		return ChannelSocial, domain
	}
	if m == "cpc" || m == "ppc" || strings.HasPrefix(m, "paid") {
		switch {
		case strings.Contains(m, "social"):
			return ChannelSocial, domain
		case strings.Contains(m, "search"):
			return ChannelSearch, domain
		}
	}
	if channel == ChannelDirect {
		return ChannelOther, domain
	}
	return channel, domain
}

// referrerHost returns the lower-cased host of a referrer, which may lack
// a scheme ("www.google.com/"); "" for a path or an opaque URI such as
// "about:blank".
func referrerHost(referrer string) string {
	authority, rest := splitURL(referrer)
	if authority == "" {
		if strings.HasPrefix(rest, "/") {
			return ""
		}
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[:i]
		}
		if strings.IndexByte(rest, ':') >= 0 {
			return ""
		}
		authority = rest
	}
	return hostOf(authority)
}

// registrable returns the registrable domain of a lower-case host (eTLD+1,
// "google.co.uk" for "www.google.co.uk") and its label before the public
// suffix ("google"). A host that is a public suffix itself, an IP address or
// a single label is its own registrable domain, with no label.
func registrable(host string) (reg, label string) {
	suffix, _ := publicsuffix.PublicSuffix(host)
	i := len(host) - len(suffix) - 1
	if i <= 0 || host[i] != '.' {
		return host, ""
	}
	start := strings.LastIndexByte(host[:i], '.') + 1
	return host[start:], host[start:i]
}

// lookupHost looks a lower-case referrer host up in referrerHosts, and then
// each of its parent domains. The table holds no public suffixes, so going
// past the registrable domain cannot match wrongly.
func lookupHost(host string) (channel string, ok bool) {
	for h := host; ; {
		if c, ok := referrerHosts[h]; ok {
			return c, true
		}
		i := strings.IndexByte(h, '.')
		if i < 0 {
			return "", false
		}
		h = h[i+1:]
	}
}
