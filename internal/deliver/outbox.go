package deliver

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/contrailhq/contrail/internal/store"
)

// scanOutbox takes over the outbox entries whose effect it does not
// hold. The first scan (initial) puts them before anything handed over
// until then, and starts dispatching.
func (s *Sender) scanOutbox(initial bool) error {
	found, err := s.readOutbox()
	s.takeOver(found, initial)
	return err
}

// takeOver makes items of effects found in the outbox (each item.outbox
// holds its entry) held, unless they are held already or done; the entries
// of those done are deleted. With initial, it also starts dispatching,
// the items found first.
func (s *Sender) takeOver(found []*item, initial bool) {
	var stale []string
	pending := found[:0]
	for _, it := range found {
		_, done, err := s.Result(it.key)
		if err != nil {
			s.logger.Error("reading a delivery result", "key", it.key, "err", err)
		}
		if !done {
			pending = append(pending, it)
			continue
		}
		for okey := range it.outbox {
			stale = append(stale, okey)
		}
	}
	if len(stale) > 0 {
		if err := s.deleteOutbox(stale); err != nil {
			s.logger.Error("deleting outbox entries of done effects", "err", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var fresh []*item
	for _, it := range pending {
		outbox := it.outbox
		held, ok := s.items[it.key]
		if !ok {
			held, it.outbox = it, nil
			s.acceptLocked(it)
			fresh = append(fresh, it)
		}
		for okey := range outbox {
			s.attachLocked(held, okey)
		}
	}
	if !initial {
		for _, it := range fresh {
			s.enqueueLocked(it)
		}
		return
	}
	s.hold = append(fresh, s.hold...)
	s.live = true
	for _, it := range s.hold {
		s.scheduleLocked(it)
	}
	s.hold = nil
}

// readOutbox reads the outbox entries whose effect is not held, one item
// each.
func (s *Sender) readOutbox() ([]*item, error) {
	lower := []byte(store.OutboxPrefix)
	upper := append(bytes.Clone(lower[:len(lower)-1]), lower[len(lower)-1]+1)
	iter, err := s.deps.Store.NewIter(lower, upper)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	defer func() { _ = iter.Close() }()
	now := s.now()
	var found []*item
	for valid := iter.First(); valid; valid = iter.Next() {
		okey := string(iter.Key())
		key, ok := effectKey(okey)
		if !ok {
			s.logger.Error("outbox key without an effect key; left alone", "outbox_key", okey)
			continue
		}
		s.mu.Lock()
		held, ok := s.items[key]
		if ok {
			s.attachLocked(held, okey)
		}
		s.mu.Unlock()
		if ok {
			continue
		}
		v, err := iter.ValueAndErr()
		if err != nil {
			return found, fmt.Errorf("reading outbox entry %q: %w", okey, err)
		}
		it := newItem(key, "", v, now) // parseJob copies what it keeps
		it.outbox = map[string]struct{}{okey: {}}
		found = append(found, it)
	}
	if err := iter.Error(); err != nil {
		return found, fmt.Errorf("reading the outbox: %w", err)
	}
	slices.SortStableFunc(found, func(a, b *item) int {
		return cmp.Or(strings.Compare(a.order, b.order), a.job.At.Compare(b.job.At),
			cmp.Compare(a.job.Step, b.job.Step), strings.Compare(a.key, b.key))
	})
	return found, nil
}

// effectKey is the effect key at the end of an outbox key
// (store.OutboxKey: prefix, stream, "/", partition, "/", key).
func effectKey(okey string) (string, bool) {
	rest, ok := strings.CutPrefix(okey, store.OutboxPrefix)
	if !ok {
		return "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[2] == "" {
		return "", false
	}
	return parts[2], true
}

// writeDone stores an effect's result (unless value is nil) and deletes
// outbox entries, in one batch.
func (s *Sender) writeDone(key string, value []byte, outbox map[string]struct{}) error {
	if value == nil && len(outbox) == 0 {
		return nil
	}
	b := s.deps.Store.NewBatch()
	defer func() { _ = b.Close() }()
	if value != nil {
		if err := b.Set(resultKey(key), value, nil); err != nil {
			return fmt.Errorf("writing result of %q: %w", key, err)
		}
	}
	for okey := range outbox {
		if err := b.Delete([]byte(okey), nil); err != nil {
			return fmt.Errorf("deleting outbox entry %q: %w", okey, err)
		}
	}
	return s.deps.Store.Commit(b)
}

// deleteOutbox deletes outbox entries.
func (s *Sender) deleteOutbox(okeys []string) error {
	m := make(map[string]struct{}, len(okeys))
	for _, k := range okeys {
		m[k] = struct{}{}
	}
	return s.writeDone("", nil, m)
}
