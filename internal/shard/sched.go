package shard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contrailhq/contrail/internal/eventlog"
)

// A shard reads from several sources: its partition (the main source) and,
// for each tenant it is replaying, that tenant's PARKED subject. Each
// source has its own reader goroutine and hands over one message at a time;
// the shard's loop picks the next message by deficit round robin, weighted
// by the tenants' weights, and applies it. One loop applies everything, so
// the shard's state and its episodes are never touched concurrently.

// source is one input of a shard.
type source struct {
	tenant string // "" for the main source
	ch     chan eventlog.Message
	// ahead is the bytes of the messages in ch; the reader waits on room
	// while it is over maxAheadBytes.
	ahead atomic.Int64
	room  chan struct{}
	head  *eventlog.Message
	// deficit is what the source may still take in its turn, in events.
	deficit int
	cancel  context.CancelFunc
	done    chan struct{}
}

// maxAheadBytes bounds what a reader holds ready beyond the consumer's
// own buffer, whatever the size of the log messages.
const maxAheadBytes = 4 << 20

// quantum is the events a source of weight 1 may take per round.
const quantum = 256

// sched is a shard's set of sources.
type sched struct {
	srcs     []*source // srcs[0] is the main source
	byTenant map[string]*source
	cur      int
	wake     chan struct{}
	errs     chan error
	wg       sync.WaitGroup
}

func newSched() *sched {
	return &sched{byTenant: map[string]*source{}, wake: make(chan struct{}, 1), errs: make(chan error, 1)}
}

func (sc *sched) poke() {
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

func (sc *sched) fail(err error) {
	select {
	case sc.errs <- err:
	default:
	}
	sc.poke()
}

// start runs read in a goroutine that feeds a new source.
func (sc *sched) start(ctx context.Context, tenant string, read func(ctx context.Context, fn func(eventlog.Message) error) error) *source {
	ctx, cancel := context.WithCancel(ctx)
	// The partition's reader runs ahead by up to a commit group, so that
	// a shard that is behind finds its next group waiting (extent takes
	// only what is there); a tenant's PARKED reader by one message.
	buf := 1
	if tenant == "" {
		buf = maxGroupMessages
	}
	src := &source{tenant: tenant, ch: make(chan eventlog.Message, buf), room: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	sc.wg.Go(func() {
		defer close(src.done)
		err := read(ctx, func(m eventlog.Message) error {
			for src.ahead.Load() >= maxAheadBytes {
				select {
				case <-src.room:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			src.ahead.Add(int64(len(m.Data)))
			select {
			case src.ch <- m:
				sc.poke()
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("reader ended")
			}
			sc.fail(fmt.Errorf("reading %s: %w", src.name(), err))
		}
	})
	sc.srcs = append(sc.srcs, src)
	if tenant != "" {
		sc.byTenant[tenant] = src
	}
	return src
}

// stop ends a tenant's source.
func (sc *sched) stop(src *source) {
	src.cancel()
	<-src.done
	delete(sc.byTenant, src.tenant)
	for i, x := range sc.srcs {
		if x == src {
			sc.srcs = append(sc.srcs[:i], sc.srcs[i+1:]...)
			if sc.cur >= i && sc.cur > 0 {
				sc.cur--
			}
			break
		}
	}
}

// close ends every source and waits for the readers.
func (sc *sched) close() {
	for _, src := range sc.srcs {
		src.cancel()
	}
	sc.wg.Wait()
}

// took accounts for a message taken from ch.
func (src *source) took(m eventlog.Message) {
	src.ahead.Add(-int64(len(m.Data)))
	select {
	case src.room <- struct{}{}:
	default:
	}
}

func (src *source) name() string {
	if src.tenant == "" {
		return "partition"
	}
	return "parked events of " + src.tenant
}

// fill takes the next message of each source that has none waiting.
func (sc *sched) fill() {
	for _, src := range sc.srcs {
		if src.head != nil {
			continue
		}
		select {
		case m := <-src.ch:
			src.took(m)
			src.head = &m
		default:
		}
	}
}

// pick returns the source whose head message goes next, by deficit round
// robin over the sources that have one and may run, or nil. A source runs
// while its deficit is positive; charge takes what the message cost once
// it is applied, so a message that mostly parks costs little. weight
// gives a source's weight.
func (sc *sched) pick(eligible func(*source) bool, weight func(*source) int) *source {
	n := len(sc.srcs)
	any := false
	for _, src := range sc.srcs {
		if src.head != nil && eligible(src) {
			any = true
			break
		}
	}
	if !any {
		return nil
	}
	if n == 1 {
		return sc.srcs[0] // no one to share with
	}
	for {
		if sc.cur >= n {
			sc.cur = 0
		}
		src := sc.srcs[sc.cur]
		if src.head == nil || !eligible(src) {
			src.deficit = 0 // an idle source keeps no credit
			sc.cur++
			continue
		}
		if src.deficit > 0 {
			return src
		}
		// Its turn is over: credit it for the next round and move on.
		src.deficit += quantum * weight(src)
		sc.cur++
	}
}

// charge takes a message's cost, in events applied, from src's deficit.
func (sc *sched) charge(src *source, cost int) { src.deficit -= max(cost, 1) }

// wait blocks until a reader hands something over, a reader fails, ctx
// ends or d passes.
func (sc *sched) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sc.wake:
		return nil
	case err := <-sc.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
