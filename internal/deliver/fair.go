package deliver

// Who goes next. Ready items wait in lanes: one lane per tenant and
// endpoint. Tenants with a lane to serve take turns in Sender.ring (round
// robin: deficit round robin with equal quanta and a cost of one slot per
// attempt), and within a tenant its lanes take turns, so that neither a
// tenant with many endpoints nor one with many ready items gets more turns
// than another (DESIGN.md §2, principle 6). A turn starts one attempt when
// the tenant is below its limit (Deps.TenantConcurrency,
// Config.PerTenantConcurrency) and the lane's endpoint below
// Config.PerEndpointConcurrency. The tenant limit is what keeps a tenant
// whose receivers hang from holding every worker until they time out.
//
// A lane whose endpoint is busy waits at the endpoint (endpoint.blocked),
// and goes back to its tenant when an attempt there ends. A tenant at its
// limit leaves the ring until one of its attempts ends. So a turn either
// starts an attempt or parks something, and dispatching never spins.
//
// Bookkeeping lives only while there is something to serve: a lane while
// it has ready items, a tenant while it has a lane or an attempt in
// progress, an endpoint while it has a lane or an attempt in progress.
// Items queued behind their Order or waiting to retry need none.

// endpoint is a concurrency group shared by every tenant: one URL host,
// or the SMTP server.
type endpoint struct {
	name   string
	active int // attempts in progress
	lanes  int // lanes of any tenant for it
	// blocked are the lanes that found it busy, in that order.
	blocked []*lane
}

// lane holds one tenant's ready items for one endpoint, in order.
type lane struct {
	tenant   *tenantQueue
	endpoint *endpoint
	ready    []*item
	// queued: in its tenant's runnable, or in its endpoint's blocked.
	queued bool
}

// tenantQueue is one tenant's share of the scheduler.
type tenantQueue struct {
	name   string
	active int              // attempts in progress
	lanes  map[string]*lane // by endpoint name
	// runnable are the lanes to serve, round-robin; their endpoints may
	// have turned busy since.
	runnable []*lane
	inRing   bool // in Sender.ring
}

// readyLocked makes it wait for its turn and a slot.
func (s *Sender) readyLocked(it *item) {
	t := s.tenants[it.tenant()]
	if t == nil {
		t = &tenantQueue{name: it.tenant(), lanes: map[string]*lane{}}
		s.tenants[t.name] = t
	}
	l := t.lanes[it.endpoint]
	if l == nil {
		e := s.endpoints[it.endpoint]
		if e == nil {
			e = &endpoint{name: it.endpoint}
			s.endpoints[e.name] = e
		}
		e.lanes++
		l = &lane{tenant: t, endpoint: e}
		t.lanes[e.name] = l
	}
	l.ready = append(l.ready, it)
	if !l.queued {
		l.queued = true
		t.runnable = append(t.runnable, l)
	}
	s.markTenantLocked(t)
	s.signal()
}

// markTenantLocked puts t at the back of the ring if it has a lane to
// serve. Whether it is below its limit is checked when its turn comes.
func (s *Sender) markTenantLocked(t *tenantQueue) {
	if !t.inRing && len(t.runnable) > 0 {
		t.inRing = true
		s.ring = append(s.ring, t)
	}
}

// tenantLimit is the number of attempts of tenant allowed at once.
func (s *Sender) tenantLimit(tenant string) int {
	if s.deps.TenantConcurrency != nil {
		if n := s.deps.TenantConcurrency(tenant); n > 0 {
			return n
		}
	}
	return s.cfg.PerTenantConcurrency
}

// nextItemLocked takes the turn of the tenant first in the ring: its next
// item to attempt, with the slots taken, or nil when it has none that may
// start now.
func (s *Sender) nextItemLocked() *item {
	t := s.ring[0]
	s.ring[0] = nil
	s.ring = s.ring[1:]
	t.inRing = false
	var l *lane
	for len(t.runnable) > 0 {
		l = t.runnable[0]
		if l.endpoint.active < s.cfg.PerEndpointConcurrency {
			break
		}
		t.runnable[0] = nil
		t.runnable = t.runnable[1:]
		l.endpoint.blocked = append(l.endpoint.blocked, l)
		l = nil
	}
	if l == nil {
		return nil // its endpoints are busy: an attempt ending there puts it back
	}
	if t.active >= s.tenantLimit(t.name) {
		// One of its attempts ending puts it back.
		s.metrics.throttled.WithLabelValues(t.name).Inc()
		return nil
	}
	t.runnable[0] = nil
	t.runnable = t.runnable[1:]
	it := l.ready[0]
	l.ready[0] = nil
	l.ready = l.ready[1:]
	if len(l.ready) > 0 {
		t.runnable = append(t.runnable, l) // to the back: endpoints take turns
	} else {
		l.queued = false
		delete(t.lanes, l.endpoint.name)
		l.endpoint.lanes--
	}
	l.endpoint.active++
	t.active++
	s.running++
	s.metrics.tenantActive.WithLabelValues(t.name).Set(float64(t.active))
	s.markTenantLocked(t) // to the back: tenants take turns
	return it
}

// release frees the slots of an attempt that ended.
func (s *Sender) release(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	t := s.tenants[it.tenant()]
	t.active--
	e := s.endpoints[it.endpoint]
	e.active--
	for i, l := range e.blocked {
		e.blocked[i] = nil
		l.tenant.runnable = append(l.tenant.runnable, l)
		s.markTenantLocked(l.tenant)
	}
	e.blocked = nil
	s.markTenantLocked(t)
	if e.active == 0 && e.lanes == 0 {
		delete(s.endpoints, e.name)
	}
	if t.active == 0 && len(t.lanes) == 0 {
		delete(s.tenants, t.name)
		s.metrics.tenantActive.DeleteLabelValues(t.name)
	} else {
		s.metrics.tenantActive.WithLabelValues(t.name).Set(float64(t.active))
	}
	s.signal()
}
