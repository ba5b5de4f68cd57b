package enrich

import (
	"fmt"
	"testing"

	useragent "github.com/mileusna/useragent"
)

const benchPage = "https://www.example.com/blog/launch-week?utm_source=newsletter&utm_medium=email&utm_campaign=launch%20week&utm_content=hero#top"

var benchUAs = []string{uaChromeWindows, uaSafariIPhone, uaChromeAndroid, uaSafariIPad, uaFirefoxWindows, uaEdgeWindows, uaSafariMac, uaGooglebot}

func BenchmarkParseCached(b *testing.B) {
	p := NewUAParser(1024)
	for _, ua := range benchUAs {
		p.Parse(ua)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Parse(benchUAs[i%len(benchUAs)])
		i++
	}
}

func BenchmarkParseCachedParallel(b *testing.B) {
	p := NewUAParser(1024)
	for _, ua := range benchUAs {
		p.Parse(ua)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p.Parse(benchUAs[i%len(benchUAs)])
			i++
		}
	})
}

// BenchmarkParseMiss parses without a cache: the cost of each new user
// agent.
func BenchmarkParseMiss(b *testing.B) {
	for _, c := range []struct{ name, ua string }{
		{"chrome", uaChromeWindows},
		{"iphone", uaSafariIPhone},
		{"googlebot", uaGooglebot},
		{"curl", uaCurl},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := NewUAParser(0)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.ua)))
			for b.Loop() {
				p.Parse(c.ua)
			}
		})
	}
}

// BenchmarkParseMissParts splits a miss into the user-agent library and
// the crawler patterns.
func BenchmarkParseMissParts(b *testing.B) {
	b.Run("useragent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			useragent.Parse(uaChromeWindows)
		}
	})
	b.Run("crawler", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			isCrawler(uaChromeWindows)
		}
	})
}

func BenchmarkChannel(b *testing.B) {
	for _, c := range []struct{ name, referrer, medium string }{
		{"direct", "", ""},
		{"internal", "https://example.com/pricing", ""},
		{"search", "https://www.google.co.uk/", ""},
		{"social", "https://l.facebook.com/l.php?u=x", "cpc"},
		{"email", "https://mail.google.com/mail/u/0/", "email"},
		{"other", "https://news.unknown-blog.net/post/1", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Channel(c.referrer, benchPage, c.medium)
			}
		})
	}
}

func BenchmarkPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Path(benchPage)
	}
}

func BenchmarkUTMFromURL(b *testing.B) {
	for _, c := range []struct{ name, url string }{
		{"plain", "https://www.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring&utm_term=shoes&utm_content=ad1"},
		{"encoded", benchPage},
		{"none", "https://www.example.com/pricing?plan=pro"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				UTMFromURL(c.url)
			}
		})
	}
}

func BenchmarkUTMFromCampaignJSON(b *testing.B) {
	campaign := []byte(`{"name":"launch week","source":"newsletter","medium":"email","content":"hero"}`)
	b.ReportAllocs()
	for b.Loop() {
		UTMFromCampaignJSON(campaign)
	}
}

func BenchmarkIPPolicyApply(b *testing.B) {
	for _, c := range []struct {
		p  IPPolicy
		ip string
	}{
		{IPKeep, "203.0.113.42"},
		{IPAnonymize, "203.0.113.42"},
		{IPAnonymize, "2001:db8:1:2:3:4:5:6"},
		{IPDrop, "203.0.113.42"},
	} {
		b.Run(fmt.Sprintf("%s/%s", c.p, c.ip), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.p.Apply(c.ip)
			}
		})
	}
}

func BenchmarkGeoCountry(b *testing.B) {
	g := openTestGeo(b)
	for _, ip := range []string{"81.2.69.160", "2001:db8:1::42", "8.8.8.8"} {
		b.Run(ip, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g.Country(ip)
			}
		})
	}
}
