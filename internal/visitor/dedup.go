package visitor

import (
	"strconv"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
)

// duplicate reports whether e's (tenant, messageId) was processed within
// the window, and records it otherwise. The window is measured in UTC days
// of receivedAt: the buckets of the last ceil(window/day) days and today.
func (p *Processor) duplicate(tx *shard.Tx, e *event.Event, day int64) (bool, error) {
	if err := p.expireDedup(tx, day); err != nil {
		return false, err
	}
	for d := day; d > day-p.dedupDays; d-- {
		v, err := tx.Get(p.keys.dedup(d, e.Tenant, e.MessageID))
		if err != nil {
			return false, err
		}
		if v != nil {
			return true, nil
		}
	}
	tx.Set(p.keys.dedup(day, e.Tenant, e.MessageID), []byte{1})
	return false, nil
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
