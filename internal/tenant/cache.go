package tenant

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contrailhq/contrail/internal/revision"
)

// Cache is an always-current, read-only view of all tenants, for lookups on
// the hot path. Lookups never block and never allocate.
type Cache struct {
	store  *Store
	logger *slog.Logger
	snap   atomic.Pointer[snapshot]
	loaded chan struct{}
	// applied is the highest KV revision applied.
	applied revision.Tracker
}

type snapshot struct {
	byID       map[string]*Tenant
	byWriteKey map[string]*Tenant
	// byAPIHash finds a tenant by the hash of one of its API keys.
	byAPIHash map[string]*Tenant
}

// NewCache returns a cache over store; Run keeps it current.
func NewCache(store *Store, logger *slog.Logger) *Cache {
	c := &Cache{store: store, logger: logger, loaded: make(chan struct{})}
	c.snap.Store(&snapshot{byID: map[string]*Tenant{}, byWriteKey: map[string]*Tenant{}, byAPIHash: map[string]*Tenant{}})
	return c
}

// Loaded is closed once the cache holds every tenant that existed when Run began.
func (c *Cache) Loaded() <-chan struct{} { return c.loaded }

// WaitFor blocks until the cache has applied KV revision rev (see
// Tenant.Revision), so that a change made through this node is served by
// this node's collector on the next request.
func (c *Cache) WaitFor(ctx context.Context, rev uint64) error {
	if err := c.applied.WaitFor(ctx, rev); err != nil {
		return fmt.Errorf("tenants: %w", err)
	}
	return nil
}

// ByWriteKey returns the tenant owning write key k.
func (c *Cache) ByWriteKey(k string) (*Tenant, bool) {
	t, ok := c.snap.Load().byWriteKey[k]
	return t, ok
}

// ByID returns the tenant with id.
func (c *Cache) ByID(id string) (*Tenant, bool) {
	t, ok := c.snap.Load().byID[id]
	return t, ok
}

// Each calls fn with every tenant the cache holds, in no order.
func (c *Cache) Each(fn func(*Tenant)) {
	for _, t := range c.snap.Load().byID {
		fn(t)
	}
}

// Policy returns whether the tenant is paused and its processing weight;
// the shards ask it for every tenant they see. An unknown tenant is not
// paused and weighs 1.
func (c *Cache) Policy(id string) (paused bool, weight int) {
	t, ok := c.snap.Load().byID[id]
	if !ok {
		return false, 1
	}
	return t.IsPaused(), t.EffectiveWeight()
}

// PausedAt reports whether the tenant was paused at t; the shards ask it
// with the time the log stored a message.
func (c *Cache) PausedAt(id string, at time.Time) bool {
	t, ok := c.snap.Load().byID[id]
	return ok && t.WasPausedAt(at)
}

// ByAPIKey returns the tenant owning API key secret, by the key's hash:
// one hash per call, whatever the number of tenants (every request of the
// report, lead and campaign API and of the dashboard asks).
func (c *Cache) ByAPIKey(secret string) (*Tenant, bool) {
	t, ok := c.snap.Load().byAPIHash[HashKey(secret)]
	return t, ok
}

// Run watches the bucket and keeps the cache current until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	w, err := c.store.kv.WatchFiltered(ctx, []string{"t.*"})
	if err != nil {
		return fmt.Errorf("watching tenants: %w", err)
	}
	defer w.Stop()
	pending := map[string]*Tenant{}
	initial := true
	var maxRev uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("tenant watch closed")
			}
			if e == nil { // end of the initial values
				initial = false
				c.publish(pending)
				c.applied.Advance(maxRev)
				close(c.loaded)
				continue
			}
			maxRev = max(maxRev, e.Revision())
			id := strings.TrimPrefix(e.Key(), "t.")
			if e.Operation() != jetstream.KeyValuePut {
				delete(pending, id)
			} else {
				var t Tenant
				if err := json.Unmarshal(e.Value(), &t); err != nil {
					c.logger.Error("skipping undecodable tenant", "tenant", id, "err", err)
					continue
				}
				pending[id] = &t
			}
			if !initial {
				c.publish(pending)
				c.applied.Advance(e.Revision())
			}
		}
	}
}

// publish swaps in a new immutable snapshot built from m.
func (c *Cache) publish(m map[string]*Tenant) {
	s := &snapshot{byID: make(map[string]*Tenant, len(m)), byWriteKey: make(map[string]*Tenant, len(m)), byAPIHash: make(map[string]*Tenant, len(m))}
	for id, t := range m {
		s.byID[id] = t
		for _, k := range t.Keys {
			switch k.Kind {
			case KindWrite:
				s.byWriteKey[k.Secret] = t
			case KindAPI:
				s.byAPIHash[k.Hash] = t
			}
		}
	}
	c.snap.Store(s)
}
