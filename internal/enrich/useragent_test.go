package enrich

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Real user agents, as browsers and crawlers sent them in 2024.
const (
	uaChromeWindows  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaEdgeWindows    = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67"
	uaFirefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
	uaSafariMac      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
	uaChromeLinux    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaSafariIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	uaChromeIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
	uaSafariIPad     = "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	uaChromeAndroid  = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
	uaFirefoxAndroid = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"
	uaAndroidTablet  = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	uaGooglebot      = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaGooglebotPhone = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	uaBingbot        = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
	uaGPTBot         = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)"
	uaHeadless       = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36"
	uaCurl           = "curl/8.5.0"
	uaPythonRequests = "python-requests/2.31.0"
)

func TestParse(t *testing.T) {
	t.Parallel()
	p := NewUAParser(64)
	f := func(ua string, want UA) {
		t.Helper()
		require.Equal(t, want, p.Parse(ua), "%s", ua)
		require.Equal(t, want, p.Parse(ua), "cached: %s", ua)
		require.Equal(t, want, parseUA(ua), "uncached: %s", ua)
	}
	f(uaChromeWindows, UA{Browser: "Chrome", OS: "Windows", Device: DeviceDesktop})
	f(uaEdgeWindows, UA{Browser: "Edge", OS: "Windows", Device: DeviceDesktop})
	f(uaFirefoxWindows, UA{Browser: "Firefox", OS: "Windows", Device: DeviceDesktop})
	f(uaSafariMac, UA{Browser: "Safari", OS: "macOS", Device: DeviceDesktop})
	f(uaChromeLinux, UA{Browser: "Chrome", OS: "Linux", Device: DeviceDesktop})
	f(uaSafariIPhone, UA{Browser: "Safari", OS: "iOS", Device: DeviceMobile})
	f(uaChromeIPhone, UA{Browser: "Chrome", OS: "iOS", Device: DeviceMobile})
	f(uaSafariIPad, UA{Browser: "Safari", OS: "iOS", Device: DeviceTablet})
	f(uaChromeAndroid, UA{Browser: "Chrome", OS: "Android", Device: DeviceMobile})
	f(uaFirefoxAndroid, UA{Browser: "Firefox", OS: "Android", Device: DeviceMobile})
	f(uaAndroidTablet, UA{Browser: "Chrome", OS: "Android", Device: DeviceTablet})
	f(uaGooglebot, UA{Browser: "Googlebot", Device: DeviceBot, Bot: true})
	f(uaGooglebotPhone, UA{Browser: "Googlebot", OS: "Android", Device: DeviceBot, Bot: true})
	f(uaBingbot, UA{Browser: "Bingbot", Device: DeviceBot, Bot: true})
	f(uaGPTBot, UA{Browser: "GPTBot", Device: DeviceBot, Bot: true})
	f(uaHeadless, UA{Browser: "Headless Chrome", OS: "Linux", Device: DeviceBot, Bot: true})
	f(uaCurl, UA{Browser: "curl", Device: DeviceBot, Bot: true})
	f(uaPythonRequests, UA{Browser: "python-requests", Device: DeviceBot, Bot: true})
	f("", UA{})
}

func TestCrawlerPatterns(t *testing.T) {
	t.Parallel()
	// Only uap-core's patterns decide these: the user-agent library sees a
	// browser in each.
	f := func(ua string, want bool) {
		t.Helper()
		require.Equal(t, want, isCrawler(ua), "%s", ua)
	}
	webPageTest := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PTST/240501.120000"
	datanyze := "Mozilla/5.0 (X11; Datanyze; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/65.0.3325.181 Safari/537.36"
	f(webPageTest, true)
	f(datanyze, true)
	f("Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)", true)
	require.Equal(t, UA{Browser: "PTST", OS: "Windows", Device: DeviceBot, Bot: true}, parseUA(webPageTest))
	require.Equal(t, UA{Browser: "Chrome", OS: "Linux", Device: DeviceBot, Bot: true}, parseUA(datanyze))
	f(uaChromeWindows, false)
	f(uaSafariIPhone, false)

	_, err := compileCrawlers([]byte("device_parsers: [{regex: 'x'}]"))
	require.ErrorContains(t, err, "no crawler")
	_, err = compileCrawlers([]byte("device_parsers: [{regex: '(', device_replacement: Spider}]"))
	require.ErrorContains(t, err, "compiling uap-core crawler pattern")
}

func TestParseCacheBound(t *testing.T) {
	t.Parallel()
	p := NewUAParser(10)
	for i := range 1000 {
		p.Parse(fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0) Chrome/%d.0 Safari/537.36", i))
		require.LessOrEqual(t, len(p.cur)+len(p.prev), 10)
	}
	// A string used all the time survives any number of others.
	p.Parse(uaChromeWindows)
	for i := range 100 {
		p.Parse(fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0) Firefox/%d.0", i))
		p.mu.Lock()
		_, inCur := p.cur[uaChromeWindows]
		_, inPrev := p.prev[uaChromeWindows]
		p.mu.Unlock()
		require.True(t, inCur || inPrev, "evicted after %d others", i)
		p.Parse(uaChromeWindows)
	}

	nocache := NewUAParser(0)
	require.Equal(t, UA{Browser: "Chrome", OS: "Windows", Device: DeviceDesktop}, nocache.Parse(uaChromeWindows))
	require.Nil(t, nocache.cur)
}

func TestParseLongUA(t *testing.T) {
	t.Parallel()
	p := NewUAParser(4)
	long := uaChromeWindows + strings.Repeat(" x", 1000)
	require.Equal(t, UA{Browser: "Chrome", OS: "Windows", Device: DeviceDesktop}, p.Parse(long))
	for k := range p.cur {
		require.Len(t, k, maxUALen)
	}
}

// TestParseCopiesKey passes a string that aliases a buffer, as a zero-copy
// decoder would, and reuses the buffer: the cache must not change.
func TestParseCopiesKey(t *testing.T) {
	t.Parallel()
	p := NewUAParser(4)
	buf := []byte(uaCurl)
	got := p.Parse(unsafe.String(&buf[0], len(buf)))
	copy(buf, "XXXXXXXXXX")
	require.Equal(t, UA{Browser: "curl", Device: DeviceBot, Bot: true}, got)
	require.Equal(t, got, p.Parse(uaCurl))
	_, ok := p.cur[uaCurl]
	require.True(t, ok)
}

func TestParseConcurrent(t *testing.T) {
	t.Parallel()
	p := NewUAParser(4)
	uas := []string{uaChromeWindows, uaSafariIPhone, uaGooglebot, uaCurl, uaSafariIPad, uaChromeAndroid}
	want := make([]UA, len(uas))
	for i, ua := range uas {
		want[i] = parseUA(ua)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(uas)
				if got := p.Parse(uas[k]); got != want[k] {
					t.Errorf("Parse(%q) = %+v, want %+v", uas[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestIsBrowserLibrary(t *testing.T) {
	t.Parallel()
	f := func(name string, want bool) {
		t.Helper()
		require.Equal(t, want, IsBrowserLibrary(name), name)
	}
	f("analytics.js", true)
	f("analytics-next", true)
	f("@segment/analytics-next", true)
	f("contrail.js", true)
	f("RudderLabs JavaScript SDK", true)
	f("", false)
	f("analytics-go", false)
	f("analytics-node", false)
	f("analytics-python", false)
	f("analytics-ruby", false)
	f("analytics-java", false)
	f("analytics-ios", false)
	f("analytics-android", false)
	f("contrail-bench", false)
}
