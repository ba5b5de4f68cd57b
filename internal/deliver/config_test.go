package deliver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	require.Equal(t, 64, c.Workers)
	require.Equal(t, 8, c.PerEndpointConcurrency)
	require.Equal(t, 32, c.PerTenantConcurrency)
	require.Equal(t, 8, c.MaxAttempts)
	require.Equal(t, time.Second, c.BaseBackoff)
	require.Equal(t, 5*time.Minute, c.MaxBackoff)
	require.Equal(t, 10*time.Second, c.Timeout)
	require.Equal(t, 100*time.Millisecond, c.HandoverWait)
	require.Equal(t, 1000, c.LagThreshold)
	require.Equal(t, "localhost", c.SMTP.HelloName)
	require.NoError(t, Config{}.Validate())

	require.Error(t, Config{Workers: -1}.Validate())
	require.Error(t, Config{PerTenantConcurrency: -1}.Validate())
	require.Error(t, Config{Timeout: -time.Second}.Validate())
	require.Error(t, Config{BaseBackoff: time.Hour, MaxBackoff: time.Minute}.Validate())

	_, err := New(Config{}, Deps{})
	require.ErrorContains(t, err, "Store is required")
	_, err = New(Config{MaxAttempts: -1}, Deps{Store: openStore(t)})
	require.ErrorContains(t, err, "deliver config")
}
