// Package config holds the configuration of a Contrail node: its structs,
// defaults, validation and loading from a YAML file, CONTRAIL_* environment
// variables and command-line flags, in that order of increasing precedence.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/store"
)

// Durability modes of the log (DESIGN.md §5).
const (
	DurabilityDefault = "default"
	DurabilityStrict  = "strict"
)

// Config is the whole configuration of `contrail serve`.
type Config struct {
	// DataDir holds the JetStream store and the generated admin token.
	DataDir string `yaml:"data_dir"`
	// HTTPAddr is the listen address of the collector, API and metrics.
	HTTPAddr string `yaml:"http"`
	// AdminToken authorises the admin API. Empty means: read or generate
	// <data-dir>/admin-token.
	AdminToken string `yaml:"admin_token"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format"`
	// NodeName names this node in logs and message ids; defaults to the host name.
	NodeName string `yaml:"node_name"`

	Log     Log     `yaml:"log"`
	Collect Collect `yaml:"collect"`
	Process Process `yaml:"process"`
	// Deliver configures the senders of campaigns' webhooks and emails.
	Deliver deliver.Config `yaml:"deliver"`
}

// Process configures the shards that process the log.
type Process struct {
	// Enabled runs the visitor shards on this node; a collector-only node
	// turns it off.
	Enabled bool `yaml:"enabled"`
	// Workers bounds how many shards process at once; 0 means one per core.
	Workers int `yaml:"workers"`
	// DedupWindow is how long a messageId is remembered (at least 24h).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// GeoIPDB is a MaxMind-format country (or city) database; "" resolves
	// no countries.
	GeoIPDB string `yaml:"geoip_db"`
	// Fair turns on fair scheduling between tenants inside each shard:
	// when a shard falls FairLag behind, the tenants over their weighted
	// share are diverted to PARKED and drained by deficit round robin, so
	// the others stay current. On by default; off, a shard is plain FIFO
	// (paused tenants are still parked).
	Fair    bool          `yaml:"fair"`
	FairLag time.Duration `yaml:"fair_lag"`
	// CacheBytes is the state store's block cache: the uncompressed blocks
	// of visitor state and rollups kept in memory. Reports read a large
	// tenant's rollups (hundreds of MB for a month) on every refresh, so
	// a cache that holds them answers from memory.
	CacheBytes int64 `yaml:"cache_bytes"`
	// ReportCacheBytes bounds the report queries' merged buckets: the
	// compacted hours, days and weeks of a tenant merged across
	// partitions, kept so that a report does not merge them again
	// (0: none).
	ReportCacheBytes int64 `yaml:"report_cache_bytes"`
	// ReportCores bounds the goroutines that read for report queries at
	// once, all queries together (0: every core). A bound keeps the
	// other cores to ingestion and processing however many reports are
	// asked at once, and makes each report slower.
	ReportCores int `yaml:"report_cores"`
}

// Log configures the event log (JetStream).
type Log struct {
	// NATSURL, when set, uses an external NATS server instead of the embedded one.
	NATSURL string `yaml:"nats_url"`
	// Partitions is P, the number of EVENTS partitions; fixed when the stream is created.
	Partitions int `yaml:"partitions"`
	// LeadPartitions is Q, the number of LEADS partitions; fixed when the stream is created.
	LeadPartitions int `yaml:"lead_partitions"`
	// Durability is "default" (short sync interval) or "strict" (fsync per append).
	Durability string `yaml:"durability"`
	// SyncInterval is how often the embedded store fsyncs in default mode.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// MaxAge and MaxBytes bound the retention of the EVENTS stream (0: unlimited).
	MaxAge   time.Duration `yaml:"max_age"`
	MaxBytes int64         `yaml:"max_bytes"`
	// DuplicateWindow is JetStream's Nats-Msg-Id deduplication window.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
}

// Collect configures the HTTP collector.
type Collect struct {
	// MaxBodyBytes bounds any request body, before the tenant is known.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// FlushBytes bounds one log message (group commit).
	FlushBytes int `yaml:"flush_bytes"`
	// Linger is how long a partition waits for more events before publishing
	// when no publish is in flight.
	Linger time.Duration `yaml:"linger"`
	// AckTimeout is how long a request waits for the log to acknowledge; after
	// it the collector answers 503.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// MaxFutureSkew is how far in the future an event time may be before it is
	// clamped to receivedAt.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// TrustedProxies lists peers (addresses or CIDR prefixes) whose
	// X-Forwarded-For header is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MinFreeBytes is the free space the data directory's file system must
	// keep: below it the collector answers 503 disk_low and /readyz 503.
	// 0 turns the guard off.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		DataDir:   "./data",
		HTTPAddr:  ":8080",
		LogLevel:  "info",
		LogFormat: "text",
		Log: Log{
			Partitions:      16,
			LeadPartitions:  16,
			Durability:      DurabilityDefault,
			SyncInterval:    100 * time.Millisecond,
			MaxAge:          7 * 24 * time.Hour,
			DuplicateWindow: 2 * time.Minute,
		},
		Process: Process{Enabled: true, DedupWindow: 24 * time.Hour, Fair: true, FairLag: 200 * time.Millisecond, CacheBytes: store.DefaultCacheBytes, ReportCacheBytes: report.DefaultCacheBytes},
		Collect: Collect{
			MaxBodyBytes:  4 << 20,
			FlushBytes:    1 << 20,
			Linger:        0,
			AckTimeout:    5 * time.Second,
			MaxFutureSkew: time.Minute,
			MinFreeBytes:  256 << 20,
		},
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir must be set"))
	}
	if c.Log.Partitions < 1 || c.Log.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("log.partitions %d: must be 1..1024", c.Log.Partitions))
	}
	if c.Log.LeadPartitions < 1 || c.Log.LeadPartitions > 1024 {
		errs = append(errs, fmt.Errorf("log.lead_partitions %d: must be 1..1024", c.Log.LeadPartitions))
	}
	if c.Log.Durability != DurabilityDefault && c.Log.Durability != DurabilityStrict {
		errs = append(errs, fmt.Errorf("log.durability %q: must be %q or %q", c.Log.Durability, DurabilityDefault, DurabilityStrict))
	}
	if c.Log.SyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("log.sync_interval %s: must be positive", c.Log.SyncInterval))
	}
	if c.Collect.FlushBytes < 1024 || c.Collect.FlushBytes > 8<<20 {
		errs = append(errs, fmt.Errorf("collect.flush_bytes %d: must be 1 KiB..8 MiB", c.Collect.FlushBytes))
	}
	if c.Collect.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("collect.max_body_bytes %d: must be at least 1 KiB", c.Collect.MaxBodyBytes))
	}
	if c.Collect.AckTimeout <= 0 {
		errs = append(errs, fmt.Errorf("collect.ack_timeout %s: must be positive", c.Collect.AckTimeout))
	}
	if c.Collect.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("collect.min_free_bytes %d: must not be negative", c.Collect.MinFreeBytes))
	}
	if c.Process.DedupWindow < 24*time.Hour {
		errs = append(errs, fmt.Errorf("process.dedup_window %s: must be at least 24h", c.Process.DedupWindow))
	}
	if c.Process.ReportCores < 0 {
		errs = append(errs, fmt.Errorf("process.report_cores %d: must not be negative", c.Process.ReportCores))
	}
	if c.Process.ReportCacheBytes < 0 {
		errs = append(errs, fmt.Errorf("process.report_cache_bytes %d: must not be negative", c.Process.ReportCacheBytes))
	}
	if c.Process.CacheBytes < 8<<20 {
		errs = append(errs, fmt.Errorf("process.cache_bytes %d: must be at least 8 MiB", c.Process.CacheBytes))
	}
	if c.Process.FairLag <= 0 {
		errs = append(errs, fmt.Errorf("process.fair_lag %s: must be positive", c.Process.FairLag))
	}
	if c.Process.Workers < 0 {
		errs = append(errs, fmt.Errorf("process.workers %d: must not be negative", c.Process.Workers))
	}
	if err := c.Deliver.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("deliver: %w", err))
	}
	if _, err := c.Collect.ParseTrustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format %q: must be text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: must be debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// ParseTrustedProxies parses TrustedProxies into prefixes; a bare address is
// a one-address prefix.
func (c *Collect) ParseTrustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("collect.trusted_proxies %q: not an address or prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// RegisterFlags binds every setting to a flag of fs. The flag name, its
// CONTRAIL_* environment variable and its YAML path are documented together
// in the README's configuration reference.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the log store and the admin token")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "listen address of the HTTP collector, API and /metrics")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin API token (default: read or generate <data-dir>/admin-token)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "node name in logs and message ids (default: host name)")
	fs.StringVar(&c.Log.NATSURL, "nats-url", c.Log.NATSURL, "use this external NATS server instead of the embedded one")
	fs.IntVar(&c.Log.Partitions, "partitions", c.Log.Partitions, "partitions of the EVENTS stream (fixed at creation)")
	fs.IntVar(&c.Log.LeadPartitions, "lead-partitions", c.Log.LeadPartitions, "partitions of the LEADS stream (fixed at creation)")
	fs.StringVar(&c.Log.Durability, "durability", c.Log.Durability, `log durability: "default" (sync interval) or "strict" (fsync per append)`)
	fs.DurationVar(&c.Log.SyncInterval, "sync-interval", c.Log.SyncInterval, "fsync interval of the embedded store in default durability")
	fs.DurationVar(&c.Log.MaxAge, "log-max-age", c.Log.MaxAge, "retention of the EVENTS stream by age (0: unlimited)")
	fs.Int64Var(&c.Log.MaxBytes, "log-max-bytes", c.Log.MaxBytes, "retention of the EVENTS stream by size (0: unlimited)")
	fs.DurationVar(&c.Log.DuplicateWindow, "duplicate-window", c.Log.DuplicateWindow, "JetStream deduplication window for Nats-Msg-Id")
	fs.Int64Var(&c.Collect.MaxBodyBytes, "max-body-bytes", c.Collect.MaxBodyBytes, "largest request body read before the tenant is known")
	fs.IntVar(&c.Collect.FlushBytes, "flush-bytes", c.Collect.FlushBytes, "largest log message built by group commit")
	fs.DurationVar(&c.Collect.Linger, "linger", c.Collect.Linger, "wait this long for more events before an idle partition publishes")
	fs.DurationVar(&c.Collect.AckTimeout, "ack-timeout", c.Collect.AckTimeout, "answer 503 when the log has not acknowledged within this time")
	fs.DurationVar(&c.Collect.MaxFutureSkew, "max-future-skew", c.Collect.MaxFutureSkew, "event times further in the future are clamped to receivedAt")
	fs.Int64Var(&c.Collect.MinFreeBytes, "min-free-bytes", c.Collect.MinFreeBytes, "answer 503 disk_low while the data directory's file system has less free space (0: no check)")
	fs.BoolVar(&c.Process.Enabled, "process", c.Process.Enabled, "run the visitor shards on this node (false: collector only)")
	fs.IntVar(&c.Process.Workers, "workers", c.Process.Workers, "shards processing at once (0: one per core)")
	fs.DurationVar(&c.Process.DedupWindow, "dedup-window", c.Process.DedupWindow, "how long a messageId is remembered for deduplication (at least 24h)")
	fs.BoolVar(&c.Process.Fair, "fair", c.Process.Fair, "fair scheduling between tenants in each shard (false: plain FIFO)")
	fs.DurationVar(&c.Process.FairLag, "fair-lag", c.Process.FairLag, "how far behind a shard falls before it diverts the tenants over their share")
	fs.Int64Var(&c.Process.CacheBytes, "cache-bytes", c.Process.CacheBytes, "block cache of the state store (visitor state and report rollups) in bytes")
	fs.Int64Var(&c.Process.ReportCacheBytes, "report-cache-bytes", c.Process.ReportCacheBytes, "memory for report queries' merged compacted buckets in bytes (0: none)")
	fs.IntVar(&c.Process.ReportCores, "report-cores", c.Process.ReportCores, "cores that report queries read on at once, all together (0: every core)")
	fs.StringVar(&c.Process.GeoIPDB, "geoip-db", c.Process.GeoIPDB, "MaxMind-format database to resolve countries (e.g. GeoLite2-Country.mmdb)")
	fs.BoolVar(&c.Deliver.AllowPrivateNetworks, "deliver-allow-private-networks", c.Deliver.AllowPrivateNetworks, "let campaign webhooks reach loopback, private and link-local addresses (tests, closed networks)")
	fs.StringVar(&c.Deliver.SMTP.Addr, "smtp-addr", c.Deliver.SMTP.Addr, "SMTP server (host:port) for campaign emails")
	fs.StringVar(&c.Deliver.SMTP.Username, "smtp-username", c.Deliver.SMTP.Username, "SMTP user name")
	fs.StringVar(&c.Deliver.SMTP.Password, "smtp-password", c.Deliver.SMTP.Password, "SMTP password")
	fs.Func("trusted-proxies", "comma-separated addresses or prefixes whose X-Forwarded-For is believed", func(s string) error {
		c.Collect.TrustedProxies = strings.Split(s, ",")
		return nil
	})
}

// EnvName returns the environment variable that sets flag name.
func EnvName(flagName string) string {
	return "CONTRAIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load builds a Config from defaults, the YAML file named by --config (or
// CONTRAIL_CONFIG), CONTRAIL_* variables and the flags in args, then
// validates it. It returns the remaining positional arguments.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, []string, error) {
	cfg := Default()
	path := getenv("CONTRAIL_CONFIG")
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			path = v
		} else if v, ok := strings.CutPrefix(a, "-config="); ok {
			path = v
		} else if (a == "--config" || a == "-config") && i+1 < len(args) {
			path = args[i+1]
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, nil, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, nil, fmt.Errorf("parsing config %s: %w", path, err)
		}
	}
	fs.String("config", path, "YAML configuration file (env CONTRAIL_CONFIG)")
	cfg.RegisterFlags(fs)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, fs.Args(), nil
}
