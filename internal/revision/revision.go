// Package revision tracks how far a view of a NATS KV bucket has read, so
// that a writer can wait until its own change is served (read-your-writes).
// It is a leaf package.
package revision

import (
	"context"
	"fmt"
	"sync"
)

// Tracker holds the highest KV revision a view has applied. The zero value
// is ready to use; it is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	rev     uint64
	changed chan struct{} // closed and replaced when rev moves
}

// Advance records that the view has applied revision rev.
func (t *Tracker) Advance(rev uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rev > t.rev {
		t.rev = rev
		if t.changed != nil {
			close(t.changed)
			t.changed = nil
		}
	}
}

// WaitFor returns once revision rev is applied, or when ctx ends.
func (t *Tracker) WaitFor(ctx context.Context, rev uint64) error {
	for {
		t.mu.Lock()
		if t.rev >= rev {
			t.mu.Unlock()
			return nil
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for revision %d: %w", rev, ctx.Err())
		}
	}
}
