package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/tenant"
)

// Config configures the collector. See config.Collect for the meaning of
// each field; the zero value of Linger means "no linger".
type Config struct {
	MaxBodyBytes   int64
	FlushBytes     int
	Linger         time.Duration
	AckTimeout     time.Duration
	MaxFutureSkew  time.Duration
	TrustedProxies []netip.Prefix
	// Node names this node in log message ids.
	Node string
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{MaxBodyBytes: 4 << 20, FlushBytes: 1 << 20, AckTimeout: 5 * time.Second, MaxFutureSkew: time.Minute, Node: "node"}
}

// Tenants resolves write keys; *tenant.Cache implements it.
type Tenants interface {
	ByWriteKey(key string) (*tenant.Tenant, bool)
}

// Deps are the collector's collaborators.
type Deps struct {
	Log        Appender
	Partitions int
	Tenants    Tenants
	// Geo resolves an address's country before the tenant's IP policy
	// drops it; nil resolves none.
	Geo Geo
	// Disk refuses events while the node's disk is low; nil never does.
	Disk       Disk
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Geo resolves IP addresses to ISO country codes; *enrich.Geo implements it.
type Geo interface {
	Country(ip string) string
}

// Collector is the HTTP ingest component. Create it with New, mount it with
// Register and run it with Run.
type Collector struct {
	cfg       Config
	deps      Deps
	now       func() time.Time
	logger    *slog.Logger
	metrics   *collectMetrics
	commit    *committer
	admission *admission
}

// New builds a collector.
func New(cfg Config, deps Deps) (*Collector, error) {
	if deps.Log == nil || deps.Tenants == nil || deps.Partitions < 1 {
		return nil, errors.New("collect: Log, Tenants and Partitions are required")
	}
	if cfg.FlushBytes <= 0 || cfg.AckTimeout <= 0 || cfg.MaxBodyBytes <= 0 {
		return nil, fmt.Errorf("collect: FlushBytes, AckTimeout and MaxBodyBytes must be positive: %+v", cfg)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	logger := deps.Logger.With("component", "collect")
	m := newCollectMetrics(deps.Registerer)
	adm := newAdmission()
	deps.Registerer.MustRegister(newQuotaCollector(adm, now))
	return &Collector{
		cfg: cfg, deps: deps, now: now, logger: logger, metrics: m,
		commit:    newCommitter(deps.Log, deps.Partitions, cfg.Node, cfg, logger, m),
		admission: adm,
	}, nil
}

// Run publishes accepted events until ctx ends. Stop the HTTP server first:
// after ctx ends, Run publishes what is queued, then returns.
func (c *Collector) Run(ctx context.Context) error {
	c.commit.run(ctx)
	return nil
}
