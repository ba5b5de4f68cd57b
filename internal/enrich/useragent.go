package enrich

import (
	"strings"
	"sync"

	useragent "github.com/mileusna/useragent"
)

// Device types reported in [UA.Device].
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceBot     = "bot"
	DeviceOther   = "other"
)

// maxUALen bounds the part of a user-agent string that is parsed and cached.
// Real user agents are a few hundred bytes; a longer one is junk or an
// attack, and parsing it whole would make a cache miss arbitrarily slow.
const maxUALen = 512

// UA is what the enrichment keeps of a user-agent string.
type UA struct {
	// Browser is the browser or client family, such as "Chrome", "Firefox",
	// "Safari", "Edge", "Opera", "Samsung Browser", "Headless Chrome",
	// "Googlebot" or "curl"; "" when nothing is recognised.
	Browser string
	// OS is the operating-system family: "Windows", "macOS", "iOS",
	// "Android", "Linux", "ChromeOS", ...; "" when there is none.
	OS string
	// Device is one of DeviceDesktop, DeviceMobile, DeviceTablet, DeviceBot
	// or DeviceOther, and "" only for an empty user agent.
	Device string
	// Bot reports a crawler, a headless browser or a script (see
	// [UAParser.Parse]). Device is DeviceBot whenever Bot is set.
	Bot bool
}

// UAParser parses user-agent strings through a bounded cache. The parser is
// github.com/mileusna/useragent (a tokenizer: about 1 µs a string), and bots
// are found with the crawler patterns of uap-core (see crawler.go): a miss
// costs 1.5-7 µs and a dozen small allocations, a hit about 40 ns and none.
//
// The cache has two generations of at most half the size each: when the
// current one is full it becomes the previous one and the old previous one
// is dropped, and a hit in the previous generation moves the entry back.
// So the most used strings stay, and memory is bounded by cacheSize entries.
//
// A UAParser is safe for concurrent use: the cache is guarded by a mutex,
// which a shard that owns its parser takes uncontended. Parsing itself runs
// outside the lock.
type UAParser struct {
	genSize int // entries per generation; 0 disables the cache

	mu   sync.Mutex
	cur  map[string]uaEntry
	prev map[string]uaEntry
}

// uaEntry is a cached result with its own copy of the key, so an entry can
// move between generations without copying the key again.
type uaEntry struct {
	key string
	ua  UA
}

// NewUAParser returns a parser whose cache holds up to cacheSize distinct
// user agents (rounded up to an even number); cacheSize <= 0 disables the
// cache, so every call parses. A few thousand entries cover the user agents
// of a busy site; each costs about 300 bytes.
//
// NewUAParser compiles the crawler patterns on its first call in the process
// (about 40 ms), so that the first event does not pay for it.
func NewUAParser(cacheSize int) *UAParser {
	crawlers()
	p := &UAParser{}
	if cacheSize > 0 {
		p.genSize = (cacheSize + 1) / 2
		p.cur = make(map[string]uaEntry, p.genSize)
	}
	return p
}

// Parse returns the browser, OS, device type and bot verdict of the user
// agent ua; "" gives the zero UA. Only the first 512 bytes are looked at.
//
// Bot is set when any of these holds:
//   - the user-agent library flags it (known crawlers, headless Chrome, a
//     user agent that carries a bot URL);
//   - a crawler pattern of uap-core matches (its device family "Spider");
//   - it neither starts with the "Mozilla/" product token, which every
//     browser sends, nor names an operating system: that is an HTTP library
//     or a script (curl, Wget, python-requests, Go-http-client, okhttp...).
//
// The last rule also flags the user agents of native apps and servers, so
// callers apply the verdict only to events sent by a browser library (see
// [IsBrowserLibrary]).
//
// An Android user agent without the "Mobile" token is a tablet: that is how
// Android browsers tell them apart. An iPad that asks for desktop sites sends
// a Mac user agent and is counted as a desktop.
//
// Parse does not keep a reference to ua.
func (p *UAParser) Parse(ua string) UA {
	if ua == "" {
		return UA{}
	}
	if len(ua) > maxUALen {
		ua = ua[:maxUALen]
	}
	if p.genSize == 0 {
		return parseUA(ua)
	}
	p.mu.Lock()
	if e, ok := p.cur[ua]; ok {
		p.mu.Unlock()
		return e.ua
	}
	if e, ok := p.prev[ua]; ok {
		p.addLocked(e)
		p.mu.Unlock()
		return e.ua
	}
	p.mu.Unlock()

	key := strings.Clone(ua)
	e := uaEntry{key: key, ua: parseUA(key)}
	p.mu.Lock()
	p.addLocked(e)
	p.mu.Unlock()
	return e.ua
}

// addLocked adds e to the current generation, starting a new one first when
// it is full. p.mu must be held.
func (p *UAParser) addLocked(e uaEntry) {
	if len(p.cur) >= p.genSize {
		p.prev = p.cur
		p.cur = make(map[string]uaEntry, p.genSize)
	}
	p.cur[e.key] = e
}

// parseUA parses ua without the cache. The strings it returns never share
// memory with ua.
func parseUA(ua string) UA {
	if ua == "" {
		return UA{}
	}
	m := useragent.Parse(ua)
	out := UA{OS: m.OS}
	if m.Name != m.String {
		// The library falls back to the whole string when it recognises
		// nothing; that is not a family name.
		out.Browser = m.Name
	}
	out.Bot = m.Bot || isCrawler(ua) ||
		(!strings.HasPrefix(ua, "Mozilla/") && m.OS == "")
	tablet := m.Tablet ||
		(m.OS == useragent.Android && !strings.Contains(ua, "Mobile"))
	switch {
	case out.Bot:
		out.Device = DeviceBot
	case tablet:
		out.Device = DeviceTablet
	case m.Mobile:
		out.Device = DeviceMobile
	case m.Desktop:
		out.Device = DeviceDesktop
	default:
		out.Device = DeviceOther
	}
	return out
}

// IsBrowserLibrary reports whether name, the event's context.library.name,
// is a browser library: Segment's analytics.js (classic, Analytics 2.0 and
// the npm packages), RudderStack's JavaScript SDK, or contrail.js. Only for
// those is context.userAgent the visitor's own, so only for those does a
// bot verdict mean the event came from a bot; server SDKs (analytics-go,
// analytics-node, analytics-python, analytics-ruby, analytics-java...) send
// their server's user agent, and mobile SDKs their app's.
//
// An empty name (the pixel, or a hand-written HTTP call) is not a browser
// library: without knowing who sent the event, it is counted rather than
// dropped as a bot.
func IsBrowserLibrary(name string) bool {
	switch name {
	case "analytics.js", "analytics-next", "@segment/analytics-next",
		"@segment/analytics.js-core", "analytics.js-core",
		"RudderLabs JavaScript SDK", "contrail.js":
		return true
	}
	return false
}
