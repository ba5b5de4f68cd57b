package visitor

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
)

// Config configures the visitor processor.
type Config struct {
	// DedupWindow is how long a messageId is remembered; at least 24 h.
	DedupWindow time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{DedupWindow: 24 * time.Hour} }

// Metrics are the visitor processors' instruments, shared by all shards.
type Metrics struct {
	duplicates *prometheus.CounterVec // tenant
}

// NewMetrics registers the instruments on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "contrail_visitor_duplicates_total", Help: "Events dropped as duplicates of an earlier messageId, by tenant.",
	}, []string{"tenant"})}
	reg.MustRegister(m.duplicates)
	return m
}

// Duplicates returns the duplicates counter of a tenant (for tests and status).
func (m *Metrics) Duplicates(tenant string) prometheus.Counter {
	return m.duplicates.WithLabelValues(tenant)
}

// Processor is the visitor shard of one partition.
type Processor struct {
	cfg       Config
	partition int
	metrics   *Metrics
	buckets   int64 // day buckets checked: the window rounded up, plus today
}

// New returns the processor of partition p.
func New(cfg Config, p int, m *Metrics) (*Processor, error) {
	if cfg.DedupWindow < 24*time.Hour {
		return nil, errors.New("visitor: the dedup window must be at least 24h")
	}
	days := int64((cfg.DedupWindow + 24*time.Hour - 1) / (24 * time.Hour))
	return &Processor{cfg: cfg, partition: p, metrics: m, buckets: days + 1}, nil
}

// Key layout of a visitor shard's state, all under "v/<partition>/":
//
//	dd/<day>/<tenant>/<messageId>   a messageId seen on that UTC day (of receivedAt)
//	ddday                           the newest day seen, to expire old buckets
//	n/<tenant>                      events processed (not duplicates)
func (p *Processor) prefix() string { return "v/" + strconv.Itoa(p.partition) + "/" }

func (p *Processor) dedupKey(day int64, tenant, messageID string) []byte {
	return []byte(p.prefix() + "dd/" + dayString(day) + "/" + tenant + "/" + messageID)
}

// dayString keeps buckets in key order: days since the epoch, zero-padded.
func dayString(day int64) string {
	s := strconv.FormatInt(day, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// Process applies one event.
func (p *Processor) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	day := e.ReceivedAt.Unix() / 86400
	if err := p.expire(tx, day); err != nil {
		return err
	}
	for d := day; d > day-p.buckets; d-- {
		v, err := tx.Get(p.dedupKey(d, e.Tenant, e.MessageID))
		if err != nil {
			return err
		}
		if v != nil {
			if p.metrics != nil {
				p.metrics.duplicates.WithLabelValues(e.Tenant).Inc()
			}
			return nil
		}
	}
	tx.Set(p.dedupKey(day, e.Tenant, e.MessageID), []byte{1})
	key := []byte(p.prefix() + "n/" + e.Tenant)
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	n, _ := strconv.ParseUint(string(v), 10, 64)
	tx.Set(key, strconv.AppendUint(nil, n+1, 10))
	return nil
}

// expire drops the dedup buckets that left the window when a new day
// starts in this partition.
func (p *Processor) expire(tx *shard.Tx, day int64) error {
	key := []byte(p.prefix() + "ddday")
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	newest, _ := strconv.ParseInt(string(v), 10, 64)
	if day <= newest {
		return nil
	}
	tx.Set(key, []byte(strconv.FormatInt(day, 10)))
	if newest > 0 {
		tx.DeleteRange([]byte(p.prefix()+"dd/"), []byte(p.prefix()+"dd/"+dayString(day-p.buckets+1)))
	}
	return nil
}

// ProcessedKey is where partition p counts a tenant's processed events.
func ProcessedKey(p int, tenant string) []byte {
	return []byte("v/" + strconv.Itoa(p) + "/n/" + tenant)
}
