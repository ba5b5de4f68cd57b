package loadgen

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"time"
)

// DefaultVisitors is the size of the visitor pool when none is configured.
const DefaultVisitors = 100_000

// LibraryVersion is sent as context.library.version, so that the events of a
// load run are recognisable in the log.
const LibraryVersion = "0.1.0"

// ModelConfig configures a Model. The zero value is valid.
type ModelConfig struct {
	// Visitors is the size of the visitor pool; 0 means DefaultVisitors.
	Visitors int
	// Seed selects the visitor pool and the sequence of events. Two models
	// with the same configuration produce the same bytes.
	Seed uint64
	// Stream lets several models share a visitor pool (same Seed) while
	// drawing different events and message ids, one model per goroutine.
	Stream int
	// RunID prefixes every messageId. Empty means an id derived from Seed,
	// which keeps the model deterministic; a load run against a server that
	// deduplicates by messageId wants a fresh one per run. Bytes other than
	// ASCII letters, digits, '.', '_', ':' and '-' become '_'.
	RunID string
}

// Model is a deterministic traffic model of a web shop with a blog and a
// video library, as a Segment analytics.js installation would report it.
//
// Visitors are not stored: each visitor's anonymousId, userId (for about one
// in ten, the known ones), browser, IP, locale and traits are derived from
// the seed and the visitor's number, so the pool costs no memory and is the
// same in every stream. Some visitors are much busier than others.
//
// Events are about 70% page, 22% track and 8% identify, and average about
// 680 bytes of JSON (page calls carry the page twice, in properties and in
// context.page, as analytics.js sends them; a browser user agent alone is
// over 100 bytes). They are written by appending to a byte slice, without
// reflection, so that the generator leaves the CPU to the server it measures.
//
// A Model is not safe for concurrent use; give each goroutine its own Stream.
type Model struct {
	visitors uint64
	seed     uint64
	rng      rand.PCG
	msgID    []byte // "<run-id>-<stream>-"
	n        uint64

	// Scratch for the page the current event happened on.
	path, title, search, referrer []byte
	pageName                      string
	product, post                 int // on product and blog pages
	campaign                      int // index+1 into campaigns, 0 for none

	// The last second appendTime formatted, as "2006-01-02T15:04:05.".
	tsSec    int64
	tsPrefix []byte
}

// NewModel returns a model for cfg.
func NewModel(cfg ModelConfig) *Model {
	if cfg.Visitors <= 0 {
		cfg.Visitors = DefaultVisitors
	}
	m := &Model{
		visitors: uint64(cfg.Visitors),
		seed:     mix(cfg.Seed),
		path:     make([]byte, 0, 64),
		title:    make([]byte, 0, 64),
		search:   make([]byte, 0, 128),
		referrer: make([]byte, 0, 64),
	}
	m.rng.Seed(mix(cfg.Seed^0x5bd1e995), mix(uint64(cfg.Stream)+0x632be59bd9b4e019))
	if cfg.RunID == "" {
		m.msgID = append(m.msgID, "lg"...)
		m.msgID = appendHex(m.msgID, m.seed>>32, 8)
	} else {
		for i := 0; i < len(cfg.RunID); i++ {
			c := cfg.RunID[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
				c = '_'
			}
			m.msgID = append(m.msgID, c)
		}
	}
	m.msgID = append(m.msgID, '-')
	m.msgID = strconv.AppendInt(m.msgID, int64(cfg.Stream), 10)
	m.msgID = append(m.msgID, '-')
	return m
}

// AppendBatch appends a /v1/batch body with n events to dst:
// {"batch":[...],"sentAt":"..."}. The events' timestamps are up to a few
// seconds before sentAt, as a browser library that buffers would send them.
func (m *Model) AppendBatch(dst []byte, n int, sentAt time.Time) []byte {
	dst = append(dst, `{"batch":[`...)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		ts := sentAt.Add(-time.Duration(m.intn(3000)) * time.Millisecond)
		dst = m.AppendEvent(dst, ts)
	}
	dst = append(dst, `],"sentAt":"`...)
	dst = m.appendTime(dst, sentAt)
	return append(dst, `"}`...)
}

// AppendEvent appends the next event of the model, timestamped ts, to dst
// as one JSON object.
func (m *Model) AppendEvent(dst []byte, ts time.Time) []byte {
	v := m.visitor()
	m.n++
	r := m.intn(100)
	var typ string
	switch {
	case r < 70:
		typ = "page"
	case r < 92:
		typ = "track"
	default:
		typ = "identify"
	}
	track := trackNone
	if typ == "track" {
		track = m.trackKind()
	}
	m.pickPage(track)

	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","messageId":"`...)
	dst = append(dst, m.msgID...)
	dst = strconv.AppendUint(dst, m.n, 10)
	dst = append(dst, `","anonymousId":"`...)
	dst = v.appendAnonymousID(dst)
	if v.known() {
		dst = append(dst, `","userId":"`...)
		dst = v.appendUserID(dst)
	}
	dst = append(dst, '"')
	switch typ {
	case "page":
		dst = append(dst, `,"name":"`...)
		dst = append(dst, m.pageName...)
		dst = append(dst, `","properties":`...)
		dst = m.appendPage(dst, true)
	case "track":
		dst = append(dst, `,"event":"`...)
		dst = append(dst, trackNames[track]...)
		dst = append(dst, `","properties":`...)
		dst = m.appendTrackProperties(dst, track, v)
	default:
		dst = append(dst, `,"traits":`...)
		dst = v.appendTraits(dst)
	}
	dst = append(dst, `,"context":`...)
	dst = m.appendContext(dst, v)
	dst = append(dst, `,"timestamp":"`...)
	dst = m.appendTime(dst, ts)
	return append(dst, `"}`...)
}

// visitor draws the visitor of the next event. Activity is skewed: the
// visitor number is the pool size times the square of a uniform draw, so
// the busiest tenth of the pool sends about a third of the events.
func (m *Model) visitor() visitor {
	u := float64(m.rng.Uint64()>>11) / (1 << 53)
	i := uint64(u * u * float64(m.visitors))
	if i >= m.visitors {
		i = m.visitors - 1
	}
	return visitor{n: i, h: mix(m.seed ^ mix(i)), h2: mix(m.seed + mix(i^0xa0761d6478bd642f))}
}

// intn returns a uniform number in [0, n).
func (m *Model) intn(n int) int {
	hi, _ := bits.Mul64(m.rng.Uint64(), uint64(n))
	return int(hi)
}

// pickPage chooses the page the event happened on, and whether it came from
// a campaign. Product events happen on product pages, video plays on the blog.
func (m *Model) pickPage(track int) {
	m.path = m.path[:0]
	m.title = m.title[:0]
	m.search = m.search[:0]
	var pg int
	switch track {
	case trackProductViewed, trackAddedToCart:
		pg = pageProduct
	case trackVideoPlayed:
		pg = pageBlog
	case trackSignedUp:
		pg = pageSignup
	case trackOrderCompleted:
		pg = pageCheckout
	default:
		pg = pageWeights[m.intn(len(pageWeights))]
	}
	m.pageName = pageNames[pg]
	switch pg {
	case pageProduct:
		m.product = m.intn(len(products))
		p := &products[m.product]
		m.path = append(m.path, "/products/"...)
		m.path = append(m.path, p.slug...)
		m.title = append(m.title, p.name...)
	case pageCollection:
		c := categories[m.intn(len(categories))]
		m.path = append(m.path, "/collections/"...)
		m.path = append(m.path, c.slug...)
		m.title = append(m.title, c.name...)
	case pageBlog:
		m.post = m.intn(len(posts))
		b := &posts[m.post]
		m.path = append(m.path, "/blog/"...)
		m.path = append(m.path, b.slug...)
		m.title = append(m.title, b.title...)
	case pageSearch:
		m.path = append(m.path, "/search"...)
		m.search = append(m.search, "?q="...)
		m.search = append(m.search, searchTerms[m.intn(len(searchTerms))]...)
		m.title = append(m.title, "Search results"...)
	default:
		m.path = append(m.path, pagePaths[pg]...)
		m.title = append(m.title, pageNames[pg]...)
	}

	m.campaign = 0
	if m.intn(100) < 10 {
		m.campaign = 1 + m.intn(len(campaigns))
		c := &campaigns[m.campaign-1]
		if len(m.search) == 0 {
			m.search = append(m.search, '?')
		} else {
			m.search = append(m.search, '&')
		}
		m.search = append(m.search, "utm_source="...)
		m.search = append(m.search, c.source...)
		m.search = append(m.search, "&utm_medium="...)
		m.search = append(m.search, c.medium...)
		m.search = append(m.search, "&utm_campaign="...)
		m.search = append(m.search, c.name...)
		m.referrer = append(m.referrer[:0], c.referrer...)
	} else {
		m.referrer = append(m.referrer[:0], referrers[m.intn(len(referrers))]...)
	}
}

// appendPage appends the page object: the properties of a page call
// (withSearch) or context.page.
func (m *Model) appendPage(dst []byte, withSearch bool) []byte {
	dst = append(dst, `{"path":"`...)
	dst = append(dst, m.path...)
	dst = append(dst, `","url":"`...)
	dst = append(dst, siteURL...)
	dst = append(dst, m.path...)
	dst = append(dst, m.search...)
	dst = append(dst, `","referrer":"`...)
	dst = append(dst, m.referrer...)
	dst = append(dst, `","title":"`...)
	dst = append(dst, m.title...)
	if withSearch {
		dst = append(dst, `","search":"`...)
		dst = append(dst, m.search...)
	}
	return append(dst, `"}`...)
}

func (m *Model) appendContext(dst []byte, v visitor) []byte {
	dst = append(dst, `{"ip":"`...)
	dst = v.appendIP(dst)
	dst = append(dst, `","userAgent":"`...)
	dst = append(dst, userAgents[v.h2%uint64(len(userAgents))]...)
	dst = append(dst, `","page":`...)
	dst = m.appendPage(dst, false)
	if m.campaign > 0 {
		c := &campaigns[m.campaign-1]
		dst = append(dst, `,"campaign":{"source":"`...)
		dst = append(dst, c.source...)
		dst = append(dst, `","medium":"`...)
		dst = append(dst, c.medium...)
		dst = append(dst, `","name":"`...)
		dst = append(dst, c.name...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `,"library":{"name":"contrail-bench","version":"`+LibraryVersion+`"},"locale":"`...)
	dst = append(dst, locales[(v.h2>>16)%uint64(len(locales))]...)
	return append(dst, `"}`...)
}

func (m *Model) appendTrackProperties(dst []byte, kind int, v visitor) []byte {
	switch kind {
	case trackProductViewed, trackAddedToCart:
		p := &products[m.product]
		dst = append(dst, `{"product_id":"`...)
		dst = append(dst, p.sku...)
		dst = append(dst, `","name":"`...)
		dst = append(dst, p.name...)
		dst = append(dst, `","category":"`...)
		dst = append(dst, p.category...)
		dst = append(dst, `","price":`...)
		dst = appendCents(dst, p.cents)
		dst = append(dst, `,"currency":"USD"`...)
		if kind == trackAddedToCart {
			dst = append(dst, `,"quantity":`...)
			dst = strconv.AppendInt(dst, int64(1+m.intn(3)), 10)
			dst = append(dst, `,"cart_id":"`...)
			dst = appendHex(dst, v.h^v.h2, 12)
			dst = append(dst, '"')
		}
	case trackVideoPlayed:
		b := &posts[m.post]
		dst = append(dst, `{"video_id":"vid_`...)
		dst = append(dst, b.slug[:6]...)
		dst = append(dst, `","title":"`...)
		dst = append(dst, b.title...)
		dst = append(dst, `","position":`...)
		dst = strconv.AppendInt(dst, int64(m.intn(b.seconds)), 10)
		dst = append(dst, `,"total_length":`...)
		dst = strconv.AppendInt(dst, int64(b.seconds), 10)
		dst = append(dst, `,"sound":`...)
		dst = strconv.AppendInt(dst, int64(m.intn(101)), 10)
		dst = append(dst, `,"full_screen":`...)
		dst = strconv.AppendBool(dst, m.intn(4) == 0)
	case trackSignedUp:
		dst = append(dst, `{"plan":"`...)
		dst = append(dst, plans[m.intn(len(plans))]...)
		dst = append(dst, `","method":"`...)
		dst = append(dst, signupMethods[m.intn(len(signupMethods))]...)
		dst = append(dst, `","trial_days":14,"newsletter":`...)
		dst = strconv.AppendBool(dst, m.intn(2) == 0)
	default: // trackOrderCompleted
		items := 1 + m.intn(4)
		cents := 0
		for range items {
			cents += products[m.intn(len(products))].cents
		}
		dst = append(dst, `{"order_id":"ord_`...)
		dst = appendHex(dst, mix(v.h+m.n), 10)
		dst = append(dst, `","revenue":`...)
		dst = appendCents(dst, cents)
		dst = append(dst, `,"shipping":`...)
		dst = appendCents(dst, 499+100*m.intn(10))
		dst = append(dst, `,"currency":"USD","products":`...)
		dst = strconv.AppendInt(dst, int64(items), 10)
		if m.intn(3) == 0 {
			dst = append(dst, `,"coupon":"SPRING15"`...)
		}
	}
	return append(dst, '}')
}

func (m *Model) trackKind() int {
	r := m.intn(100)
	switch {
	case r < 40:
		return trackProductViewed
	case r < 65:
		return trackAddedToCart
	case r < 82:
		return trackVideoPlayed
	case r < 92:
		return trackSignedUp
	default:
		return trackOrderCompleted
	}
}

// visitor is one member of the pool: its number and two hashes from which
// all its stable attributes derive.
type visitor struct {
	n, h, h2 uint64
}

// known reports whether the visitor has signed in and carries a userId:
// about one visitor in ten.
func (v visitor) known() bool { return (v.h>>40)%10 == 0 }

// appendAnonymousID appends a version 4 UUID made of the visitor's hashes.
func (v visitor) appendAnonymousID(dst []byte) []byte {
	dst = appendHex(dst, v.h>>32, 8)
	dst = append(dst, '-')
	dst = appendHex(dst, v.h>>16, 4)
	dst = append(dst, "-4"...)
	dst = appendHex(dst, v.h, 3)
	dst = append(dst, '-')
	dst = append(dst, "89ab"[v.h2>>62])
	dst = appendHex(dst, v.h2>>48, 3)
	dst = append(dst, '-')
	return appendHex(dst, v.h2, 12)
}

func (v visitor) appendUserID(dst []byte) []byte {
	dst = append(dst, "usr_"...)
	return strconv.AppendUint(dst, 100_000_000+v.n, 10)
}

func (v visitor) appendIP(dst []byte) []byte {
	x := v.h2 >> 20
	dst = strconv.AppendUint(dst, uint64(ipFirstOctets[x%uint64(len(ipFirstOctets))]), 10)
	for range 3 {
		x >>= 8
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, 1+x%254, 10)
	}
	return dst
}

func (v visitor) appendTraits(dst []byte) []byte {
	first := firstNames[(v.h>>8)%uint64(len(firstNames))]
	last := lastNames[(v.h>>24)%uint64(len(lastNames))]
	dst = append(dst, `{"email":"`...)
	dst = appendLower(dst, first)
	dst = append(dst, '.')
	dst = appendLower(dst, last)
	dst = strconv.AppendUint(dst, v.n, 10)
	dst = append(dst, '@')
	dst = append(dst, emailDomains[(v.h>>48)%uint64(len(emailDomains))]...)
	dst = append(dst, `","name":"`...)
	dst = append(dst, first...)
	dst = append(dst, ' ')
	dst = append(dst, last...)
	dst = append(dst, `","plan":"`...)
	dst = append(dst, plans[(v.h>>56)%uint64(len(plans))]...)
	return append(dst, `"}`...)
}

// mix is the splitmix64 finaliser: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

const hexDigits = "0123456789abcdef"

// appendHex appends the low n hex digits of x.
func appendHex(dst []byte, x uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(x>>(4*uint(i)))&0xf])
	}
	return dst
}

// appendCents appends an amount in cents as a JSON number with two decimals.
func appendCents(dst []byte, cents int) []byte {
	dst = strconv.AppendInt(dst, int64(cents/100), 10)
	c := cents % 100
	return append(dst, '.', byte('0'+c/10), byte('0'+c%10))
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendTime appends t in UTC as RFC 3339 with milliseconds, the way
// analytics.js writes its timestamps. The events of a batch share their
// second, so the formatted second is cached: formatting every timestamp was
// a third of the generator's CPU.
func (m *Model) appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != m.tsSec || len(m.tsPrefix) == 0 {
		m.tsSec = sec
		m.tsPrefix = t.AppendFormat(m.tsPrefix[:0], "2006-01-02T15:04:05.")
	}
	dst = append(dst, m.tsPrefix...)
	ms := t.Nanosecond() / 1e6
	return append(dst, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}
