package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket that holds tenants. Keys: "t.<id>" holds a
// tenant's JSON, "n.<hash of name>" reserves a name for a tenant id.
const Bucket = "contrail_tenants"

// Store reads and writes tenants in the KV bucket. It is safe for
// concurrent use; concurrent updates of one tenant are serialised by
// compare-and-set on the KV revision.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenStore opens (creating if needed) the tenant bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int, now func() time.Time) (*Store, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Contrail tenants, keys and limits",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening tenant bucket: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, now: now}, nil
}

// Created is the answer to Create: the tenant and its first keys' secrets,
// which are never shown again.
type Created struct {
	Tenant   Tenant
	WriteKey string
	APIKey   string
}

// Create makes a tenant with one write key and one API key.
func (s *Store) Create(ctx context.Context, name string, limits Limits) (Created, error) {
	if err := ValidateName(name); err != nil {
		return Created{}, err
	}
	if err := limits.WithDefaults().Validate(); err != nil {
		return Created{}, err
	}
	now := s.now().UTC()
	t := Tenant{ID: "tn_" + randomString(12), Name: name, CreatedAt: now, Limits: limits.WithDefaults(), WebhookSecret: NewWebhookSecret()}
	wk, wsecret := newKey(KindWrite, now)
	ak, asecret := newKey(KindAPI, now)
	t.Keys = []Key{wk, ak}
	if _, err := s.kv.Create(ctx, nameKey(name), []byte(t.ID)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Created{}, fmt.Errorf("tenant name %q: %w", name, ErrNameTaken)
		}
		return Created{}, fmt.Errorf("reserving tenant name: %w", err)
	}
	b, _ := json.Marshal(&t)
	rev, err := s.kv.Create(ctx, tenantKey(t.ID), b)
	if err != nil {
		_ = s.kv.Delete(ctx, nameKey(name))
		return Created{}, fmt.Errorf("storing tenant: %w", err)
	}
	t.Revision = rev
	return Created{Tenant: t, WriteKey: wsecret, APIKey: asecret}, nil
}

// Get returns the tenant with id, or with name when no id matches.
func (s *Store) Get(ctx context.Context, idOrName string) (Tenant, error) {
	t, _, err := s.get(ctx, idOrName)
	return t, err
}

func (s *Store) get(ctx context.Context, idOrName string) (Tenant, uint64, error) {
	if strings.HasPrefix(idOrName, "tn_") {
		t, rev, err := s.getByID(ctx, idOrName)
		if !errors.Is(err, ErrNotFound) {
			return t, rev, err
		}
		// Not an id after all: a name may look like one.
	}
	e, err := s.kv.Get(ctx, nameKey(idOrName))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Tenant{}, 0, fmt.Errorf("tenant %q: %w", idOrName, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, 0, fmt.Errorf("looking up tenant name: %w", err)
	}
	return s.getByID(ctx, string(e.Value()))
}

func (s *Store) getByID(ctx context.Context, id string) (Tenant, uint64, error) {
	e, err := s.kv.Get(ctx, tenantKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Tenant{}, 0, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, 0, fmt.Errorf("reading tenant %s: %w", id, err)
	}
	var t Tenant
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Tenant{}, 0, fmt.Errorf("decoding tenant %s: %w", id, err)
	}
	t.Revision = e.Revision()
	return t, e.Revision(), nil
}

// List returns all tenants ordered by name.
func (s *Store) List(ctx context.Context) ([]Tenant, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "t.*")
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	var out []Tenant
	for k := range lister.Keys() {
		t, _, err := s.getByID(ctx, strings.TrimPrefix(k, "t."))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Update applies fn to the tenant and stores the result with
// compare-and-set, retrying when another writer got there first.
func (s *Store) Update(ctx context.Context, idOrName string, fn func(*Tenant) error) (Tenant, error) {
	for attempt := 0; ; attempt++ {
		t, rev, err := s.get(ctx, idOrName)
		if err != nil {
			return Tenant{}, err
		}
		if err := fn(&t); err != nil {
			return Tenant{}, err
		}
		b, _ := json.Marshal(&t)
		newRev, err := s.kv.Update(ctx, tenantKey(t.ID), b, rev)
		if err == nil {
			t.Revision = newRev
			return t, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt > 10 {
			return Tenant{}, fmt.Errorf("updating tenant %s: %w", t.ID, err)
		}
	}
}

// SetLimits replaces a tenant's limits.
func (s *Store) SetLimits(ctx context.Context, idOrName string, l Limits) (Tenant, error) {
	if err := l.WithDefaults().Validate(); err != nil {
		return Tenant{}, err
	}
	return s.Update(ctx, idOrName, func(t *Tenant) error {
		t.Limits = l.WithDefaults()
		return nil
	})
}

// SetSettings replaces a tenant's settings.
func (s *Store) SetSettings(ctx context.Context, idOrName string, st Settings) (Tenant, error) {
	if err := st.Validate(); err != nil {
		return Tenant{}, err
	}
	return s.Update(ctx, idOrName, func(t *Tenant) error {
		t.Settings = st
		return nil
	})
}

// SetPaused pauses or resumes a tenant. Pausing an already paused tenant
// keeps its original PausedAt; resuming keeps the pause in PastPauses.
func (s *Store) SetPaused(ctx context.Context, idOrName string, paused bool) (Tenant, error) {
	return s.Update(ctx, idOrName, func(t *Tenant) error {
		now := s.now().UTC()
		switch {
		case paused && !t.IsPaused():
			t.PausedAt = &now
		case !paused && t.IsPaused():
			t.PastPauses = append(t.PastPauses, Pause{From: *t.PausedAt, To: now})
			if n := len(t.PastPauses); n > maxPastPauses {
				t.PastPauses = t.PastPauses[n-maxPastPauses:]
			}
			t.PausedAt = nil
		}
		return nil
	})
}

// AddKey adds a key of kind to a tenant and returns the secret.
func (s *Store) AddKey(ctx context.Context, idOrName, kind string) (Tenant, Key, string, error) {
	if kind != KindWrite && kind != KindAPI {
		return Tenant{}, Key{}, "", fmt.Errorf("key kind %q: must be %q or %q", kind, KindWrite, KindAPI)
	}
	k, secret := newKey(kind, s.now())
	t, err := s.Update(ctx, idOrName, func(t *Tenant) error {
		t.Keys = append(t.Keys, k)
		return nil
	})
	return t, k, secret, err
}

// RevokeKey removes a key from a tenant.
func (s *Store) RevokeKey(ctx context.Context, idOrName, keyID string) (Tenant, error) {
	return s.Update(ctx, idOrName, func(t *Tenant) error {
		i := slices.IndexFunc(t.Keys, func(k Key) bool { return k.ID == keyID })
		if i < 0 {
			return fmt.Errorf("key %s: %w", keyID, ErrKeyNotFound)
		}
		t.Keys = slices.Delete(t.Keys, i, i+1)
		return nil
	})
}

func tenantKey(id string) string { return "t." + id }

func nameKey(name string) string {
	sum := sha256.Sum256([]byte(normalizeName(name)))
	return "n." + hex.EncodeToString(sum[:16])
}
