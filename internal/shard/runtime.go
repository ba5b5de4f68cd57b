package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/metrics"
	"github.com/contrailhq/contrail/internal/store"
)

// Config configures a Runtime.
type Config struct {
	// Workers bounds how many shards process at once; 0 means one per core.
	Workers int
	// Fair parks, in a shard that has fallen FairLag behind (default
	// 200ms), the events of tenants sending more than their weighted
	// share, and drains them by deficit round robin, so the others stay
	// current. Without it a shard is FIFO; paused tenants are parked
	// either way.
	Fair    bool
	FairLag time.Duration
}

// Deps are a Runtime's collaborators.
type Deps struct {
	Store      *store.Store
	Source     Source
	Publisher  Publisher
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Sender delivers external effects; without one they all go to the
	// outbox.
	Sender Sender
	// Tenants tells whether a tenant is paused and its weight; nil means
	// none is paused and all weigh 1.
	Tenants TenantPolicy
	// Now is the wall clock, used for latency metrics and for scheduling
	// (how far behind a shard is), never for processing.
	Now func() time.Time
}

// Runtime runs a node's shards on a fixed pool of workers.
type Runtime struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	now     func() time.Time
	workers chan struct{}
	metrics *shardMetrics
	shards  []*shard
	// stopping is closed when Run's context ends, so waiters give up
	// rather than hold a shutdown.
	stopping chan struct{}

	// commits counts the shards' commits, and durable how many of the
	// first ones a sync has made durable (see shard.settle).
	commits, durable atomic.Uint64

	// gateMu guards resumed: nil while processing runs, a channel closed
	// on resume while it is paused (PauseProcessing).
	gateMu  sync.Mutex
	resumed chan struct{}
}

// New returns a runtime; add shards with Add, then Run.
func New(cfg Config, deps Deps) (*Runtime, error) {
	if deps.Store == nil || deps.Source == nil || deps.Publisher == nil {
		return nil, errors.New("shard: Store, Source and Publisher are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.FairLag <= 0 {
		cfg.FairLag = 200 * time.Millisecond
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Runtime{
		cfg: cfg, deps: deps, logger: deps.Logger.With("component", "shard"), now: deps.Now,
		workers: make(chan struct{}, cfg.Workers), metrics: newShardMetrics(deps.Registerer),
		stopping: make(chan struct{}),
	}, nil
}

// Add registers the shard of stream's partition, run by proc. stage names
// the shard's outputs ("vis" for the visitor shards).
func (r *Runtime) Add(stream, stage string, partition int, proc Processor) {
	r.shards = append(r.shards, &shard{rt: r, stream: stream, stage: stage, partition: partition, proc: proc})
	// The series exist from the start, so a node that processes shows it
	// before its first message.
	p := strconv.Itoa(partition)
	r.metrics.position.WithLabelValues(stream, p)
	r.metrics.lag.WithLabelValues(stream, p)
}

// acquire takes a worker, waiting for one to be free.
func (r *Runtime) acquire(ctx context.Context) error {
	select {
	case r.workers <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives a worker back.
func (r *Runtime) release() { <-r.workers }

// PauseProcessing stops every shard of the node before its next message,
// or resumes them; the log keeps what arrives meanwhile. `contrail bench
// catchup` uses it to build a backlog.
func (r *Runtime) PauseProcessing(paused bool) {
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	switch {
	case paused && r.resumed == nil:
		r.resumed = make(chan struct{})
		r.metrics.paused.Set(1)
		r.logger.Info("processing paused")
	case !paused && r.resumed != nil:
		close(r.resumed)
		r.resumed = nil
		r.metrics.paused.Set(0)
		r.logger.Info("processing resumed")
	}
}

// ProcessingPaused reports whether PauseProcessing stopped the shards.
func (r *Runtime) ProcessingPaused() bool {
	r.gateMu.Lock()
	defer r.gateMu.Unlock()
	return r.resumed != nil
}

// waitResumed returns at once while processing runs, else when it resumes
// or ctx ends.
func (r *Runtime) waitResumed(ctx context.Context) error {
	r.gateMu.Lock()
	ch := r.resumed
	r.gateMu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs every shard until ctx ends. A shard stopped by an
// infrastructure error (log or store) restarts from its stored position
// after a backoff; nothing it had not committed is lost.
func (r *Runtime) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { close(r.stopping) })
	defer stop()
	var wg sync.WaitGroup
	for _, s := range r.shards {
		wg.Go(func() {
			const minBackoff = 100 * time.Millisecond
			backoff := minBackoff
			for {
				before := s.position.Load()
				err := s.run(ctx)
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errRegroup) {
					continue
				}
				if s.position.Load() > before {
					backoff = minBackoff // it made progress: the error is not a persistent one
				}
				r.metrics.restarts.WithLabelValues(s.stream).Inc()
				r.logger.Error("shard stopped; restarting from its stored position", "stream", s.stream,
					"partition", s.partition, "position", s.position.Load(), "err", err, "backoff", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
			}
		})
	}
	wg.Wait()
	return nil
}

// Status is one shard's progress: Lag is the number of log messages of the
// partition stored after Position; Parked the events it set aside in
// PARKED and has not replayed yet.
type Status struct {
	Stream    string `json:"stream"`
	Partition int    `json:"partition"`
	Position  uint64 `json:"position"`
	Last      uint64 `json:"last"`
	Lag       uint64 `json:"lag"`
	Parked    uint64 `json:"parked"`
}

// LastSeqer reports the last stream sequence of a partition;
// *eventlog.Log implements it.
type LastSeqer interface {
	LastSeqOfStream(ctx context.Context, stream string, partition int) (uint64, error)
}

// ErrStopping means the runtime is shutting down.
var ErrStopping = errors.New("shards are stopping")

// ErrNoShard means this node runs no shard for a stream's partition.
var ErrNoShard = errors.New("no such shard on this node")

// WaitApplied returns once the shard of stream's partition has applied
// log message seq for tenant, or when ctx ends: it has committed seq (or a
// later message), and, if it parked tenant's events of seq, replayed them.
// With tenant "", committing seq is enough. The API uses it to answer a
// write it put on the log once its effects are readable.
func (r *Runtime) WaitApplied(ctx context.Context, stream string, partition int, tenant string, seq uint64) error {
	var s *shard
	for _, x := range r.shards {
		if x.stream == stream && x.partition == partition {
			s = x
			break
		}
	}
	if s == nil {
		return fmt.Errorf("waiting for %s partition %d: %w", stream, partition, ErrNoShard)
	}
	for {
		ch := s.wait()
		if s.appliedFor(tenant, seq) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s partition %d to apply seq %d: %w", stream, partition, seq, ctx.Err())
		case <-r.stopping:
			return fmt.Errorf("waiting for %s partition %d to apply seq %d: %w", stream, partition, seq, ErrStopping)
		}
	}
}

// Status reports every shard's position and lag. With last, Last is read
// from the log; otherwise it is the last message delivered.
func (r *Runtime) Status(ctx context.Context, last LastSeqer) ([]Status, error) {
	out := make([]Status, 0, len(r.shards))
	for _, s := range r.shards {
		st := Status{Stream: s.stream, Partition: s.partition, Position: s.position.Load(), Last: s.last.Load(),
			Parked: uint64(max(s.parkedEvents.Load(), 0))}
		if st.Last > st.Position {
			st.Lag = s.pending.Load() + 1
		} else {
			st.Lag = s.pending.Load()
		}
		if last != nil {
			l, err := last.LastSeqOfStream(ctx, s.stream, s.partition)
			if err != nil {
				return nil, fmt.Errorf("reading last sequence of partition %d: %w", s.partition, err)
			}
			st.Last = l
			if l <= st.Position {
				st.Lag = 0
			} else if st.Lag == 0 {
				st.Lag = 1 // stored but not yet delivered
			}
		}
		out = append(out, st)
	}
	return out, nil
}

type shardMetrics struct {
	processed    *prometheus.CounterVec   // stream, tenant
	dead         *prometheus.CounterVec   // stream, tenant
	restarts     *prometheus.CounterVec   // stream
	duplicates   *prometheus.CounterVec   // stream
	outputs      *prometheus.CounterVec   // stream
	position     *prometheus.GaugeVec     // stream, partition
	lag          *prometheus.GaugeVec     // stream, partition
	applySeconds *prometheus.HistogramVec // stream
	endToEnd     *prometheus.HistogramVec // stream
	// groupMessages is the number of log messages per commit.
	groupMessages *prometheus.HistogramVec // stream
	// marks counts the synced marks of commit groups (see shard.mark).
	marks        *prometheus.CounterVec // stream
	outboxWrites *prometheus.CounterVec // stream

	parked        *prometheus.CounterVec   // stream, tenant, reason
	replayed      *prometheus.CounterVec   // stream, tenant
	backlog       *prometheus.GaugeVec     // stream, tenant
	tenantLatency *prometheus.HistogramVec // stream, tenant
	tenantLag     *prometheus.GaugeVec     // stream, tenant
	paused        prometheus.Gauge
}

func newShardMetrics(reg prometheus.Registerer) *shardMetrics {
	m := &shardMetrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_shard_events_processed_total", Help: "Events applied by shards, by stream and tenant.",
		}, []string{"stream", "tenant"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_shard_events_dead_total", Help: "Events sent to DEAD by shards, by stream and tenant.",
		}, []string{"stream", "tenant"}),
		outputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_shard_outputs_published_total", Help: "Output messages published by shards before their commit, by input stream.",
		}, []string{"stream"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_shard_duplicate_outputs_total", Help: "Output messages of another shard dropped as already applied (at or below the upstream's high-water mark).",
		}, []string{"stream"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "contrail_shard_restarts_total", Help: "Shards restarted after a log or store error.",
		}, []string{"stream"}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "contrail_shard_position", Help: "Last stream sequence applied, per partition.",
		}, []string{"stream", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "contrail_shard_lag_messages", Help: "Log messages of the partition stored after the last one applied.",
		}, []string{"stream", "partition"}),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "contrail_shard_apply_duration_seconds", Help: "Time to process and commit one commit group (one log message, or several while the shard is behind).",
			Buckets: metrics.LatencyBuckets,
		}, []string{"stream"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "contrail_shard_ingest_to_processed_seconds", Help: "From the collector's receivedAt to the commit of the event's effects.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"stream"}),
	}
	m.groupMessages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "contrail_shard_commit_messages", Help: "Log messages applied per commit: above 1 while a shard is behind and groups what its reader holds.",
		Buckets: []float64{1, 2, 4, 8, 16, 32},
	}, []string{"stream"})
	m.marks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_shard_group_marks_total", Help: "Commit groups of several messages marked with a sync before they start, while parking decisions are in play (fair scheduling, parked tenants).",
	}, []string{"stream"})
	m.outboxWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_outbox_writes_total", Help: "External effects written to the persistent outbox because the senders lagged, by input stream.",
	}, []string{"stream"})
	m.parked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_shard_events_parked_total", Help: "Events set aside in PARKED, by stream, tenant and reason (paused, overflow).",
	}, []string{"stream", "tenant", "reason"})
	m.replayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_shard_events_replayed_total", Help: "Parked events read back from PARKED and applied (or skipped as already applied), by stream and tenant.",
	}, []string{"stream", "tenant"})
	m.backlog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "contrail_shard_tenant_backlog_events", Help: "Events of the tenant parked and not yet replayed, over the node's shards.",
	}, []string{"stream", "tenant"})
	m.tenantLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "contrail_shard_tenant_ingest_to_processed_seconds", Help: "From the collector's receivedAt to the commit, per tenant: observed once per log message per tenant, with its last event.",
		Buckets: metrics.LatencyBuckets,
	}, []string{"stream", "tenant"})
	m.tenantLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "contrail_shard_tenant_lag_seconds", Help: "Age of the tenant's last event applied, when it was applied.",
	}, []string{"stream", "tenant"})
	m.paused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "contrail_processing_paused", Help: "1 while processing is paused on this node (contrail bench catchup).",
	})
	reg.MustRegister(m.parked, m.replayed, m.backlog, m.tenantLatency, m.tenantLag, m.paused)
	reg.MustRegister(m.groupMessages, m.marks, m.outboxWrites, m.processed, m.dead, m.outputs, m.duplicates, m.restarts, m.position, m.lag, m.applySeconds, m.endToEnd)
	return m
}
