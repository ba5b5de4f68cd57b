package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Limits bound what a tenant may send. A zero field means the default from
// DefaultLimits, except EventsPerSecond and DailyQuota where zero means no limit.
type Limits struct {
	// EventsPerSecond is the sustained admission rate; Burst the bucket size.
	EventsPerSecond float64 `json:"events_per_second"`
	Burst           int     `json:"burst"`
	// MaxEventBytes bounds one event's JSON.
	MaxEventBytes int `json:"max_event_bytes"`
	// MaxBatchBytes bounds one request body (after decompression).
	MaxBatchBytes int `json:"max_batch_bytes"`
	// MaxBatchEvents bounds the events in one request.
	MaxBatchEvents int `json:"max_batch_events"`
	// DailyQuota bounds the events accepted per UTC day; what happens to
	// the events over it is Settings.OverQuota.
	DailyQuota int64 `json:"daily_quota"`
	// Weight is the tenant's share of processing when tenants compete
	// for a shard: deficit round robin serves tenants in proportion to
	// their weights (1 to 1000; zero means 1).
	Weight int `json:"weight"`
	// WebhookConcurrency bounds the tenant's webhook calls in flight on a
	// node (1 to 1000); zero means the node's default.
	WebhookConcurrency int `json:"webhook_concurrency"`
	// MaxActiveCampaigns bounds the tenant's published, active campaigns;
	// zero means no limit.
	MaxActiveCampaigns int `json:"max_active_campaigns"`
}

// DefaultLimits are the limits of a tenant created without any: the Segment
// API's 32 KB per event and 500 KB per batch, no rate or quota limit, weight 1.
func DefaultLimits() Limits {
	return Limits{MaxEventBytes: 32 << 10, MaxBatchBytes: 500 << 10, MaxBatchEvents: 2500, Weight: 1}
}

// WithDefaults returns l with zero size limits replaced by the defaults.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEventBytes == 0 {
		l.MaxEventBytes = d.MaxEventBytes
	}
	if l.MaxBatchBytes == 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxBatchEvents == 0 {
		l.MaxBatchEvents = d.MaxBatchEvents
	}
	if l.Weight == 0 {
		l.Weight = 1
	}
	if l.EventsPerSecond > 0 && l.Burst == 0 {
		l.Burst = max(int(l.EventsPerSecond), 1)
	}
	return l
}

// Validate reports limits that cannot be applied.
func (l Limits) Validate() error {
	var errs []error
	if l.EventsPerSecond < 0 || l.Burst < 0 || l.MaxEventBytes < 0 || l.MaxBatchBytes < 0 || l.MaxBatchEvents < 0 || l.DailyQuota < 0 ||
		l.Weight < 0 || l.WebhookConcurrency < 0 || l.MaxActiveCampaigns < 0 {
		errs = append(errs, errors.New("limits must not be negative"))
	}
	if l.Weight > 1000 {
		errs = append(errs, fmt.Errorf("weight %d: at most 1000", l.Weight))
	}
	if l.WebhookConcurrency > 1000 {
		errs = append(errs, fmt.Errorf("webhook_concurrency %d: at most 1000", l.WebhookConcurrency))
	}
	if l.MaxEventBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("max_event_bytes %d: at most 1 MiB", l.MaxEventBytes))
	}
	if l.MaxBatchBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("max_batch_bytes %d: at most 16 MiB", l.MaxBatchBytes))
	}
	if l.MaxEventBytes > 0 && l.MaxBatchBytes > 0 && l.MaxEventBytes > l.MaxBatchBytes {
		errs = append(errs, errors.New("max_event_bytes must not exceed max_batch_bytes"))
	}
	return errors.Join(errs...)
}

// Key kinds.
const (
	KindWrite = "write" // collection: public, may sit in a web page
	KindAPI   = "api"   // query and admin API for the tenant: secret
)

// Key is a credential of a tenant. Write keys are stored as they are, since
// they are public by design; API keys are stored only as a SHA-256 hash.
type Key struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Secret    string    `json:"secret,omitempty"` // write keys only
	Hash      string    `json:"hash,omitempty"`   // API keys only
	Prefix    string    `json:"prefix"`           // first characters, to recognise a key
	CreatedAt time.Time `json:"created_at"`
}

// Tenant is one customer of a Contrail deployment.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Limits    Limits    `json:"limits"`
	Settings  Settings  `json:"settings"`
	Keys      []Key     `json:"keys"`
	// Lists are the tenant's static lists of leads.
	Lists []List `json:"lists,omitempty"`
	// PausedAt is when the tenant was paused, nil while it runs. A paused
	// tenant's events are kept, not processed: the shards park them in
	// PARKED and replay them, in order, when the tenant resumes. The
	// collector still accepts them unless Settings.PausedIntake says
	// refuse.
	PausedAt *time.Time `json:"paused_at,omitempty"`
	// PastPauses are the last pauses that ended, newest last. The shards
	// park the events stored while a tenant was paused, judging by the
	// time the log stored them, so that a message replayed after a crash
	// is judged as it was the first time.
	PastPauses []Pause `json:"past_pauses,omitempty"`
	// WebhookSecret signs the tenant's campaign webhooks (Standard
	// Webhooks: "whsec_" and base64).
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// Revision is the KV revision this copy was read or written at; a
	// Cache that has applied Revision serves this copy or a newer one.
	Revision uint64 `json:"-"`
}

// Pause is a time the tenant was paused: [From, To).
type Pause struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// maxPastPauses bounds PastPauses.
const maxPastPauses = 16

// IsPaused reports whether the tenant is paused now.
func (t *Tenant) IsPaused() bool { return t.PausedAt != nil }

// WasPausedAt reports whether the tenant was paused at t.
func (t *Tenant) WasPausedAt(at time.Time) bool {
	if t.PausedAt != nil && !at.Before(*t.PausedAt) {
		return true
	}
	for _, p := range t.PastPauses {
		if !at.Before(p.From) && at.Before(p.To) {
			return true
		}
	}
	return false
}

// EffectiveWeight is the tenant's processing weight, at least 1.
func (t *Tenant) EffectiveWeight() int { return max(t.Limits.Weight, 1) }

// HasAPIKey reports whether secret is one of t's API keys.
func (t *Tenant) HasAPIKey(secret string) bool {
	h := HashKey(secret)
	for _, k := range t.Keys {
		if k.Kind == KindAPI && subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) == 1 {
			return true
		}
	}
	return false
}

// HashKey returns the stored form of an API key.
func HashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$`)

// ValidateName reports whether name can name a tenant.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("tenant name %q: %w", name, ErrInvalidName)
	}
	return nil
}

// newKey makes a key of kind with a random secret and returns it with the secret.
func newKey(kind string, now time.Time) (Key, string) {
	prefix := "wk_"
	if kind == KindAPI {
		prefix = "ak_"
	}
	secret := prefix + randomString(32)
	k := Key{ID: "key_" + randomString(10), Kind: kind, Prefix: secret[:8], CreatedAt: now.UTC()}
	if kind == KindAPI {
		k.Hash = HashKey(secret)
	} else {
		k.Secret = secret
	}
	return k, secret
}

// NewWebhookSecret returns a random webhook signing secret.
func NewWebhookSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

const alphabet = "abcdefghijklmnopqrstuvwxyz234567"

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b)
}

func normalizeName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }
