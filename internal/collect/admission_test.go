package collect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/tenant"
)

func TestAdmissionRate(t *testing.T) {
	a := newAdmission()
	tn := &tenant.Tenant{ID: "t", Limits: tenant.Limits{EventsPerSecond: 10, Burst: 20}}
	now := recv
	require.Nil(t, a.admit(tn, 15, now))
	require.Nil(t, a.admit(tn, 15, now), "bucket may go into debt by one request")
	e := a.admit(tn, 1, now)
	require.Equal(t, CodeRateLimited, e.code)
	require.Equal(t, 2, e.retryAfter, "10 tokens of debt + 1 at 10/s")
	require.Nil(t, a.admit(tn, 1, now.Add(1100*time.Millisecond)))
	// A batch larger than the burst is admitted from a full bucket.
	other := &tenant.Tenant{ID: "u", Limits: tenant.Limits{EventsPerSecond: 1, Burst: 1}}
	require.Nil(t, a.admit(other, 500, now))
	require.NotNil(t, a.admit(other, 1, now.Add(time.Second)))
}

func TestAdmissionQuota(t *testing.T) {
	a := newAdmission()
	tn := &tenant.Tenant{ID: "t", Limits: tenant.Limits{DailyQuota: 100}}
	day := time.Date(2026, 11, 23, 23, 59, 0, 0, time.UTC)
	require.Nil(t, a.admit(tn, 60, day))
	e := a.admit(tn, 41, day)
	require.Equal(t, CodeQuotaExceeded, e.code)
	require.Equal(t, 60, e.retryAfter, "retry at midnight UTC")
	require.Nil(t, a.admit(tn, 40, day))
	require.Nil(t, a.admit(tn, 100, day.Add(2*time.Minute)), "a new day resets the quota")
	// Unlimited tenants never touch the state.
	require.Nil(t, a.admit(&tenant.Tenant{ID: "free"}, 1e6, day))
	require.Len(t, a.tenants, 1)
}
