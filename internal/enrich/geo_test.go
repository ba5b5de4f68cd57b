package enrich

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/enrich/enrichtest"
)

// openTestGeo builds a small country database and opens it.
func openTestGeo(tb testing.TB) *Geo {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "country.mmdb")
	require.NoError(tb, enrichtest.WriteCountryDB(path, map[string]string{
		"81.2.69.0/24":    "GB",
		"192.0.2.0/24":    "US",
		"10.0.0.0/8":      "FR",
		"10.1.0.0/16":     "IT", // more specific than 10.0.0.0/8
		"2001:db8::/32":   "DE",
		"2a02:c7f::/32":   "GB",
		"2001:db8:1::/48": "AT",
	}))
	g, err := OpenGeo(path)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = g.Close() })
	return g
}

func TestGeoCountry(t *testing.T) {
	t.Parallel()
	g := openTestGeo(t)
	f := func(ip, want string) {
		t.Helper()
		require.Equal(t, want, g.Country(ip), ip)
	}
	f("81.2.69.160", "GB")
	f("192.0.2.1", "US")
	f("10.2.0.1", "FR")
	f("10.1.2.3", "IT")
	f("::ffff:192.0.2.1", "US")
	f("2001:db8::1", "DE")
	f("2001:db8:1::42", "AT")
	f("2a02:c7f:1234::1", "GB")
	f("fe80::1%eth0", "")
	f("8.8.8.8", "")
	f("2606:4700::1111", "")
	f("not an ip", "")
	f("", "")

	require.NoError(t, g.Close())
	f("81.2.69.160", "")
}

func TestGeoNil(t *testing.T) {
	t.Parallel()
	var g *Geo
	require.Equal(t, "", g.Country("81.2.69.160"))
	require.NoError(t, g.Close())
}

func TestOpenGeoErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := OpenGeo(filepath.Join(dir, "missing.mmdb"))
	require.ErrorContains(t, err, "opening geo database")

	junk := filepath.Join(dir, "junk.mmdb")
	require.NoError(t, os.WriteFile(junk, []byte("not a database"), 0o600))
	_, err = OpenGeo(junk)
	require.ErrorContains(t, err, "opening geo database")
}

// TestGeoRegisteredCountry checks the fallback for networks that MaxMind
// gives only a registered country, such as some anycast ranges.
func TestGeoRegisteredCountry(t *testing.T) {
	t.Parallel()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24})
	require.NoError(t, err)
	_, n, err := net.ParseCIDR("81.2.69.0/24")
	require.NoError(t, err)
	require.NoError(t, tree.Insert(n, mmdbtype.Map{
		"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")},
	}))
	path := filepath.Join(t.TempDir(), "registered.mmdb")
	fh, err := os.Create(path)
	require.NoError(t, err)
	_, err = tree.WriteTo(fh)
	require.NoError(t, err)
	require.NoError(t, fh.Close())

	g, err := OpenGeo(path)
	require.NoError(t, err)
	defer g.Close()
	require.Equal(t, "SE", g.Country("81.2.69.1"))
}
