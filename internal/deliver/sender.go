package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// Sender delivers the external effects of the shards of a node; it
// implements shard.Sender. Create it with New and call Run once.
//
// Lock order: Sender.mu, then nothing; Pebble is never written under mu.
// Deps.TenantConcurrency is called under mu.
type Sender struct {
	cfg     Config
	deps    Deps
	logger  *slog.Logger
	now     func() time.Time
	client  *http.Client
	metrics *deliverMetrics
	warns   logLimiter

	// wake tells the dispatcher there is something to start (capacity 1).
	wake chan struct{}
	// attempts waits for the attempts in progress.
	attempts sync.WaitGroup

	mu sync.Mutex
	// items are the effects held and not done, by key.
	items map[string]*item
	// orders queue the items of each Order key; only the head of a
	// queue may be attempted.
	orders map[string][]*item
	// tenants hold the items ready to attempt, by tenant, then endpoint
	// (fair.go).
	tenants map[string]*tenantQueue
	// endpoints are the concurrency groups with a ready item or an attempt
	// in progress, by name.
	endpoints map[string]*endpoint
	// ring are the tenants with items to serve, taking turns.
	ring []*tenantQueue
	// retries are the items waiting to be tried again, soonest first.
	retries retryHeap
	// hold keeps the items accepted before Run read the outbox, in order.
	hold     []*item
	started  bool // Run was called
	live     bool // Run read the outbox and is dispatching
	stopped  bool // Run's context ended
	queued   int  // items accepted whose first attempt has not started
	running  int  // attempts in progress
	outboxes int  // outbox keys attached to items
}

var _ shard.Sender = (*Sender)(nil)

// item is one effect the Sender holds until it is done.
type item struct {
	key      string
	order    string
	job      Job
	jobErr   error     // the payload cannot be delivered
	endpoint string    // concurrency group: "http:<host>" or "smtp"
	handed   time.Time // first hand-over, for the duration metric
	done     chan struct{}

	// Guarded by Sender.mu.
	outbox  map[string]struct{} // outbox keys holding the effect
	started bool                // its first attempt began
	due     time.Time           // when its retry is due

	// Owned by the attempt in progress; there is at most one.
	checked  bool // the stored result was looked up
	attempts int
	first    time.Time
}

// New returns a Sender; it delivers nothing until Run.
func New(cfg Config, deps Deps) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("deliver config: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("deliver: Store is required")
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Sender{
		cfg: cfg, deps: deps, logger: deps.Logger.With("component", "deliver"), now: deps.Now,
		client:  newHTTPClient(deps.HTTPClient, cfg.AllowPrivateNetworks, cfg.PerEndpointConcurrency),
		metrics: newDeliverMetrics(deps.Registerer),
		wake:    make(chan struct{}, 1),
		items:   map[string]*item{}, orders: map[string][]*item{},
		tenants: map[string]*tenantQueue{}, endpoints: map[string]*endpoint{},
	}, nil
}

// newItem makes the item of an effect. key wins over the payload's Key:
// an effect is only ever sent with the key the shard knows it by.
func newItem(key, order string, payload []byte, now time.Time) *item {
	it := &item{key: key, order: order, handed: now, done: make(chan struct{})}
	it.job, it.jobErr = parseJob(payload)
	it.job.Key = key
	if it.order == "" {
		it.order = it.job.Order
	}
	if it.jobErr == nil {
		switch it.job.Kind {
		case KindEmail:
			it.endpoint = "smtp"
		case KindWebhook:
			if u, err := parseWebhookURL(it.job.URL); err == nil {
				it.endpoint = "http:" + strings.ToLower(u.Hostname())
			}
		}
	}
	return it
}

// tenant is the item's tenant label.
func (it *item) tenant() string {
	if it.job.Tenant == "" {
		return "unknown"
	}
	return it.job.Tenant
}

// kind is the item's kind label.
func (it *item) kind() string {
	if it.jobErr != nil && it.job.Kind != KindWebhook && it.job.Kind != KindEmail {
		return "unknown"
	}
	return it.job.Kind
}

// isDone says whether the item is done.
func (it *item) isDone() bool {
	select {
	case <-it.done:
		return true
	default:
		return false
	}
}

// Run reads the outbox, then delivers until ctx ends, reading the outbox
// again every Config.RescanInterval. On return no attempt is in
// progress; effects not done stay in the outbox (or are replayed by their
// shard). It returns nil when ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("deliver: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	start := time.Now()
	if err := s.scanOutbox(true); err != nil {
		// Go on: what Deliver hands over still goes; the next scan retries.
		s.logger.Error("reading the outbox", "err", err)
	}
	s.logger.Info("outbox read", "pending", s.pendingOutbox(), "took", time.Since(start))

	var wg sync.WaitGroup
	wg.Go(func() { s.rescanLoop(ctx) })
	s.dispatchLoop(ctx)

	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	wg.Wait()
	s.attempts.Wait()
	return nil
}

// rescanLoop reads the outbox every RescanInterval until ctx ends.
func (s *Sender) rescanLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RescanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.scanOutbox(false); err != nil {
				s.logger.Error("reading the outbox", "err", err)
			}
		}
	}
}

// Deliver accepts effects, in order, and waits up to Config.HandoverWait
// for them; it returns those not done by then. When the Sender lags (more
// than Config.LagThreshold effects not started), has stopped, or ctx is
// done, it returns them all at once. Either way it keeps delivering every
// effect it accepted. An effect it already holds (same key) is not
// accepted twice.
func (s *Sender) Deliver(ctx context.Context, effects []shard.External) (spill []shard.External) {
	if len(effects) == 0 {
		return nil
	}
	now := s.now()
	fresh := make([]*item, len(effects))
	for i, x := range effects {
		fresh[i] = newItem(x.Key, x.Order, x.Payload, now)
	}
	items := make([]*item, len(effects))
	s.mu.Lock()
	for i, it := range fresh {
		if held, ok := s.items[it.key]; ok {
			items[i] = held
			continue
		}
		s.acceptLocked(it)
		s.enqueueLocked(it)
		items[i] = it
	}
	lag := s.stopped || s.queued > s.cfg.LagThreshold
	s.mu.Unlock()

	if lag || ctx.Err() != nil {
		s.metrics.spilled.Add(float64(len(effects)))
		return effects
	}
	timer := time.NewTimer(s.cfg.HandoverWait)
	defer timer.Stop()
wait:
	for _, it := range items {
		select {
		case <-it.done:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	for i, it := range items {
		if !it.isDone() {
			spill = append(spill, effects[i])
		}
	}
	s.metrics.spilled.Add(float64(len(spill)))
	return spill
}

// Spilled records that the outbox of stream's partition now holds
// effects. Each outbox entry is deleted once its effect is done; an
// effect done already (it finished after Deliver returned) just has its
// entry deleted.
func (s *Sender) Spilled(stream string, partition int, effects []shard.External) {
	var notHeld []shard.External
	s.mu.Lock()
	for _, x := range effects {
		if it, ok := s.items[x.Key]; ok {
			s.attachLocked(it, string(store.OutboxKey(stream, partition, x.Key)))
		} else {
			notHeld = append(notHeld, x)
		}
	}
	s.mu.Unlock()
	if len(notHeld) == 0 {
		return
	}
	// Done between Deliver's return and the shard's commit: the result is
	// stored, and only the entry is left to delete.
	now := s.now()
	var taken []*item
	for _, x := range notHeld {
		it := newItem(x.Key, x.Order, x.Payload, now)
		it.outbox = map[string]struct{}{string(store.OutboxKey(stream, partition, x.Key)): {}}
		taken = append(taken, it)
	}
	s.takeOver(taken, false)
}

// acceptLocked makes it held.
func (s *Sender) acceptLocked(it *item) {
	s.items[it.key] = it
	s.queued++
	s.metrics.inflight.Set(float64(len(s.items)))
}

// attachLocked records that outbox key okey holds it.
func (s *Sender) attachLocked(it *item, okey string) {
	if it.outbox == nil {
		it.outbox = map[string]struct{}{}
	}
	if _, ok := it.outbox[okey]; !ok {
		it.outbox[okey] = struct{}{}
		s.outboxes++
		s.metrics.outboxPending.Set(float64(s.outboxes))
	}
}

// pendingOutbox is the number of outbox entries known.
func (s *Sender) pendingOutbox() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboxes
}
