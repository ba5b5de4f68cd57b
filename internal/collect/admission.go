package collect

import (
	"math"
	"slices"
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

// admit decides how many of n events of t may enter now. The token bucket
// may go into debt by one request, so a batch larger than the burst is not
// refused for ever; the debt is repaid before the next request passes.
//
// Over the daily quota, the request is refused, unless t's OverQuota
// setting is drop: then the events that still fit are admitted, the first
// ones of the request, and the caller drops the rest. Only admitted events
// count against the rate and the quota.
func (a *admission) admit(t *tenant.Tenant, n int, now time.Time) (int, *reqError) {
	l := t.Limits
	if l.EventsPerSecond <= 0 && l.DailyQuota <= 0 {
		return n, nil
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
			if t.Settings.OverQuota != tenant.OverQuotaDrop {
				e := refuse(CodeQuotaExceeded, "daily event quota reached")
				e.retryAfter = int((day+1)*86400 - now.Unix())
				return 0, e
			}
			// The quota may have been lowered below today's count.
			n = int(max(l.DailyQuota-s.count, 0))
			if n == 0 {
				return 0, nil
			}
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
			return 0, e
		}
		s.tokens -= float64(n)
	}
	if l.DailyQuota > 0 {
		s.count += int64(n)
	}
	return n, nil
}

// quotaUsed calls f with the events each tenant with a daily quota was
// admitted on today's UTC day, on this node.
func (a *admission) quotaUsed(now time.Time, f func(tenantID string, used int64)) {
	a.mu.Lock()
	ids := make([]string, 0, len(a.tenants))
	states := make([]*tenantAdmission, 0, len(a.tenants))
	for id, s := range a.tenants {
		ids, states = append(ids, id), append(states, s)
	}
	a.mu.Unlock()
	today := now.UTC().Unix() / 86400
	for i, s := range states {
		s.mu.Lock()
		day, count := s.day, s.count
		s.mu.Unlock()
		switch {
		case day == 0: // no quota, only a rate limit
		case day == today:
			f(ids[i], count)
		default: // nothing admitted yet today
			f(ids[i], 0)
		}
	}
}

// dropOverQuota rejects the last k accepted events of req, which are over
// the tenant's daily quota, and takes their frames out of parts; it
// returns the parts that still hold events. Events were framed in request
// order, so the last accepted event is the last span of the part whose
// last span starts furthest into the frame buffer.
func (c *Collector) dropOverQuota(req *request, parts []part, k int) []part {
	i := len(req.results)
	for range k {
		i--
		for req.results[i].code != "" { // rejected already: no frame
			i--
		}
		req.results[i].code, req.results[i].msg = CodeQuotaExceeded, "daily event quota reached; the event was dropped"
		last, lastOff := -1, -1
		for j, pt := range parts {
			if n := len(pt.p.spans); n > 0 && pt.p.spans[n-1].off > lastOff {
				last, lastOff = j, pt.p.spans[n-1].off
			}
		}
		p := parts[last].p
		s := p.spans[len(p.spans)-1]
		p.spans = p.spans[:len(p.spans)-1]
		p.size -= s.end - s.off
		p.n--
	}
	req.accepted -= k
	c.metrics.rejectedEvents.WithLabelValues(req.tenant.ID, string(CodeQuotaExceeded)).Add(float64(k))
	return slices.DeleteFunc(parts, func(pt part) bool { return pt.p.n == 0 })
}
