package enrich

import (
	"cmp"
	"fmt"
	"net/netip"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Geo looks countries up in a MaxMind-format database (GeoLite2-Country,
// GeoIP2-Country or -City, DB-IP's country databases, or one built with
// enrichtest.WriteCountryDB). The file is memory-mapped. A Geo is safe for
// concurrent use, so one can serve every shard of a node.
type Geo struct {
	r *maxminddb.Reader
	// recs recycles the records that Country decodes into: decoding goes
	// through an interface, so a record on the stack would escape and cost
	// an allocation per lookup.
	recs sync.Pool
}

// countryRecord is the part of a record that Country decodes: decoding
// only these fields keeps a lookup cheap.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// OpenGeo opens the database at path. The file must not be rewritten in
// place while the Geo is open; to update it, write a new file, rename it
// over the old one and open a new Geo.
func OpenGeo(path string) (*Geo, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening geo database %s: %w", path, err)
	}
	return &Geo{r: r}, nil
}

// Country returns the ISO 3166-1 alpha-2 code of the country of ip, such as
// "DE": the country where the address is used, or else the one where its
// network is registered (MaxMind leaves the first out for some anycast and
// satellite networks). It returns "" for an address that is invalid or not
// in the database, when g is nil (no database configured) and after Close.
func (g *Geo) Country(ip string) string {
	if g == nil {
		return ""
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	rec, _ := g.recs.Get().(*countryRecord)
	if rec == nil {
		rec = new(countryRecord)
	}
	*rec = countryRecord{}
	iso := ""
	if err := g.r.Lookup(addr.Unmap().WithZone("")).Decode(rec); err == nil {
		iso = cmp.Or(rec.Country.ISOCode, rec.RegisteredCountry.ISOCode)
	}
	g.recs.Put(rec)
	return iso
}

// Close unmaps the database. It must not run while Country does (stop the
// shards first); Country returns "" afterwards. Calling Close on a nil Geo
// does nothing.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	return g.r.Close()
}
