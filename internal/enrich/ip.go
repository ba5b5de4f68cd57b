package enrich

import (
	"fmt"
	"net/netip"
)

// IPPolicy says what is stored of a visitor's IP address. The country is
// looked up before the policy is applied, so it does not depend on it.
type IPPolicy string

// The IP policies. The zero value "" is IPKeep, so that an unset field in a
// configuration keeps the address as Segment does; a tenant that must not
// store addresses sets anonymize or drop.
const (
	IPKeep      IPPolicy = "keep"
	IPAnonymize IPPolicy = "anonymize"
	IPDrop      IPPolicy = "drop"
)

// Validate returns an error wrapping [ErrInvalidIPPolicy] unless p is one of
// the IP policies or "".
func (p IPPolicy) Validate() error {
	switch p {
	case "", IPKeep, IPAnonymize, IPDrop:
		return nil
	}
	return fmt.Errorf("%w %q: want %q, %q or %q", ErrInvalidIPPolicy, string(p), IPKeep, IPAnonymize, IPDrop)
}

// Apply returns what the policy stores of ip:
//   - keep (and ""): ip unchanged, even if it is not a valid address;
//   - anonymize: ip with the last octet of an IPv4 address, or the last 80
//     bits of an IPv6 address, set to zero, as Google Analytics does
//     ("203.0.113.42" → "203.0.113.0", "2001:db8:1:2:3:4:5:6" →
//     "2001:db8:1::"). An IPv4-mapped IPv6 address is anonymized and
//     returned as IPv4, a zone is dropped, and an invalid address gives "";
//   - drop, and any invalid policy: "".
//
// Anonymizing allocates the new string, unless ip is already anonymous.
func (p IPPolicy) Apply(ip string) string {
	switch p {
	case "", IPKeep:
		return ip
	case IPAnonymize:
		return anonymizeIP(ip)
	}
	return ""
}

// anonymizeIP zeroes the host part of ip; "" when ip is not an address.
func anonymizeIP(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap().WithZone("")
	bits := 24
	if addr.Is6() {
		bits = 48
	}
	// Prefix cannot fail: bits is within the address length.
	masked, _ := addr.Prefix(bits)
	var buf [64]byte
	b := masked.Addr().AppendTo(buf[:0])
	if string(b) == ip {
		return ip
	}
	return string(b)
}
