package deliver

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/store"
)

// Config configures a Sender. The zero value is valid: every zero field
// takes the default documented on it.
type Config struct {
	// Workers bounds the attempts in progress at once. Default 64.
	Workers int `yaml:"workers"`
	// PerEndpointConcurrency bounds the attempts in progress at once to one
	// URL host (or to the SMTP server). Default 8.
	PerEndpointConcurrency int `yaml:"per_endpoint_concurrency"`
	// PerTenantConcurrency bounds the attempts of one tenant in progress at
	// once, unless Deps.TenantConcurrency gives the tenant a limit of its
	// own. Below Workers, it keeps a tenant whose receivers hang from
	// holding every worker. Default 32.
	PerTenantConcurrency int `yaml:"per_tenant_concurrency"`
	// MaxAttempts is the retry budget of an effect, first attempt
	// included. Default 8.
	MaxAttempts int `yaml:"max_attempts"`
	// BaseBackoff and MaxBackoff bound the wait before a retry:
	// exponential with full jitter, a random wait up to
	// BaseBackoff·2^(attempt-1), at most MaxBackoff. A Retry-After header
	// replaces it, capped at MaxBackoff. Defaults 1s and 5m.
	BaseBackoff time.Duration `yaml:"base_backoff"`
	MaxBackoff  time.Duration `yaml:"max_backoff"`
	// Timeout bounds one attempt, unless the job sets its own. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// HandoverWait is how long Deliver waits for its effects before it
	// returns the unfinished ones for the outbox. Default 100ms.
	HandoverWait time.Duration `yaml:"handover_wait"`
	// LagThreshold is the number of effects accepted but not started above
	// which Deliver returns all its effects for the outbox without
	// waiting. Default 1000.
	LagThreshold int `yaml:"lag_threshold"`
	// RescanInterval is how often Run reads the outbox for entries it does
	// not hold. Default 5s.
	RescanInterval time.Duration `yaml:"rescan_interval"`
	// AllowPrivateNetworks lets webhooks reach loopback, private and
	// link-local addresses: for tests and closed networks only.
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// SMTP is the server emails go through; without an address, emails
	// fail.
	SMTP SMTP `yaml:"smtp"`
}

// SMTP is an SMTP relay. The connection uses STARTTLS when the server
// offers it; PLAIN authentication, when Username is set, needs TLS unless
// the server is on localhost (net/smtp refuses otherwise).
type SMTP struct {
	// Addr is host:port, e.g. "smtp.example.com:587".
	Addr     string `yaml:"addr"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// HelloName is sent in EHLO. Default "localhost".
	HelloName string `yaml:"hello_name"`
}

// Deps are a Sender's collaborators.
type Deps struct {
	// Store holds the outbox and the results. Required.
	Store *store.Store
	// Secret returns a tenant's webhook signing secret, "whsec_" followed
	// by base64 (Standard Webhooks). Without one (nil, or false), webhooks
	// of the tenant are not signed.
	Secret func(tenant string) (string, bool)
	// Registerer takes the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the wall clock, for webhook timestamps, email dates and
	// results. Default time.Now.
	Now func() time.Time
	// HTTPClient sends webhooks; nil means a client of the Sender's own.
	// Redirects are never followed. Unless private networks are allowed,
	// a nil or *http.Transport transport is cloned and given the Sender's
	// guarded dialer, with no proxy; any other RoundTripper is used as it
	// is, and then the private-address check at dial time is its job.
	HTTPClient *http.Client
	// TenantConcurrency returns a tenant's limit of attempts in progress at
	// once; nil, or a result <= 0, means Config.PerTenantConcurrency. It is
	// called while the Sender dispatches, with its lock held: it must be
	// fast and must not call the Sender.
	TenantConcurrency func(tenant string) int
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Workers, 64)
	def(&c.PerEndpointConcurrency, 8)
	def(&c.PerTenantConcurrency, 32)
	def(&c.MaxAttempts, 8)
	def(&c.LagThreshold, 1000)
	defDur(&c.BaseBackoff, time.Second)
	defDur(&c.MaxBackoff, 5*time.Minute)
	defDur(&c.Timeout, 10*time.Second)
	defDur(&c.HandoverWait, 100*time.Millisecond)
	defDur(&c.RescanInterval, 5*time.Second)
	if c.SMTP.HelloName == "" {
		c.SMTP.HelloName = "localhost"
	}
	return c
}

// Validate reports a setting out of range; zero values are valid (they
// mean the default).
func (c Config) Validate() error {
	var errs []error
	if c.Workers < 0 || c.PerEndpointConcurrency < 0 || c.PerTenantConcurrency < 0 || c.MaxAttempts < 0 || c.LagThreshold < 0 {
		errs = append(errs, errors.New("workers, per_endpoint_concurrency, per_tenant_concurrency, max_attempts and lag_threshold must not be negative"))
	}
	if c.BaseBackoff < 0 || c.MaxBackoff < 0 || c.Timeout < 0 || c.HandoverWait < 0 || c.RescanInterval < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.BaseBackoff > 0 && c.MaxBackoff > 0 && c.BaseBackoff > c.MaxBackoff {
		errs = append(errs, errors.New("base_backoff must not exceed max_backoff"))
	}
	return errors.Join(errs...)
}
