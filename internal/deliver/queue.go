package deliver

import (
	"container/heap"
	"context"
	"time"
)

// How an item moves: accepted (held), then queued behind the earlier items
// of its Order, then ready once it heads its Order, then attempted when its
// turn comes (fair.go) and a worker slot, a slot of its tenant and a slot
// at its endpoint are free. A failed attempt that may be retried waits in
// the retry heap, holding no slot but still heading its Order, and becomes
// ready again when due.

// enqueueLocked queues an accepted item: before Run has read the outbox
// it waits in hold, so that what the outbox holds goes first.
func (s *Sender) enqueueLocked(it *item) {
	if !s.live {
		s.hold = append(s.hold, it)
		return
	}
	s.scheduleLocked(it)
}

// scheduleLocked puts it behind the earlier items of its Order.
func (s *Sender) scheduleLocked(it *item) {
	if it.order == "" {
		s.readyLocked(it)
		return
	}
	q := append(s.orders[it.order], it)
	s.orders[it.order] = q
	if len(q) == 1 {
		s.readyLocked(it)
	}
}

// signal wakes the dispatcher.
func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatchLoop starts attempts until ctx ends.
func (s *Sender) dispatchLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := s.dispatch(ctx)
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-due:
		}
	}
}

// dispatch makes due retries ready and starts what the turns and limits
// allow. It returns when the next retry is due (zero for none).
func (s *Sender) dispatch(ctx context.Context) (next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return time.Time{}
	}
	now := time.Now()
	for len(s.retries) > 0 && !s.retries[0].due.After(now) {
		s.readyLocked(heap.Pop(&s.retries).(*item))
	}
	for s.running < s.cfg.Workers && len(s.ring) > 0 {
		it := s.nextItemLocked()
		if it == nil {
			continue
		}
		if !it.started {
			it.started = true
			s.queued--
		}
		s.attempts.Go(func() { s.work(ctx, it) })
	}
	if len(s.retries) > 0 {
		next = s.retries[0].due
	}
	return next
}

// retryLater makes it ready again after wait.
func (s *Sender) retryLater(it *item, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it.due = time.Now().Add(wait)
	heap.Push(&s.retries, it)
	s.signal()
}

// popOrderLocked removes the done item it from the head of its Order and
// makes the next one ready.
func (s *Sender) popOrderLocked(it *item) {
	if it.order == "" {
		return
	}
	q := s.orders[it.order]
	if len(q) == 0 || q[0] != it {
		// Cannot happen: only the head of an Order is attempted.
		s.logger.Error("order queue out of step", "order", it.order, "key", it.key)
		return
	}
	q[0] = nil
	q = q[1:]
	if len(q) == 0 {
		delete(s.orders, it.order)
		return
	}
	s.orders[it.order] = q
	s.readyLocked(q[0])
}

// retryHeap orders items by due time.
type retryHeap []*item

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*item)) }

func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
