package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/api"
	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/collect"
	"github.com/contrailhq/contrail/internal/config"
	"github.com/contrailhq/contrail/internal/dashboard"
	"github.com/contrailhq/contrail/internal/deliver"
	"github.com/contrailhq/contrail/internal/disk"
	"github.com/contrailhq/contrail/internal/enrich"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/metrics"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/snippet"
	"github.com/contrailhq/contrail/internal/store"
	"github.com/contrailhq/contrail/internal/tenant"
	"github.com/contrailhq/contrail/internal/visitor"
)

// Version is the build's version, set by the linker.
var Version = "dev"

// Node is a running Contrail node.
type Node struct {
	cfg    config.Config
	logger *slog.Logger

	ns       *server.Server // nil with an external NATS
	nc       *nats.Conn
	procNC   *nats.Conn // the shards' own connection, so a slow shard never delays the collector's acks
	log      *eventlog.Log
	tenants  *tenant.Store
	cache    *tenant.Cache
	collect  *collect.Collector
	http     *http.Server
	listener net.Listener
	token    string
	ready    atomic.Bool
	state    *store.Store
	shards   *shard.Runtime // nil when processing is off
	// leadWriter puts the API's lead writes on LEADS.
	leadWriter *lead.Writer
	// campaigns stores the campaigns; registry is their compiled, live
	// view; sender delivers their webhooks and emails; timers fires their
	// waits.
	exprs     *campaign.Exprs
	campaigns *campaign.Store
	registry  *campaign.Registry
	sender    *deliver.Sender
	timers    *campaign.Timers
	geo       *enrich.Geo // nil without a GeoIP database
	// reg is the node's metrics registry, read by TenantStatus.
	reg *prometheus.Registry
	// disk watches the data directory's free space; nil when
	// collect.min_free_bytes is 0.
	disk *disk.Monitor
}

// New builds a node: it opens the data directory and the log, creates the
// streams and opens the tenant store. Run serves it.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (_ *Node, err error) {
	n := &Node{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
		if cfg.NodeName == "" {
			cfg.NodeName = "contrail"
		}
		n.cfg.NodeName = cfg.NodeName
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if n.token, err = AdminToken(cfg.AdminToken, cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.Log.NATSURL != "" {
		if n.nc, err = eventlog.Connect(cfg.Log.NATSURL, "contrail-"+cfg.NodeName); err != nil {
			return nil, err
		}
		logger.Info("using external nats", "url", cfg.Log.NATSURL)
	} else {
		start := time.Now()
		n.ns, err = eventlog.StartEmbedded(eventlog.EmbeddedOptions{
			StoreDir:     filepath.Join(cfg.DataDir, "jetstream"),
			SyncInterval: cfg.Log.SyncInterval,
			SyncAlways:   cfg.Log.Durability == config.DurabilityStrict,
			ServerName:   "contrail-" + cfg.NodeName,
		})
		if err != nil {
			return nil, err
		}
		if n.nc, err = eventlog.ConnectEmbedded(n.ns, "contrail-"+cfg.NodeName); err != nil {
			return nil, err
		}
		logger.Info("embedded nats started", "store", filepath.Join(cfg.DataDir, "jetstream"),
			"durability", cfg.Log.Durability, "sync_interval", cfg.Log.SyncInterval, "took", time.Since(start).Round(time.Millisecond))
	}
	n.log, err = eventlog.Open(ctx, n.nc, logOptions(cfg))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(n.nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if n.tenants, err = tenant.OpenStore(ctx, js, 1, nil); err != nil {
		return nil, err
	}
	n.cache = tenant.NewCache(n.tenants, logger)
	if n.exprs, err = campaign.NewExprs(); err != nil {
		return nil, err
	}
	if n.campaigns, err = campaign.OpenStore(ctx, js, 1, n.exprs, nil); err != nil {
		return nil, err
	}
	n.registry = campaign.NewRegistry(n.campaigns, logger, n.backfillWindow)
	if cfg.Process.GeoIPDB != "" {
		if n.geo, err = enrich.OpenGeo(cfg.Process.GeoIPDB); err != nil {
			return nil, err
		}
		logger.Info("geoip database opened", "path", cfg.Process.GeoIPDB)
	}
	if cfg.Process.Enabled {
		if n.state, err = store.OpenOptions(filepath.Join(cfg.DataDir, "state"), store.Options{Logger: logger, CacheBytes: cfg.Process.CacheBytes}); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Run serves until ctx ends, then shuts down gracefully: it stops accepting
// requests, answers the ones in flight once their events are stored, then
// closes the log. onListen, if not nil, is called with the bound address.
func (n *Node) Run(ctx context.Context, onListen func(addr string)) error {
	defer n.close()
	reg := metrics.NewRegistry()
	proxies, err := n.cfg.Collect.ParseTrustedProxies()
	if err != nil {
		return err
	}
	var geo collect.Geo
	if n.geo != nil {
		geo = n.geo
	}
	var lowDisk collect.Disk
	if n.cfg.Collect.MinFreeBytes > 0 {
		dcfg := disk.DefaultConfig()
		dcfg.Dir, dcfg.MinFreeBytes = n.cfg.DataDir, n.cfg.Collect.MinFreeBytes
		if n.disk, err = disk.New(dcfg, disk.Deps{Logger: n.logger, Registerer: reg}); err != nil {
			return err
		}
		lowDisk = n.disk
	}
	n.collect, err = collect.New(collect.Config{
		MaxBodyBytes: n.cfg.Collect.MaxBodyBytes, FlushBytes: n.cfg.Collect.FlushBytes, Linger: n.cfg.Collect.Linger,
		AckTimeout: n.cfg.Collect.AckTimeout, MaxFutureSkew: n.cfg.Collect.MaxFutureSkew, TrustedProxies: proxies,
		Node: n.cfg.NodeName,
	}, collect.Deps{Log: n.log, Partitions: n.log.Partitions(), Tenants: n.cache, Geo: geo, Disk: lowDisk, Logger: n.logger, Registerer: reg})
	if err != nil {
		return err
	}
	if n.state != nil {
		reg.MustRegister(store.NewCollector(n.state))
		if n.cfg.Log.NATSURL != "" {
			n.procNC, err = eventlog.Connect(n.cfg.Log.NATSURL, "contrail-"+n.cfg.NodeName+"-shards")
		} else {
			n.procNC, err = eventlog.ConnectEmbedded(n.ns, "contrail-"+n.cfg.NodeName+"-shards")
		}
		if err != nil {
			return err
		}
		procLog, err := eventlog.Open(ctx, n.procNC, logOptions(n.cfg))
		if err != nil {
			return err
		}
		n.sender, err = deliver.New(n.cfg.Deliver, deliver.Deps{Store: n.state, Secret: n.webhookSecret, Registerer: reg, Logger: n.logger,
			TenantConcurrency: func(id string) int {
				if t, ok := n.cache.ByID(id); ok {
					return t.Limits.WebhookConcurrency // 0: the node's default
				}
				return 0
			}})
		if err != nil {
			return err
		}
		n.shards, err = shard.New(shard.Config{Workers: n.cfg.Process.Workers, Fair: n.cfg.Process.Fair, FairLag: n.cfg.Process.FairLag}, shard.Deps{
			Tenants: n.cache,
			Store:   n.state, Source: procLog, Publisher: procLog, Logger: n.logger, Registerer: reg, Sender: n.sender,
		})
		if err != nil {
			return err
		}
		vm := visitor.NewMetrics(reg)
		vcfg := visitor.DefaultConfig()
		vcfg.DedupWindow = n.cfg.Process.DedupWindow
		vcfg.Partitions, vcfg.LeadPartitions = n.log.Partitions(), n.log.LeadPartitions()
		vcfg.Tenants = n.cache
		for p := range n.log.Partitions() {
			proc, err := visitor.New(vcfg, p, vm)
			if err != nil {
				return err
			}
			n.shards.Add(eventlog.StreamEvents, "vis", p, proc)
		}
		lm := lead.NewMetrics(reg)
		cm := campaign.NewMetrics(reg)
		var qs []int
		for q := range n.log.LeadPartitions() {
			eng, err := campaign.New(n.registry, n.cache, q, cm)
			if err != nil {
				return err
			}
			lcfg := lead.Config{Partitions: n.log.LeadPartitions(), EventPartitions: n.log.Partitions(), Tenants: n.cache, Campaigns: eng}
			proc, err := lead.New(lcfg, q, lm)
			if err != nil {
				return err
			}
			n.shards.Add(eventlog.StreamLeads, "lds", q, proc)
			qs = append(qs, q)
		}
		n.timers = campaign.NewTimers(n.state, procLog, qs, cm, n.logger, nil)
		n.timers.Paused = func(id string) bool { paused, _ := n.cache.Policy(id); return paused }
		n.leadWriter = lead.NewWriter(procLog, n.shards, n.log.LeadPartitions())
	}
	mux := http.NewServeMux()
	n.collect.Register(mux)
	deps := api.Deps{AdminToken: n.token, Tenants: n.tenants, Log: n.log, Dead: n.log, Applied: n.cache, Status: n, Keys: n.cache, Logger: n.logger}
	if n.state != nil {
		q := report.NewQuerier(n.state, n.log.Partitions(), n.reportPolicy, n.cfg.Process.ReportCacheBytes)
		if c := n.cfg.Process.ReportCores; c > 0 {
			q.Limit(c)
		}
		reg.MustRegister(reportCacheCollector{q})
		deps.Reports = q
		deps.Leads = lead.NewReader(n.state, n.log.LeadPartitions())
		deps.LeadWriter = n.leadWriter
		deps.Lists = n.tenants
		deps.Runs = campaign.NewReader(n.state, n.log.LeadPartitions())
		deps.Deliveries = n.sender
	}
	deps.Campaigns = n.campaigns
	deps.CampaignRegistry = n.registry
	deps.Pauser = n.tenants
	if n.shards != nil {
		deps.Processing = n.shards
	}
	n.reg = reg
	reg.MustRegister(tenantPausedCollector{n.cache})
	deps.CheckURL = func(ctx context.Context, raw string) error {
		return deliver.CheckURL(ctx, raw, n.cfg.Deliver.AllowPrivateNetworks)
	}
	admin := api.New(deps)
	admin.Register(mux)
	mux.Handle("/debug/pprof/", admin.AdminOnly(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", admin.AdminOnly(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/trace", admin.AdminOnly(http.HandlerFunc(pprof.Trace)))
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.Handle("GET /contrail.js", snippet.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "contrail %s\n", Version)
	})
	dash, err := dashboard.New(dashboard.DefaultConfig(), dashboard.Deps{API: mux, AdminToken: n.token, Tenants: n.cache, Logger: n.logger})
	if err != nil {
		return fmt.Errorf("creating the dashboard: %w", err)
	}
	dash.Register(mux)

	n.listener, err = net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", n.cfg.HTTPAddr, err)
	}
	n.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn),
	}

	// The collector's publishers outlive the HTTP server: they stop only
	// after every handler has returned, so no accepted event is left queued.
	collectCtx, stopCollect := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCollect()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.collect.Run(collectCtx) })
	g.Go(func() error { return n.cache.Run(gctx) })
	g.Go(func() error { return n.registry.Run(gctx) })
	if n.disk != nil {
		g.Go(func() error { return n.disk.Run(gctx) })
	}
	if n.shards != nil {
		g.Go(func() error {
			// Shards start once the tenants and campaigns are known, so
			// the first inputs are judged by every tenant's pause state
			// and tested against every live campaign.
			for _, loaded := range []<-chan struct{}{n.cache.Loaded(), n.registry.Loaded()} {
				select {
				case <-loaded:
				case <-gctx.Done():
					return nil
				}
			}
			return n.shards.Run(gctx)
		})
		g.Go(func() error { return n.sender.Run(gctx) })
		g.Go(func() error { return n.timers.Run(gctx) })
	}
	g.Go(func() error {
		err := n.http.Serve(n.listener)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving http: %w", err)
	})
	g.Go(func() error {
		select {
		case <-n.cache.Loaded():
		case <-gctx.Done():
			return nil
		}
		select {
		case <-n.registry.Loaded():
		case <-gctx.Done():
			return nil
		}
		n.ready.Store(true)
		n.logger.Info("contrail ready", "http", n.listener.Addr().String(), "version", Version,
			"partitions", n.log.Partitions(), "node", n.cfg.NodeName)
		if onListen != nil {
			onListen(n.listener.Addr().String())
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		n.ready.Store(false)
		start := time.Now()
		n.logger.Info("shutting down: draining http requests")
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.Collect.AckTimeout+5*time.Second)
		defer cancel()
		err := n.http.Shutdown(sctx)
		stopCollect()
		n.logger.Info("http drained", "took", time.Since(start).Round(time.Millisecond))
		if err != nil {
			return fmt.Errorf("shutting down http: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// reportPolicy is a tenant's rollup policy, as its visitor shards apply it;
// the defaults for a tenant this node does not know (yet).
func (n *Node) reportPolicy(id string) report.Policy {
	var set tenant.Settings
	if t, ok := n.cache.ByID(id); ok {
		set = t.Settings
	}
	return visitor.PolicyOf(set)
}

// backfillWindow is how old back-filled history may trigger a tenant's
// campaigns.
func (n *Node) backfillWindow(id string) time.Duration {
	var set tenant.Settings
	if t, ok := n.cache.ByID(id); ok {
		set = t.Settings
	}
	return set.WithDefaults().BackfillTriggerWindow.D()
}

// webhookSecret is a tenant's webhook signing secret.
func (n *Node) webhookSecret(id string) (string, bool) {
	if t, ok := n.cache.ByID(id); ok && t.WebhookSecret != "" {
		return t.WebhookSecret, true
	}
	return "", false
}

func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if !n.ready.Load() {
		http.Error(w, "not ready: starting or shutting down", http.StatusServiceUnavailable)
		return
	}
	if n.disk != nil {
		if low, why := n.disk.Low(); low {
			http.Error(w, "not ready: "+why+"; the collector refuses events (disk_low)", http.StatusServiceUnavailable)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := n.log.Ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func logOptions(cfg config.Config) eventlog.Options {
	return eventlog.Options{
		Partitions: cfg.Log.Partitions, LeadPartitions: cfg.Log.LeadPartitions, MaxAge: cfg.Log.MaxAge, MaxBytes: cfg.Log.MaxBytes, DuplicateWindow: cfg.Log.DuplicateWindow,
	}
}

// Status reports the progress of this node's shards.
func (n *Node) Status(ctx context.Context) ([]api.PartitionStatus, error) {
	if n.shards == nil {
		return []api.PartitionStatus{}, nil
	}
	sts, err := n.shards.Status(ctx, n.log)
	if err != nil {
		return nil, err
	}
	out := make([]api.PartitionStatus, len(sts))
	for i, s := range sts {
		out[i] = api.PartitionStatus(s)
	}
	return out, nil
}

// close closes the state store, the NATS connection and the embedded
// server, if any. The shards have stopped by then.
func (n *Node) close() {
	if n.state != nil {
		if err := n.state.Close(); err != nil {
			n.logger.Error("closing state store", "err", err)
		}
		n.state = nil
	}
	if n.procNC != nil {
		n.procNC.Close()
		n.procNC = nil
	}
	if n.geo != nil {
		_ = n.geo.Close()
		n.geo = nil
	}
	if n.nc != nil {
		// Every append has been answered by now (the collector stopped first).
		_ = n.nc.FlushTimeout(time.Second)
		n.nc.Close()
		n.nc = nil
	}
	if n.ns != nil {
		start := time.Now()
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
		n.logger.Info("embedded nats stopped", "took", time.Since(start).Round(time.Millisecond))
		n.ns = nil
	}
}

// AdminTokenValue returns the node's admin token.
func (n *Node) AdminTokenValue() string { return n.token }

// Log returns the node's event log.
func (n *Node) Log() *eventlog.Log { return n.log }
