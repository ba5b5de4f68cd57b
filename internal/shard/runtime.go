package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/metrics"
	"github.com/contrailhq/contrail/internal/store"
)

// Config configures a Runtime.
type Config struct {
	// Workers bounds how many shards process at once; 0 means one per core.
	Workers int
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
	// Now is the wall clock, used only for latency metrics.
	Now func() time.Time
}

// Runtime runs a node's shards on a fixed pool of workers.
type Runtime struct {
	deps    Deps
	logger  *slog.Logger
	now     func() time.Time
	workers chan struct{}
	metrics *shardMetrics
	shards  []*shard
	// stopping is closed when Run's context ends, so waiters give up
	// rather than hold a shutdown.
	stopping chan struct{}
}

// New returns a runtime; add shards with Add, then Run.
func New(cfg Config, deps Deps) (*Runtime, error) {
	if deps.Store == nil || deps.Source == nil || deps.Publisher == nil {
		return nil, errors.New("shard: Store, Source and Publisher are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
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
		deps: deps, logger: deps.Logger.With("component", "shard"), now: deps.Now,
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
// partition stored after Position.
type Status struct {
	Stream    string `json:"stream"`
	Partition int    `json:"partition"`
	Position  uint64 `json:"position"`
	Last      uint64 `json:"last"`
	Lag       uint64 `json:"lag"`
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

// WaitApplied returns once the shard of stream's partition has committed
// seq (or a later message), or when ctx ends. The API uses it to answer a
// write it put on the log once its effects are readable.
func (r *Runtime) WaitApplied(ctx context.Context, stream string, partition int, seq uint64) error {
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
		if s.position.Load() >= seq {
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
		st := Status{Stream: s.stream, Partition: s.partition, Position: s.position.Load(), Last: s.last.Load()}
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
	outboxWrites *prometheus.CounterVec   // stream
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
			Name: "contrail_shard_apply_duration_seconds", Help: "Time to process and commit one log message.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"stream"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "contrail_shard_ingest_to_processed_seconds", Help: "From the collector's receivedAt to the commit of the event's effects.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"stream"}),
	}
	m.outboxWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_outbox_writes_total", Help: "External effects written to the persistent outbox because the senders lagged, by input stream.",
	}, []string{"stream"})
	reg.MustRegister(m.outboxWrites, m.processed, m.dead, m.outputs, m.duplicates, m.restarts, m.position, m.lag, m.applySeconds, m.endToEnd)
	return m
}
