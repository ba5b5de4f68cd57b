// Package enrichtest helps tests of packages that use enrich: it builds
// small MaxMind-format country databases, so that no test needs a real
// GeoLite2 file. It is meant for tests only.
package enrichtest

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// WriteCountryDB writes to path a GeoLite2-Country-shaped database (an IPv6
// tree, which also answers IPv4 lookups) that maps each network of nets, a
// CIDR such as "81.2.69.0/24" or "2a02:c7f::/32", to the ISO country code
// it names, stored as country.iso_code. Reserved networks (10.0.0.0/8,
// 192.0.2.0/24, 2001:db8::/32...) are allowed, unlike in MaxMind's
// databases. When networks overlap, the more specific one wins.
func WriteCountryDB(path string, nets map[string]string) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		Description:             map[string]string{"en": "enrichtest country database"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		return fmt.Errorf("creating country database: %w", err)
	}
	type entry struct {
		n    *net.IPNet
		bits int // prefix length in the IPv6 tree
		iso  string
	}
	entries := make([]entry, 0, len(nets))
	for cidr, iso := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return fmt.Errorf("parsing network %q: %w", cidr, err)
		}
		ones, size := n.Mask.Size()
		entries = append(entries, entry{n: n, bits: ones + 128 - size, iso: iso})
	}
	// Insert wider networks first, so that a more specific one replaces
	// the part of a wider one it covers, whatever the map order.
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.bits, b.bits), strings.Compare(a.n.String(), b.n.String()))
	})
	for _, e := range entries {
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(e.iso)}}
		if err := tree.Insert(e.n, rec); err != nil {
			return fmt.Errorf("inserting %s: %w", e.n, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating country database: %w", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing country database %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing country database %s: %w", path, err)
	}
	return nil
}
