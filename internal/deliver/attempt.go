package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// work makes one attempt of it and decides what follows: done, or a
// retry. It runs with a worker slot and an endpoint slot, which it
// releases.
func (s *Sender) work(ctx context.Context, it *item) {
	if !it.checked {
		it.checked = true
		// Done in an earlier life (a replayed message, an outbox entry
		// whose deletion did not happen): only the bookkeeping is left.
		switch _, ok, err := s.Result(it.key); {
		case err != nil:
			s.logger.Error("reading a delivery result; delivering anyway", "key", it.key, "err", err)
		case ok:
			s.release(it)
			s.finish(it, nil)
			return
		}
	}
	if it.jobErr != nil {
		s.release(it)
		s.fail(it, outcome{err: it.jobErr})
		return
	}
	if it.first.IsZero() {
		it.first = s.now()
	}
	it.attempts++
	var o outcome
	switch it.job.Kind {
	case KindWebhook:
		o = s.webhook(ctx, &it.job)
	case KindEmail:
		o = s.email(ctx, &it.job)
	}
	s.release(it)
	if !o.ok && ctx.Err() != nil {
		// Shutting down: this attempt does not count. The effect is in the
		// outbox, or its message is not committed and will be replayed.
		it.attempts--
		return
	}
	labels := []string{it.tenant(), it.kind()}
	switch {
	case o.ok:
		s.metrics.attempts.WithLabelValues(append(labels, outcomeOK)...).Inc()
		s.finish(it, &Result{
			Key: it.key, Kind: it.job.Kind, Status: StatusDelivered, Attempts: it.attempts,
			HTTPStatus: o.httpStatus, DeliveredAt: s.now(), FirstAttempt: it.first,
		})
	case o.retry && it.attempts < s.cfg.MaxAttempts:
		s.metrics.attempts.WithLabelValues(append(labels, outcomeRetry)...).Inc()
		wait := s.backoff(it.attempts, o)
		s.logger.Debug("delivery attempt failed; retrying", "key", it.key, "tenant", it.job.Tenant,
			"kind", it.job.Kind, "attempt", it.attempts, "wait", wait, "err", o.err)
		s.retryLater(it, wait)
	default:
		s.metrics.attempts.WithLabelValues(append(labels, outcomeFailed)...).Inc()
		if o.retry {
			o.err = fmt.Errorf("giving up after %d attempts: %w", it.attempts, o.err)
		}
		s.fail(it, o)
	}
}

// fail records that it failed for good.
func (s *Sender) fail(it *item, o outcome) {
	s.metrics.failed.WithLabelValues(it.tenant(), it.kind()).Inc()
	if ok, suppressed := s.warns.allow(time.Now()); ok {
		s.logger.Warn("external effect failed", "key", it.key, "tenant", it.job.Tenant, "kind", it.job.Kind,
			"campaign", it.job.Campaign, "run", it.job.Run, "step", it.job.Step, "attempts", it.attempts,
			"http_status", o.httpStatus, "err", o.err, "suppressed", suppressed)
	}
	s.finish(it, &Result{
		Key: it.key, Kind: it.job.Kind, Status: StatusFailed, Attempts: it.attempts, HTTPStatus: o.httpStatus,
		Error: o.err.Error(), DeliveredAt: s.now(), FirstAttempt: it.first,
	})
}

// finish records that it is done: it stores res (nil when it was done
// before), deletes its outbox entries, and lets the next item of its
// Order go. The result is stored before it stops being held, so an effect
// handed over again from then on finds it and is not sent twice.
func (s *Sender) finish(it *item, res *Result) {
	s.mu.Lock()
	first := keysOf(it.outbox)
	s.mu.Unlock()
	var value []byte
	if res != nil {
		var err error
		if value, err = json.Marshal(res); err != nil {
			s.logger.Error("encoding a delivery result", "key", it.key, "err", err)
		}
	}
	if err := s.writeDone(it.key, value, first); err != nil {
		// The outbox entries stay, and the effect may go again after a
		// restart: at least once.
		s.logger.Error("recording a delivery result", "key", it.key, "err", err)
	}

	s.mu.Lock()
	delete(s.items, it.key)
	var late []string // entries attached while the batch above was written
	for k := range it.outbox {
		if _, ok := first[k]; !ok {
			late = append(late, k)
		}
	}
	s.outboxes -= len(it.outbox)
	s.popOrderLocked(it)
	s.metrics.inflight.Set(float64(len(s.items)))
	s.metrics.outboxPending.Set(float64(s.outboxes))
	s.mu.Unlock()

	if len(late) > 0 {
		if err := s.deleteOutbox(late); err != nil {
			s.logger.Error("deleting outbox entries", "key", it.key, "err", err)
		}
	}
	if res != nil {
		s.metrics.duration.WithLabelValues(it.kind()).Observe(s.now().Sub(it.handed).Seconds())
		if res.Status == StatusDelivered && !it.job.At.IsZero() {
			s.metrics.ingestToDone.WithLabelValues(it.kind()).Observe(s.now().Sub(it.job.At).Seconds())
		}
	}
	close(it.done)
}

func keysOf(m map[string]struct{}) map[string]struct{} {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// backoff is the wait before the retry that follows attempt n: the
// server's Retry-After, or a random wait up to BaseBackoff·2^(n-1) (full
// jitter), at most MaxBackoff either way.
func (s *Sender) backoff(n int, o outcome) time.Duration {
	if o.hasRetryAfter {
		return min(o.retryAfter, s.cfg.MaxBackoff)
	}
	ceil := s.cfg.BaseBackoff
	for i := 1; i < n && ceil < s.cfg.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, s.cfg.MaxBackoff)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// logLimiter lets at most logBurst messages through per logWindow, and
// counts the others.
type logLimiter struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

const (
	logWindow = 10 * time.Second
	logBurst  = 10
)

// allow says whether to log now, and how many messages were held back
// since the last one let through.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= logWindow {
		l.start, l.n = now, 0
	}
	if l.n >= logBurst {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
