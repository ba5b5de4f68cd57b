package visitor

import (
	"strconv"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
)

// duplicate reports whether e's (tenant, messageId) was processed within
// the window, and records it otherwise. The window is measured in UTC days
// of receivedAt: the buckets of the last ceil(window/day) days and today.
// Most ids are new: the filters answer those without reading the store.
func (p *Processor) duplicate(tx *shard.Tx, e *event.Event, day int64) (bool, error) {
	if err := p.expireDedup(tx, day); err != nil {
		return false, err
	}
	p.idBuf = append(append(append(p.idBuf[:0], e.Tenant...), '/'), e.MessageID...)
	for d := day; d > day-p.dedupDays; d-- {
		f, err := p.dedupFilter(tx, d)
		if err != nil {
			return false, err
		}
		if !f.mayHave(p.idBuf) {
			continue
		}
		v, err := tx.Get(p.keys.dedup(d, e.Tenant, e.MessageID))
		if err != nil {
			return false, err
		}
		if v != nil {
			return true, nil
		}
	}
	tx.Set(p.keys.dedup(day, e.Tenant, e.MessageID), []byte{1})
	f, err := p.dedupFilter(tx, day)
	if err != nil {
		return false, err
	}
	if f.add(p.idBuf) {
		delete(p.filters, day) // rebuilt, larger, on next use
		p.filterSize[day] = f.limit * 4
	}
	return false, nil
}

// dedupFilter returns the filter of a day bucket, building it from the
// store when the processor has none; it forgets the days that left the
// window.
func (p *Processor) dedupFilter(tx *shard.Tx, day int64) (*keyFilter, error) {
	if f, ok := p.filters[day]; ok {
		return f, nil
	}
	f, err := newKeyFilter(tx, []byte(p.keys.prefix+"dd/"+dayString(day)+"/"), p.filterSize[day])
	if err != nil {
		return nil, err
	}
	p.filters[day] = f
	for d := range p.filters {
		if d <= day-p.dedupDays {
			delete(p.filters, d)
			delete(p.filterSize, d)
		}
	}
	return f, nil
}

// expireDedup drops the dedup buckets that left the window when a new day
// starts in this partition.
func (p *Processor) expireDedup(tx *shard.Tx, day int64) error {
	if day <= p.newestDay {
		return nil // the common case, without a read
	}
	key := p.keys.dedupDay()
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	newest, _ := strconv.ParseInt(string(v), 10, 64)
	if day <= newest {
		p.newestDay = newest
		return nil
	}
	tx.Set(key, []byte(strconv.FormatInt(day, 10)))
	if newest > 0 {
		tx.DeleteRange([]byte(p.keys.prefix+"dd/"), []byte(p.keys.prefix+"dd/"+dayString(day-p.dedupDays+1)))
	}
	return nil
}
