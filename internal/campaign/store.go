package campaign

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket of campaigns. Keys: "c.<tenant>.<id>" holds a
// campaign (its draft and status), "v.<tenant>.<id>.<n>" its published
// version n, which never changes.
const Bucket = "contrail_campaigns"

// Campaign statuses.
const (
	StatusDraft  = "draft"  // never published
	StatusActive = "active" // its latest version takes new leads
	StatusPaused = "paused" // takes no new leads; runs under way go on
)

// Campaign is a campaign as the API shows it.
type Campaign struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Version is the latest published version, 0 before the first.
	Version int `json:"version"`
	// Spec is the draft: what the next publish makes a version of.
	Spec Spec `json:"spec"`
	// Unpublished says the draft differs from the latest version.
	Unpublished bool       `json:"unpublished_changes"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	PublishedAt *time.Time `json:"published_at,omitempty"`
	Revision    uint64     `json:"-"`
}

// Errors of the campaign store.
var (
	ErrNotFound     = errors.New("campaign not found")
	ErrNotPublished = errors.New("campaign was never published")
	ErrNameTaken    = errors.New("a campaign with that name exists")
	ErrTooMany      = errors.New("too many campaigns")
)

// MaxCampaigns bounds the campaigns of one tenant.
const MaxCampaigns = 5000

// Store keeps campaigns in the KV bucket. Updates of one campaign are
// serialised by compare-and-set on the KV revision.
type Store struct {
	kv  jetstream.KeyValue
	x   *Exprs
	now func() time.Time
}

// OpenStore opens (creating if needed) the campaign bucket.
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int, x *Exprs, now func() time.Time) (*Store, error) {
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Contrail campaigns and their published versions",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening campaign bucket: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, x: x, now: now}, nil
}

func campaignKey(tenantID, id string) string { return "c." + tenantID + "." + id }
func versionKey(tenantID, id string, n int) string {
	return "v." + tenantID + "." + id + "." + strconv.Itoa(n)
}

// Validate checks a spec without a tenant's context (publish-time checks
// of webhook hosts are done by Publish).
func (s *Store) Validate(ctx context.Context, spec Spec) error {
	_, err := Compile(ctx, s.x, spec, CompileOptions{})
	return err
}

// Create stores a new draft campaign.
func (s *Store) Create(ctx context.Context, tenantID string, spec Spec) (Campaign, error) {
	if err := s.Validate(ctx, spec); err != nil {
		return Campaign{}, err
	}
	all, err := s.List(ctx, tenantID)
	if err != nil {
		return Campaign{}, err
	}
	if len(all) >= MaxCampaigns {
		return Campaign{}, fmt.Errorf("creating campaign: %w (at most %d)", ErrTooMany, MaxCampaigns)
	}
	for _, c := range all {
		if strings.EqualFold(c.Name, spec.Name) {
			return Campaign{}, fmt.Errorf("creating campaign %q: %w (%s)", spec.Name, ErrNameTaken, c.ID)
		}
	}
	now := s.now().UTC()
	c := Campaign{ID: "cmp_" + randomID(), Tenant: tenantID, Name: spec.Name, Status: StatusDraft, Spec: spec, Unpublished: true, CreatedAt: now, UpdatedAt: now}
	b, _ := json.Marshal(c)
	rev, err := s.kv.Create(ctx, campaignKey(tenantID, c.ID), b)
	if err != nil {
		return Campaign{}, fmt.Errorf("creating campaign: %w", err)
	}
	c.Revision = rev
	return c, nil
}

// Get returns a campaign.
func (s *Store) Get(ctx context.Context, tenantID, id string) (Campaign, error) {
	if !validID(id) {
		return Campaign{}, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	e, err := s.kv.Get(ctx, campaignKey(tenantID, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Campaign{}, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("reading campaign %s: %w", id, err)
	}
	var c Campaign
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Campaign{}, fmt.Errorf("decoding campaign %s: %w", id, err)
	}
	c.Revision = e.Revision()
	return c, nil
}

// List returns the tenant's campaigns, by name.
func (s *Store) List(ctx context.Context, tenantID string) ([]Campaign, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "c."+tenantID+".*")
	if err != nil {
		return nil, fmt.Errorf("listing campaigns: %w", err)
	}
	var out []Campaign
	for k := range lister.Keys() {
		c, err := s.Get(ctx, tenantID, k[strings.LastIndexByte(k, '.')+1:])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Campaign) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out, nil
}

// update applies fn to the stored campaign and writes it back, retrying on
// a concurrent change.
func (s *Store) update(ctx context.Context, tenantID, id string, fn func(*Campaign) error) (Campaign, error) {
	for range 10 {
		c, err := s.Get(ctx, tenantID, id)
		if err != nil {
			return Campaign{}, err
		}
		if err := fn(&c); err != nil {
			return Campaign{}, err
		}
		c.UpdatedAt = s.now().UTC()
		b, _ := json.Marshal(c)
		rev, err := s.kv.Update(ctx, campaignKey(tenantID, id), b, c.Revision)
		if err == nil {
			c.Revision = rev
			return c, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return Campaign{}, fmt.Errorf("updating campaign %s: %w", id, err)
		}
	}
	return Campaign{}, fmt.Errorf("updating campaign %s: too many concurrent changes", id)
}

// Replace makes spec the campaign's draft. Runs and the published versions
// are not touched: editing never re-enrols.
func (s *Store) Replace(ctx context.Context, tenantID, id string, spec Spec) (Campaign, error) {
	if err := s.Validate(ctx, spec); err != nil {
		return Campaign{}, err
	}
	if all, err := s.List(ctx, tenantID); err == nil {
		for _, c := range all {
			if c.ID != id && strings.EqualFold(c.Name, spec.Name) {
				return Campaign{}, fmt.Errorf("renaming campaign to %q: %w (%s)", spec.Name, ErrNameTaken, c.ID)
			}
		}
	}
	return s.update(ctx, tenantID, id, func(c *Campaign) error {
		c.Spec, c.Name, c.Unpublished = spec, spec.Name, true
		return nil
	})
}

// Publish makes the draft the next immutable version and activates it.
// opt checks the webhook hosts (the SSRF guard).
func (s *Store) Publish(ctx context.Context, tenantID, id string, opt CompileOptions) (Campaign, error) {
	c, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return Campaign{}, err
	}
	if _, err := Compile(ctx, s.x, c.Spec, opt); err != nil {
		return Campaign{}, err
	}
	n := c.Version + 1
	b, _ := json.Marshal(c.Spec)
	if _, err := s.kv.Create(ctx, versionKey(tenantID, id, n), b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return Campaign{}, fmt.Errorf("storing version %d of campaign %s: %w", n, id, err)
	}
	return s.update(ctx, tenantID, id, func(cur *Campaign) error {
		if cur.Version >= n {
			return nil // published concurrently
		}
		now := s.now().UTC()
		cur.Version, cur.Status, cur.Unpublished, cur.PublishedAt = n, StatusActive, false, &now
		if cur.Revision != c.Revision {
			// The draft changed since it was read: the version holds the
			// one read, and the draft stays unpublished.
			cur.Unpublished = true
		}
		return nil
	})
}

// SetStatus pauses (paused) or resumes (active) a published campaign.
func (s *Store) SetStatus(ctx context.Context, tenantID, id, status string) (Campaign, error) {
	return s.update(ctx, tenantID, id, func(c *Campaign) error {
		if c.Version == 0 {
			return fmt.Errorf("campaign %s: %w", id, ErrNotPublished)
		}
		c.Status = status
		return nil
	})
}

// VersionSpec returns the spec of a published version.
func (s *Store) VersionSpec(ctx context.Context, tenantID, id string, n int) (Spec, error) {
	e, err := s.kv.Get(ctx, versionKey(tenantID, id, n))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Spec{}, fmt.Errorf("version %d of campaign %s: %w", n, id, ErrNotFound)
	}
	if err != nil {
		return Spec{}, fmt.Errorf("reading version %d of campaign %s: %w", n, id, err)
	}
	var spec Spec
	if err := json.Unmarshal(e.Value(), &spec); err != nil {
		return Spec{}, fmt.Errorf("decoding version %d of campaign %s: %w", n, id, err)
	}
	return spec, nil
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[b[i]%32]
	}
	return string(b)
}

// validID reports whether id can be a campaign id (and a KV key token).
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
