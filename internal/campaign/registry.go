package campaign

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/contrailhq/contrail/internal/revision"
)

// Registry is an always-current, read-only view of every tenant's
// published campaigns, compiled, with the trigger index: (tenant, activity
// type) → the active versions listening to it. Lookups never block.
type Registry struct {
	store   *Store
	logger  *slog.Logger
	window  func(tenant string) time.Duration
	snap    atomic.Pointer[catalog]
	loaded  chan struct{}
	applied revision.Tracker
}

// catalog is one immutable state of the registry.
type catalog struct {
	byTenant map[string]*tenantCatalog
}

type tenantCatalog struct {
	index    map[string][]*Version // activity type → active versions, by priority
	active   map[string]*Version   // campaign → its active version
	versions map[string]*Version   // "campaign/n" → version
}

// NewRegistry returns a registry over store; Run keeps it current. window
// gives a tenant's back-fill trigger window.
func NewRegistry(store *Store, logger *slog.Logger, window func(tenant string) time.Duration) *Registry {
	r := &Registry{store: store, logger: logger, window: window, loaded: make(chan struct{})}
	r.snap.Store(&catalog{byTenant: map[string]*tenantCatalog{}})
	return r
}

// Loaded is closed once the registry holds every campaign that existed
// when Run began.
func (r *Registry) Loaded() <-chan struct{} { return r.loaded }

// Triggered implements Catalog.
func (r *Registry) Triggered(tenantID, activity string) []*Version {
	if t := r.snap.Load().byTenant[tenantID]; t != nil {
		return t.index[activity]
	}
	return nil
}

// Version implements Catalog.
func (r *Registry) Version(tenantID, campaign string, n int) (*Version, bool) {
	if t := r.snap.Load().byTenant[tenantID]; t != nil {
		v, ok := t.versions[campaign+"/"+strconv.Itoa(n)]
		return v, ok
	}
	return nil, false
}

// Active implements Catalog.
func (r *Registry) Active(tenantID, campaign string) (*Version, bool) {
	if t := r.snap.Load().byTenant[tenantID]; t != nil {
		v, ok := t.active[campaign]
		return v, ok
	}
	return nil, false
}

// WaitFor returns once the registry has applied KV revision rev.
func (r *Registry) WaitFor(ctx context.Context, rev uint64) error {
	if err := r.applied.WaitFor(ctx, rev); err != nil {
		return fmt.Errorf("campaigns: %w", err)
	}
	return nil
}

// Run watches the bucket and keeps the registry current until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	w, err := r.store.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching campaigns: %w", err)
	}
	defer func() { _ = w.Stop() }()
	campaigns := map[string]*Campaign{} // "tenant/id"
	versions := map[string]*Version{}   // KV key of the version
	initial := true
	var maxRev uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("campaign watch closed")
			}
			if e == nil {
				initial = false
				r.publish(campaigns, versions)
				r.applied.Advance(maxRev)
				close(r.loaded)
				continue
			}
			maxRev = max(maxRev, e.Revision())
			r.apply(ctx, e, campaigns, versions)
			if !initial {
				r.publish(campaigns, versions)
				r.applied.Advance(e.Revision())
			}
		}
	}
}

// apply takes one KV change into the maps.
func (r *Registry) apply(ctx context.Context, e jetstream.KeyValueEntry, campaigns map[string]*Campaign, versions map[string]*Version) {
	parts := strings.Split(e.Key(), ".")
	put := e.Operation() == jetstream.KeyValuePut
	switch {
	case len(parts) == 3 && parts[0] == "c":
		k := parts[1] + "/" + parts[2]
		if !put {
			delete(campaigns, k)
			return
		}
		var c Campaign
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			r.logger.Error("skipping undecodable campaign", "key", e.Key(), "err", err)
			return
		}
		campaigns[k] = &c
	case len(parts) == 4 && parts[0] == "v":
		if !put {
			delete(versions, e.Key())
			return
		}
		n, _ := strconv.Atoi(parts[3])
		var spec Spec
		if err := json.Unmarshal(e.Value(), &spec); err != nil {
			r.logger.Error("skipping undecodable campaign version", "key", e.Key(), "err", err)
			return
		}
		var window time.Duration
		if r.window != nil {
			window = r.window(parts[1])
		}
		v, err := Compile(ctx, r.store.x, spec, CompileOptions{BackfillWindow: window})
		if err != nil {
			r.logger.Error("skipping campaign version that no longer compiles", "key", e.Key(), "err", err)
			return
		}
		v.Tenant, v.Campaign, v.Number = parts[1], parts[2], n
		versions[e.Key()] = v
	}
}

// publish swaps in a catalog built from the maps.
func (r *Registry) publish(campaigns map[string]*Campaign, versions map[string]*Version) {
	c := &catalog{byTenant: map[string]*tenantCatalog{}}
	tc := func(id string) *tenantCatalog {
		t := c.byTenant[id]
		if t == nil {
			t = &tenantCatalog{index: map[string][]*Version{}, active: map[string]*Version{}, versions: map[string]*Version{}}
			c.byTenant[id] = t
		}
		return t
	}
	for _, v := range versions {
		tc(v.Tenant).versions[v.Campaign+"/"+strconv.Itoa(v.Number)] = v
	}
	for _, cp := range campaigns {
		if cp.Status != StatusActive || cp.Version == 0 {
			continue
		}
		t := tc(cp.Tenant)
		v, ok := t.versions[cp.ID+"/"+strconv.Itoa(cp.Version)]
		if !ok {
			continue // the version's key arrives next
		}
		t.active[cp.ID] = v
		for _, act := range ListenedActivities(v) {
			t.index[act] = append(t.index[act], v)
		}
	}
	for _, t := range c.byTenant {
		for _, vs := range t.index {
			SortByPriority(vs)
		}
	}
	r.snap.Store(c)
}

// ListenedActivities returns the activity types a version's triggers
// listen to, each once.
func ListenedActivities(v *Version) []string {
	var out []string
	for _, trig := range v.triggers {
		if !slices.Contains(out, trig.activity) {
			out = append(out, trig.activity)
		}
	}
	return out
}

// SortByPriority orders versions as one activity triggers them: highest
// priority first, then by campaign id.
func SortByPriority(vs []*Version) {
	slices.SortFunc(vs, func(a, b *Version) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), strings.Compare(a.Campaign, b.Campaign))
	})
}
