package tenant

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSettingsJSONAndDefaults(t *testing.T) {
	var s Settings
	require.NoError(t, json.Unmarshal([]byte(`{"ip_policy":"anonymize","session_timeout":"45m","visitor_retention":"90d","blocked_ids":["guest"]}`), &s))
	require.Equal(t, Duration(45*time.Minute), s.SessionTimeout)
	require.Equal(t, Duration(90*24*time.Hour), s.VisitorRetention)
	require.NoError(t, s.Validate())
	d := s.WithDefaults()
	require.Equal(t, 200, d.HistoryLimit)
	require.Equal(t, Duration(24*time.Hour), d.SessionMaxLength)
	b, err := json.Marshal(d)
	require.NoError(t, err)
	require.Contains(t, string(b), `"visitor_retention":"90d"`)
	require.Contains(t, string(b), `"session_timeout":"45m0s"`)

	tn := &Tenant{Settings: s}
	require.True(t, tn.IsBlockedID(" Guest "))
	require.True(t, tn.IsBlockedID("undefined"))
	require.True(t, tn.IsBlockedID("  "))
	require.False(t, tn.IsBlockedID("user-1"))
}

func TestSettingsValidate(t *testing.T) {
	f := func(s Settings, ok bool) {
		t.Helper()
		if ok {
			require.NoError(t, s.Validate())
		} else {
			require.Error(t, s.Validate())
		}
	}
	f(Settings{}, true)
	f(Settings{IPPolicy: "hash"}, false)
	f(Settings{SessionTimeout: Duration(time.Second)}, false)
	f(Settings{SessionMaxLength: Duration(30 * 24 * time.Hour)}, false)
	f(Settings{HistoryLimit: -1}, false)
	f(Settings{HistoryLimit: 20000}, false)
	f(Settings{VisitorRetention: Duration(time.Hour)}, false)
	var d Duration
	require.Error(t, json.Unmarshal([]byte(`"soon"`), &d))
	require.Error(t, json.Unmarshal([]byte(`"xd"`), &d))
}
