package enrich

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"", "/", "https://example.com", "https://www.Example.com:8080/a/b?utm_source=x&utm_medium=%41#f",
		"//cdn.example.com/x", "example.com/pricing", "about:blank", "android-app://com.google.android.gm/",
		"http://[::1]:80/", "https://user:pw@mail.google.com/mail?x", "https://a.b.c.github.io/", "http://1.2.3.4/",
		"https://example.com/?utm_campaign=100%&utm_term=a+b", "h://x.co.uk.", "\\\\x", "https://ex%41mple.com/",
	} {
		f.Add(s, "https://www.example.com/pricing", "cpc")
	}
	channels := map[string]bool{
		ChannelSearch: true, ChannelSocial: true, ChannelEmail: true,
		ChannelDirect: true, ChannelInternal: true, ChannelOther: true,
	}
	f.Fuzz(func(t *testing.T, referrer, pageURL, medium string) {
		p := Path(pageURL)
		if p == "" || strings.ContainsAny(p, "?#") {
			t.Fatalf("Path(%q) = %q", pageURL, p)
		}
		_ = UTMFromURL(pageURL)
		channel, domain := Channel(referrer, pageURL, medium)
		if !channels[channel] {
			t.Fatalf("Channel(%q, %q, %q) channel = %q", referrer, pageURL, medium, channel)
		}
		if medium == "" && (referrer == "") != (channel == ChannelDirect) {
			t.Fatalf("Channel(%q, %q, \"\") = %q", referrer, pageURL, channel)
		}
		if !isASCII(referrer) {
			return
		}
		if strings.HasPrefix(domain, "www.") || domain != strings.ToLower(domain) {
			t.Fatalf("Channel(%q, ...) domain = %q", referrer, domain)
		}
		if !strings.Contains(strings.ToLower(referrer), domain) {
			t.Fatalf("Channel(%q, ...) domain %q is not in the referrer", referrer, domain)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzAnonymizeIP(f *testing.F) {
	for _, s := range []string{"", "1.2.3.4", "203.0.113.0", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ip string) {
		got := IPAnonymize.Apply(ip)
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			if got != "" {
				t.Fatalf("Apply(%q) = %q, want \"\"", ip, got)
			}
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("Apply(%q) = %q, not an address", ip, got)
		}
		addr = addr.Unmap()
		bits := 24
		if addr.Is6() {
			bits = 48
		}
		if want, _ := addr.WithZone("").Prefix(bits); a != want.Addr() {
			t.Fatalf("Apply(%q) = %q, want %s", ip, got, want.Addr())
		}
		if IPAnonymize.Apply(got) != got {
			t.Fatalf("Apply(Apply(%q)) != Apply(%q)", ip, ip)
		}
	})
}
