package enrich

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIPPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []IPPolicy{"", IPKeep, IPAnonymize, IPDrop} {
		require.NoError(t, p.Validate(), p)
	}
	for _, p := range []IPPolicy{"hash", "Keep", " drop"} {
		err := p.Validate()
		require.ErrorIs(t, err, ErrInvalidIPPolicy, p)
		require.ErrorContains(t, err, string(p))
	}
}

func TestIPPolicyApply(t *testing.T) {
	t.Parallel()
	f := func(p IPPolicy, ip, want string) {
		t.Helper()
		require.Equal(t, want, p.Apply(ip), "%s(%q)", p, ip)
	}
	f(IPKeep, "203.0.113.42", "203.0.113.42")
	f(IPKeep, "2001:db8::1", "2001:db8::1")
	f(IPKeep, "not an ip", "not an ip")
	f("", "203.0.113.42", "203.0.113.42")

	f(IPAnonymize, "203.0.113.42", "203.0.113.0")
	f(IPAnonymize, "203.0.113.0", "203.0.113.0")
	f(IPAnonymize, "10.1.2.255", "10.1.2.0")
	f(IPAnonymize, "2001:db8:1:2:3:4:5:6", "2001:db8:1::")
	f(IPAnonymize, "2001:0DB8:0001:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::")
	f(IPAnonymize, "2001:db8:1::", "2001:db8:1::")
	f(IPAnonymize, "::ffff:198.51.100.7", "198.51.100.0")
	f(IPAnonymize, "fe80::1:2:3:4%eth0", "fe80::")
	f(IPAnonymize, "::1", "::")
	f(IPAnonymize, "not an ip", "")
	f(IPAnonymize, "1.2.3", "")
	f(IPAnonymize, "1.2.3.4:80", "")
	f(IPAnonymize, "", "")

	f(IPDrop, "203.0.113.42", "")
	f(IPDrop, "2001:db8::1", "")
	f("hash", "203.0.113.42", "")
}
