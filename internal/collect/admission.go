package collect

import (
	"math"
	"sync"
	"time"

	"github.com/contrailhq/contrail/internal/tenant"
)

// admission applies each tenant's rate limit and daily quota. The limits are
// read from the tenant on every request, so a change through the admin API
// takes effect on the next request.
//
// Counts are per node: with several collectors, a tenant's limits apply on
// each of them.
type admission struct {
	mu      sync.Mutex
	tenants map[string]*tenantAdmission
}

type tenantAdmission struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	day    int64 // days since epoch, UTC
	count  int64 // events admitted on day
}

func newAdmission() *admission { return &admission{tenants: map[string]*tenantAdmission{}} }

func (a *admission) state(id string) *tenantAdmission {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.tenants[id]
	if !ok {
		s = &tenantAdmission{tokens: math.NaN()}
		a.tenants[id] = s
	}
	return s
}

// admit decides whether n events of t may enter now. The token bucket may go
// into debt by one request, so a batch larger than the burst is not refused
// for ever; the debt is repaid before the next request passes.
func (a *admission) admit(t *tenant.Tenant, n int, now time.Time) *reqError {
	l := t.Limits
	if l.EventsPerSecond <= 0 && l.DailyQuota <= 0 {
		return nil
	}
	s := a.state(t.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.DailyQuota > 0 {
		day := now.UTC().Unix() / 86400
		if day != s.day {
			s.day, s.count = day, 0
		}
		if s.count+int64(n) > l.DailyQuota {
			e := refuse(CodeQuotaExceeded, "daily event quota reached")
			e.retryAfter = int((day+1)*86400 - now.Unix())
			return e
		}
	}
	if l.EventsPerSecond > 0 {
		burst := float64(max(l.Burst, 1))
		if math.IsNaN(s.tokens) {
			s.tokens, s.last = burst, now
		}
		s.tokens = math.Min(burst, s.tokens+now.Sub(s.last).Seconds()*l.EventsPerSecond)
		s.last = now
		if s.tokens <= 0 {
			e := refuse(CodeRateLimited, "tenant event rate exceeded")
			e.retryAfter = max(1, int(math.Ceil((1-s.tokens)/l.EventsPerSecond)))
			return e
		}
		s.tokens -= float64(n)
	}
	if l.DailyQuota > 0 {
		s.count += int64(n)
	}
	return nil
}
