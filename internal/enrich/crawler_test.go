package enrich

import (
	"regexp/syntax"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// crawlerSlow is isCrawler without the prefilters.
func crawlerSlow(ua string) bool {
	for _, p := range crawlers() {
		if p.re.MatchString(ua) {
			return true
		}
	}
	return false
}

// crawlerCorpus is user agents of browsers and crawlers, and variations of
// them that move a bot token around the 100-byte limit of uap-core's main
// pattern, change its case or add non-ASCII bytes.
func crawlerCorpus() []string {
	base := []string{
		uaChromeWindows, uaEdgeWindows, uaFirefoxWindows, uaSafariMac, uaChromeLinux,
		uaSafariIPhone, uaChromeIPhone, uaSafariIPad, uaChromeAndroid, uaFirefoxAndroid,
		uaAndroidTablet, uaGooglebot, uaGooglebotPhone, uaBingbot, uaGPTBot, uaHeadless,
		uaCurl, uaPythonRequests,
		"Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
		"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
		"Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 14_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0 Mobile/15E148 Safari/604.1 (compatible; AdsBot-Google-Mobile; +http://www.google.com/mobile/adsbot.html)",
		"Nokia6230i/2.0 (03.80) Profile/MIDP-2.0 Configuration/CLDC-1.1 (compatible; Googlebot-Mobile/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PTST/240501.120000",
		"Mozilla/5.0 (X11; Datanyze; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/65.0.3325.181 Safari/537.36",
		"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/537.36 (KHTML, like Gecko) Silk/3.68 like Chrome/39.0.2171.93 Safari/537.36",
		"Java/17.0.2", "WordPress/6.5; https://example.com", "Scrapy/2.11.0 (+https://scrapy.org)",
		"Mozilla/5.0 (compatible; Google Web Preview) Chrome/41",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) Google/+/web/snippet",
	}
	out := append([]string(nil), base...)
	for _, tok := range []string{"bot", "Crawler", "SPIDER", "ſpider", "ʙot", "Googlebot/2.1", "K\u212Aot"} {
		for _, pad := range []int{0, 50, 90, 95, 99, 100, 101, 110, 200} {
			out = append(out, strings.Repeat("x", pad)+tok)
			out = append(out, "Mozilla/5.0 (Windows NT 10.0) "+strings.Repeat("a", pad)+" "+tok+"/1.0")
		}
	}
	for _, ua := range base {
		out = append(out, strings.ToUpper(ua), strings.ToLower(ua), "é"+ua, ua+" é")
	}
	return out
}

func TestCrawlerPrefilter(t *testing.T) {
	t.Parallel()
	for _, ua := range crawlerCorpus() {
		require.Equal(t, crawlerSlow(ua), isCrawler(ua), "%q", ua)
	}
	// Every pattern must keep a prefilter, or misses cost up to ~200 µs.
	for _, p := range crawlers() {
		require.NotNil(t, p.pre, p.re.String())
	}
}

func TestPrefilter(t *testing.T) {
	t.Parallel()
	f := func(expr, want string) {
		t.Helper()
		re, err := syntax.Parse(expr, syntax.Perl)
		require.NoError(t, err)
		require.Equal(t, want, newPrefilter(re).String(), expr)
	}
	f("abc", "{abc}")
	f("(?i)AbC", "{abc}")
	f("^.{0,100}(bot|Crawler)", "{bot,crawler}")
	f("bot|Bubing", "{bot,bubing}")
	f("[Bb]ot", "{bot}")
	f("x+yz", "and({x} {yz})")
	f("(ab)+", "{ab}")
	f("a{2,}b", "and({a} {b})")
	f("Google.{0,200}/web", "and({google} {/web})")
	f("bots?/x", "{bots/x,bot/x}")
	f("(?:iPhone|Android).{0,300}bot|AdsBot.{0,9}iPhone", "or(and({iphone,android} {bot}) and({adsbot} {iphone}))")
	f("a*", "<nil>")
	f("a|b*", "<nil>")
	f("\\w+", "<nil>")
	f("é", "<nil>")
}

func FuzzCrawlerPrefilter(f *testing.F) {
	for _, ua := range crawlerCorpus() {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		if got, want := isCrawler(ua), crawlerSlow(ua); got != want {
			t.Fatalf("isCrawler(%q) = %v, regular expressions say %v", ua, got, want)
		}
	})
}
