package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/store"
)

// Publisher stores a message on the log; *eventlog.Log implements it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, headers map[string]string) (uint64, error)
}

// Timers fires the due timers of a node's lead partitions: each becomes a
// campaign_timer command on the lead's LEADS partition, so the lead shard
// applies it in order with the lead's other inputs (DESIGN.md §8). A
// timer is published again if it is still there after Resend (a lost
// publish, a crash); the run ignores all but the first.
type Timers struct {
	db         *store.Store
	pub        Publisher
	partitions []int
	now        func() time.Time
	logger     *slog.Logger
	metrics    *Metrics
	// Interval is how often the partitions are scanned; Resend how long a
	// published timer waits before it is published again.
	Interval, Resend time.Duration
	// Paused, when set, reports a paused tenant: its timers wait, and
	// fire (late, never lost) once it is resumed.
	Paused func(tenant string) bool
	sent   map[string]time.Time
}

// NewTimers returns the timer service of the given LEADS partitions.
func NewTimers(db *store.Store, pub Publisher, partitions []int, m *Metrics, logger *slog.Logger, now func() time.Time) *Timers {
	if now == nil {
		now = time.Now
	}
	return &Timers{
		db: db, pub: pub, partitions: partitions, now: now, logger: logger, metrics: m,
		Interval: 50 * time.Millisecond, Resend: 30 * time.Second, sent: map[string]time.Time{},
	}
}

// Run fires timers until ctx ends.
func (t *Timers) Run(ctx context.Context) error {
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, q := range t.partitions {
			if err := t.fireDue(ctx, q); err != nil && ctx.Err() == nil {
				t.logger.Warn("firing campaign timers", "partition", q, "err", err)
			}
		}
		now := t.now()
		for k, at := range t.sent {
			if now.Sub(at) > t.Resend {
				delete(t.sent, k)
			}
		}
	}
}

// Timer is a due timer.
type Timer struct {
	Key  string
	Lead string
	Run  string
	PC   int
	Due  time.Time
	// Tenant is the lead's tenant.
	Tenant string
}

// DueTimers returns partition q's timers due at now, by due time.
func DueTimers(db *store.Store, q int, now time.Time) ([]Timer, error) {
	prefix := newKeys(q).timers()
	upper := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(now.UnixMicro()+1))
	it, err := db.NewIter(prefix, upper)
	if err != nil {
		return nil, err
	}
	var out []Timer
	for it.First(); it.Valid(); it.Next() {
		var e timerEntry
		if json.Unmarshal(it.Value(), &e) != nil {
			continue
		}
		out = append(out, Timer{Key: string(it.Key()), Tenant: e.Tenant, Lead: e.Lead, Run: e.Run, PC: e.PC, Due: e.Due})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("scanning timers: %w", err)
	}
	return out, nil
}

// fireDue publishes partition q's timers that are due.
func (t *Timers) fireDue(ctx context.Context, q int) error {
	now := t.now()
	due, err := DueTimers(t.db, q, now)
	if err != nil {
		return err
	}
	for _, d := range due {
		if _, ok := t.sent[d.Key]; ok {
			continue
		}
		if t.Paused != nil && t.Paused(d.Tenant) {
			continue
		}
		sum := sha256.Sum256([]byte(d.Key))
		id := "tmr-" + hex.EncodeToString(sum[:12])
		cmd, err := lead.Command(d.Tenant, d.Lead, CmdTimer, TimerFired{Run: d.Run, PC: d.PC, Due: d.Due}, id, now)
		if err != nil {
			return err
		}
		if _, err := t.pub.Publish(ctx, eventlog.LeadsSubject(q), id, event.EncodeBatch([]event.Event{cmd}), nil); err != nil {
			return fmt.Errorf("publishing timer of run %s: %w", d.Run, err)
		}
		t.sent[d.Key] = now
		t.metrics.timersFired.Inc()
	}
	return nil
}
