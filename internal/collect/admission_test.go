package collect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/tenant"
)

// admitAll admits n events and checks that a request is either admitted
// whole or refused.
func admitAll(t *testing.T, a *admission, tn *tenant.Tenant, n int, now time.Time) *reqError {
	t.Helper()
	got, e := a.admit(tn, n, now)
	if e == nil {
		require.Equal(t, n, got, "admitted whole")
	} else {
		require.Zero(t, got, "refused whole")
	}
	return e
}

func TestAdmissionRate(t *testing.T) {
	a := newAdmission()
	tn := &tenant.Tenant{ID: "t", Limits: tenant.Limits{EventsPerSecond: 10, Burst: 20}}
	now := recv
	require.Nil(t, admitAll(t, a, tn, 15, now))
	require.Nil(t, admitAll(t, a, tn, 15, now), "bucket may go into debt by one request")
	e := admitAll(t, a, tn, 1, now)
	require.Equal(t, CodeRateLimited, e.code)
	require.Equal(t, 2, e.retryAfter, "10 tokens of debt + 1 at 10/s")
	require.Nil(t, admitAll(t, a, tn, 1, now.Add(1100*time.Millisecond)))
	// A batch larger than the burst is admitted from a full bucket.
	other := &tenant.Tenant{ID: "u", Limits: tenant.Limits{EventsPerSecond: 1, Burst: 1}}
	require.Nil(t, admitAll(t, a, other, 500, now))
	require.NotNil(t, admitAll(t, a, other, 1, now.Add(time.Second)))
}

func TestAdmissionQuota(t *testing.T) {
	a := newAdmission()
	tn := &tenant.Tenant{ID: "t", Limits: tenant.Limits{DailyQuota: 100}}
	day := time.Date(2026, 11, 23, 23, 59, 0, 0, time.UTC)
	require.Nil(t, admitAll(t, a, tn, 60, day))
	e := admitAll(t, a, tn, 41, day)
	require.Equal(t, CodeQuotaExceeded, e.code)
	require.Equal(t, 60, e.retryAfter, "retry at midnight UTC")
	require.Nil(t, admitAll(t, a, tn, 40, day))
	require.Nil(t, admitAll(t, a, tn, 100, day.Add(2*time.Minute)), "a new day resets the quota")
	// Unlimited tenants never touch the state.
	require.Nil(t, admitAll(t, a, &tenant.Tenant{ID: "free"}, 1e6, day))
	require.Len(t, a.tenants, 1)
}

// With over_quota drop, a request over the quota is admitted in part: the
// events that still fit, then none, and no refusal.
func TestAdmissionQuotaDrop(t *testing.T) {
	a := newAdmission()
	tn := &tenant.Tenant{ID: "t", Limits: tenant.Limits{DailyQuota: 10}, Settings: tenant.Settings{OverQuota: tenant.OverQuotaDrop}}
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f := func(n, want int, at time.Time, msg string) {
		t.Helper()
		got, e := a.admit(tn, n, at)
		require.Nil(t, e, msg)
		require.Equal(t, want, got, msg)
	}
	f(6, 6, day, "within the quota")
	f(6, 4, day, "the first 4 fit")
	f(1, 0, day, "none fits; not refused")
	f(3, 3, day.Add(12*time.Hour), "a new day resets the quota")

	// The quota lowered below today's count admits none.
	tn.Limits.DailyQuota = 2
	f(1, 0, day.Add(12*time.Hour), "quota lowered under the count")

	// The rate limit still refuses; the refused events do not count
	// against the quota.
	rl := &tenant.Tenant{ID: "r", Limits: tenant.Limits{DailyQuota: 10, EventsPerSecond: 1, Burst: 1}, Settings: tenant.Settings{OverQuota: tenant.OverQuotaDrop}}
	got, e := a.admit(rl, 3, day)
	require.Nil(t, e)
	require.Equal(t, 3, got)
	_, e = a.admit(rl, 3, day)
	require.Equal(t, CodeRateLimited, e.code)
	got, e = a.admit(rl, 20, day.Add(time.Hour))
	require.Nil(t, e)
	require.Equal(t, 7, got, "3 counted, the rate-limited 3 not")

	used := map[string]int64{}
	a.quotaUsed(day.Add(time.Hour), func(id string, n int64) { used[id] = n })
	require.Equal(t, map[string]int64{"t": 0, "r": 10}, used, "t's count is of the next day")
	clear(used)
	a.quotaUsed(day.Add(12*time.Hour), func(id string, n int64) { used[id] = n })
	require.Equal(t, map[string]int64{"t": 3, "r": 0}, used)
}
