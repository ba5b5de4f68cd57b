package deliver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// CheckURL validates a webhook URL when a campaign is published: an
// absolute http or https URL with a host that, unless allowPrivate, is or
// resolves only to public addresses. The error wraps ErrInvalidURL or
// ErrPrivateAddress, or tells why the name did not resolve. With
// allowPrivate the host is not resolved.
//
// Passing this check does not make a delivery safe, since DNS answers
// change: deliveries check the address they dial as well.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := parseWebhookURL(raw)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return checkAddr(a)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%s resolves to %w", host, err)
		}
	}
	return nil
}

// CheckURL is the package's CheckURL with the Sender's
// AllowPrivateNetworks.
func (s *Sender) CheckURL(ctx context.Context, raw string) error {
	return CheckURL(ctx, raw, s.cfg.AllowPrivateNetworks)
}

// parseWebhookURL parses an absolute http(s) URL with a host.
func parseWebhookURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q is not http or https", ErrInvalidURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrInvalidURL, raw)
	}
	return u, nil
}

// Prefixes that are not public beyond what netip.Addr's predicates cover.
var (
	cgnat     = netip.MustParsePrefix("100.64.0.0/10")   // RFC 6598 shared address space
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")       // RFC 1122 "this network"
	reserved4 = netip.MustParsePrefix("240.0.0.0/4")     // RFC 1112 reserved, and broadcast
	nat64     = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052: embeds an IPv4 address
	sixToFour = netip.MustParsePrefix("2002::/16")       // RFC 3056: embeds an IPv4 address
	ietf4     = netip.MustParsePrefix("192.0.0.0/24")    // RFC 6890 IETF protocol assignments
	benchmark = netip.MustParsePrefix("198.18.0.0/15")   // RFC 2544 benchmarking
	siteLocal = netip.MustParsePrefix("fec0::/10")       // deprecated site-local
	discard6  = netip.MustParsePrefix("100::/64")        // RFC 6666 discard-only
	doc6      = netip.MustParsePrefix("2001:db8::/32")   // RFC 3849 documentation
	compat4   = netip.MustParsePrefix("::/96")           // IPv4-compatible (deprecated), ::, ::1
	trans6    = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 IPv4-translated
)

// checkAddr refuses an address that is not public, with ErrPrivateAddress.
func checkAddr(a netip.Addr) error {
	if !isPublic(a) {
		return fmt.Errorf("%s: %w", a, ErrPrivateAddress)
	}
	return nil
}

// isPublic says whether a is a unicast address reachable on the Internet.
// Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are
// judged by the embedded one.
func isPublic(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return isPublic(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return isPublic(netip.AddrFrom4([4]byte(b[2:6])))
		case compat4.Contains(a), trans6.Contains(a), siteLocal.Contains(a), discard6.Contains(a),
			doc6.Contains(a):
			return false
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Is4() {
		for _, p := range []netip.Prefix{cgnat, thisNet, reserved4, ietf4, benchmark} {
			if p.Contains(a) {
				return false
			}
		}
	}
	return true
}

// dialControl refuses to connect to an address that is not public. It
// runs on the address being dialled, after DNS resolution, so a name that
// passed CheckURL and now resolves elsewhere is still refused.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dialing %q: %w", address, ErrPrivateAddress)
	}
	return checkAddr(ap.Addr())
}

// newHTTPClient returns the client webhooks go through (see
// Deps.HTTPClient).
func newHTTPClient(base *http.Client, allowPrivate bool, perHost int) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var tr *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // webhooks go straight to the receiver
		tr.MaxIdleConnsPerHost = perHost
	case *http.Transport:
		tr = t.Clone()
	default:
		return c
	}
	if !allowPrivate {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl}
		tr.DialContext = d.DialContext
		tr.DialTLSContext = nil
		// A caller's transport may set the deprecated dialers; DialTLS
		// would bypass the guard for https.
		tr.Dial = nil
		tr.DialTLS = nil
		tr.Proxy = nil // the guard must see the receiver's address, not a proxy's
	}
	c.Transport = tr
	return c
}
