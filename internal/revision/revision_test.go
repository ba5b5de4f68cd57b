package revision

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	var tr Tracker
	done := make(chan error, 1)
	go func() { done <- tr.WaitFor(context.Background(), 3) }()
	tr.Advance(2)
	select {
	case err := <-done:
		t.Fatalf("returned at revision 2: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	tr.Advance(3)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := tr.WaitFor(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.WaitFor(ctx, 9); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
