package deliver

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/shard"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		wantErr error
	}{
		{"http://127.0.0.1/", ErrPrivateAddress},
		{"http://localhost/", ErrPrivateAddress},
		{"http://10.1.2.3/", ErrPrivateAddress},
		{"http://172.16.0.1:8080/x", ErrPrivateAddress},
		{"http://192.168.1.1/", ErrPrivateAddress},
		{"http://169.254.169.254/latest/meta-data/", ErrPrivateAddress},
		{"http://100.64.0.1/", ErrPrivateAddress},
		{"http://0.0.0.0/", ErrPrivateAddress},
		{"http://224.0.0.1/", ErrPrivateAddress},
		{"http://[::1]/", ErrPrivateAddress},
		{"http://[::]/", ErrPrivateAddress},
		{"http://[fc00::1]/", ErrPrivateAddress},
		{"http://[fe80::1%25eth0]/", ErrPrivateAddress},
		{"http://[::ffff:127.0.0.1]/", ErrPrivateAddress},
		{"http://[64:ff9b::a00:1]/", ErrPrivateAddress}, // NAT64 of 10.0.0.1
		{"ftp://93.184.216.34/", ErrInvalidURL},
		{"file:///etc/passwd", ErrInvalidURL},
		{"gopher://example.com/", ErrInvalidURL},
		{"http:///nohost", ErrInvalidURL},
		{"/relative", ErrInvalidURL},
		{"https://93.184.216.34/", nil},
		{"http://93.184.216.34:8080/hook?x=1", nil},
		{"https://[2606:2800:220:1:248:1893:25c8:1946]/", nil},
	} {
		err := CheckURL(t.Context(), tc.url, false)
		if tc.wantErr == nil {
			require.NoError(t, err, tc.url)
			continue
		}
		require.ErrorIs(t, err, tc.wantErr, tc.url)
	}
}

func TestCheckURLAllowPrivate(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckURL(t.Context(), "http://127.0.0.1:9/", true))
	require.ErrorIs(t, CheckURL(t.Context(), "ftp://127.0.0.1/", true), ErrInvalidURL)

	s := newSender(t, openStore(t), Config{}, Deps{})
	require.ErrorIs(t, s.CheckURL(t.Context(), "http://10.0.0.1/"), ErrPrivateAddress)
	s = newSender(t, openStore(t), Config{AllowPrivateNetworks: true}, Deps{})
	require.NoError(t, s.CheckURL(t.Context(), "http://10.0.0.1/"))
}

func TestIsPublic(t *testing.T) {
	t.Parallel()
	f := func(addr string, want bool) {
		t.Helper()
		require.Equal(t, want, isPublic(netip.MustParseAddr(addr)), addr)
	}
	f("8.8.8.8", true)
	f("100.63.255.255", true)
	f("100.64.0.0", false)
	f("100.127.255.255", false)
	f("100.128.0.0", true)
	f("172.15.255.255", true)
	f("172.16.0.0", false)
	f("198.18.0.1", false)
	f("240.0.0.1", false)
	f("255.255.255.255", false)
	f("2001:4860:4860::8888", true)
	f("2002:0808:0808::1", true)  // 6to4 of 8.8.8.8
	f("2002:0a00:0001::1", false) // 6to4 of 10.0.0.1
	f("64:ff9b::808:808", true)   // NAT64 of 8.8.8.8
	f("::ffff:10.0.0.1", false)
	f("fd12:3456::1", false)
	f("ff02::1", false)
	f("fe80::1", false)
}

// With private networks refused, a delivery to 127.0.0.1 fails at once,
// whatever CheckURL said when the campaign was published: the dialer
// checks the address it connects to.
func TestDeliveryToPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, ok)
	cfg := testConfig()
	cfg.AllowPrivateNetworks = false
	s := startSender(t, openStore(t), cfg, Deps{})
	// A name, so that the refusal happens at dial time, after resolution.
	url := "http://localhost:" + strconv.Itoa(rc.srv.Listener.Addr().(*net.TCPAddr).Port) + "/"
	s.Deliver(t.Context(), []shard.External{hook(t, "k-private", "", rc.srv.URL), hook(t, "k-private-name", "", url)})
	for _, key := range []string{"k-private", "k-private-name"} {
		res := waitResult(t, s, key)
		require.Equal(t, StatusFailed, res.Status, key)
		require.Equal(t, 1, res.Attempts, key)
		require.Contains(t, res.Error, ErrPrivateAddress.Error(), key)
	}
	require.Empty(t, rc.all())
}

func TestDialControl(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, dialControl("tcp4", "127.0.0.1:80", nil), ErrPrivateAddress)
	require.ErrorIs(t, dialControl("tcp6", "[fe80::1%lo]:80", nil), ErrPrivateAddress)
	require.ErrorIs(t, dialControl("tcp", "nonsense", nil), ErrPrivateAddress)
	require.NoError(t, dialControl("tcp4", "93.184.216.34:443", nil))
}
