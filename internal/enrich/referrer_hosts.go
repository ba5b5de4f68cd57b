package enrich

// The referrer tables. No maintained Go port of a referrer dataset (such as
// Snowplow's referer-parser) is available, so this is a short table of the
// sources that carry most traffic, in the spirit of Snowplow's and of the
// source lists behind Google Analytics' default channel groups. Add a host
// here when a tenant's "other" referrers show one that belongs to a channel.
//
// A host matches itself and its subdomains; the longest match wins, so
// mail.google.com is email although google.com is search. Hosts are lower
// case, without "www.", and must not be public suffixes (such as "co.uk"
// or "github.io"), which would match every site under them. Android app referrers ("android-app://<package>")
// are looked up by their package name.

// referrerHosts maps a referrer host to its channel.
var referrerHosts = map[string]string{
	// Search engines. The brands of referrerBrands match without an entry
	// here; their main domains are listed to spare a public-suffix lookup.
	"google.com":           ChannelSearch,
	"yahoo.com":            ChannelSearch,
	"yandex.ru":            ChannelSearch,
	"yandex.com":           ChannelSearch,
	"bing.com":             ChannelSearch,
	"duckduckgo.com":       ChannelSearch,
	"baidu.com":            ChannelSearch,
	"ecosia.org":           ChannelSearch,
	"qwant.com":            ChannelSearch,
	"startpage.com":        ChannelSearch,
	"search.brave.com":     ChannelSearch,
	"ya.ru":                ChannelSearch,
	"naver.com":            ChannelSearch,
	"seznam.cz":            ChannelSearch,
	"sogou.com":            ChannelSearch,
	"so.com":               ChannelSearch,
	"ask.com":              ChannelSearch,
	"search.aol.com":       ChannelSearch,
	"go.mail.ru":           ChannelSearch,
	"yep.com":              ChannelSearch,
	"mojeek.com":           ChannelSearch,
	"kagi.com":             ChannelSearch,
	"googleadservices.com": ChannelSearch,
	"com.google.android.googlequicksearchbox": ChannelSearch,

	// Google properties that are not search.
	"docs.google.com":      ChannelOther,
	"drive.google.com":     ChannelOther,
	"sites.google.com":     ChannelOther,
	"calendar.google.com":  ChannelOther,
	"accounts.google.com":  ChannelOther,
	"play.google.com":      ChannelOther,
	"support.google.com":   ChannelOther,
	"translate.google.com": ChannelOther,

	// Social networks, forums and video sites.
	"facebook.com":           ChannelSocial,
	"fb.com":                 ChannelSocial,
	"fb.me":                  ChannelSocial,
	"messenger.com":          ChannelSocial,
	"instagram.com":          ChannelSocial,
	"threads.net":            ChannelSocial,
	"threads.com":            ChannelSocial,
	"twitter.com":            ChannelSocial,
	"t.co":                   ChannelSocial,
	"x.com":                  ChannelSocial,
	"linkedin.com":           ChannelSocial,
	"lnkd.in":                ChannelSocial,
	"reddit.com":             ChannelSocial,
	"redd.it":                ChannelSocial,
	"youtube.com":            ChannelSocial,
	"youtu.be":               ChannelSocial,
	"tiktok.com":             ChannelSocial,
	"snapchat.com":           ChannelSocial,
	"tumblr.com":             ChannelSocial,
	"vk.com":                 ChannelSocial,
	"ok.ru":                  ChannelSocial,
	"weibo.com":              ChannelSocial,
	"quora.com":              ChannelSocial,
	"bsky.app":               ChannelSocial,
	"mastodon.social":        ChannelSocial,
	"discord.com":            ChannelSocial,
	"t.me":                   ChannelSocial,
	"whatsapp.com":           ChannelSocial,
	"wa.me":                  ChannelSocial,
	"news.ycombinator.com":   ChannelSocial,
	"xing.com":               ChannelSocial,
	"twitch.tv":              ChannelSocial,
	"vimeo.com":              ChannelSocial,
	"com.facebook.katana":    ChannelSocial,
	"com.twitter.android":    ChannelSocial,
	"com.linkedin.android":   ChannelSocial,
	"com.reddit.frontpage":   ChannelSocial,
	"org.telegram.messenger": ChannelSocial,

	// Webmail.
	"mail.google.com":       ChannelEmail,
	"inbox.google.com":      ChannelEmail,
	"outlook.live.com":      ChannelEmail,
	"outlook.office.com":    ChannelEmail,
	"outlook.office365.com": ChannelEmail,
	"outlook.com":           ChannelEmail,
	"mail.yahoo.com":        ChannelEmail,
	"mail.yahoo.co.jp":      ChannelEmail,
	"mail.aol.com":          ChannelEmail,
	"mail.proton.me":        ChannelEmail,
	"mail.protonmail.com":   ChannelEmail,
	"mail.zoho.com":         ChannelEmail,
	"mail.zoho.eu":          ChannelEmail,
	"mail.yandex.ru":        ChannelEmail,
	"mail.yandex.com":       ChannelEmail,
	"mail.ru":               ChannelEmail,
	"fastmail.com":          ChannelEmail,
	"mail.163.com":          ChannelEmail,
	"mail.qq.com":           ChannelEmail,
	"gmx.net":               ChannelEmail,
	"gmx.de":                ChannelEmail,
	"gmx.com":               ChannelEmail,
	"web.de":                ChannelEmail,
	"mail.com":              ChannelEmail,
	"com.google.android.gm": ChannelEmail,
}

// referrerBrands maps the label of a registrable domain to a channel, for
// the sites that run a domain per country: google.de, yahoo.co.jp,
// yandex.com.tr, pinterest.co.uk. Their subdomains match too, unless
// referrerHosts has a longer entry (mail.yahoo.com).
var referrerBrands = map[string]string{
	"google":    ChannelSearch,
	"yahoo":     ChannelSearch,
	"yandex":    ChannelSearch,
	"pinterest": ChannelSocial,
}
