package visitor

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/contrailhq/contrail/internal/shard"
)

// sweepBudget bounds the index entries one event's sweep examines, so that
// expiry is spread over the day's events instead of stalling one.
const sweepBudget = 64

// sweep expires visitors not seen for their tenant's retention. When the
// partition reaches a new day (of receivedAt), it walks each tenant's
// expiry index up to that tenant's cut-off, a few entries per event, and
// drops the visitors found there with their history. Its progress, the
// day it is sweeping for and the tenant it is at, lives in the shard's
// state, so the sweep is as deterministic as the rest of processing.
func (p *Processor) sweep(tx *shard.Tx, day int64) error {
	if day <= p.sweptDay {
		return nil
	}
	key := p.keys.sweep()
	v, err := tx.Get(key)
	if err != nil {
		return err
	}
	sweepDay, cursor := decodeSweep(v)
	if sweepDay >= day && cursor == "" {
		p.sweptDay = sweepDay
		return nil
	}
	if sweepDay < day {
		sweepDay, cursor = day, "" // a new day: start over
	}
	budget := sweepBudget
	done := true
	var tenants []string
	start := []byte(p.keys.prefix + "n/" + cursor)
	err = tx.Scan(start, []byte(p.keys.prefix+"n0"), func(k, _ []byte) bool {
		tenants = append(tenants, string(k[len(p.keys.prefix)+2:]))
		return len(tenants) < 64
	})
	if err != nil {
		return err
	}
	for i, t := range tenants {
		n, err := p.expireTenant(tx, t, day, budget)
		if err != nil {
			return err
		}
		budget -= n
		if budget <= 0 {
			cursor, done = t, false // more of this tenant next time
			break
		}
		if i == len(tenants)-1 && len(tenants) == 64 {
			cursor, done = t+"\x00", false
		}
	}
	if done {
		cursor = ""
	}
	tx.Set(key, encodeSweep(sweepDay, cursor))
	return nil
}

// expireTenant drops up to budget expired visitors of a tenant and returns
// how many index entries it examined.
func (p *Processor) expireTenant(tx *shard.Tx, tenant string, day int64, budget int) (int, error) {
	set := p.settings(tenant)
	retention := int64(set.VisitorRetention.D().Hours() / 24)
	cutoff := day - retention // visitors last seen before this day expire
	lower := p.keys.expiryTenant(tenant)
	upper := append(append([]byte(nil), lower...), dayString(cutoff)...)
	var expired [][]byte
	err := tx.Scan(lower, upper, func(k, _ []byte) bool {
		expired = append(expired, bytes.Clone(k))
		return len(expired) < budget
	})
	if err != nil {
		return 0, err
	}
	ts := p.tenantMetrics(tenant)
	for _, k := range expired {
		rest := k[len(lower):] // <day>/<visitor>
		if len(rest) < 7 {
			tx.Delete(k)
			continue
		}
		d, _ := strconv.ParseInt(string(rest[:6]), 10, 64)
		visitor := string(rest[7:])
		tx.Delete(k)
		sk := p.keys.state(nil, tenant, visitor)
		v, err := tx.Get(sk)
		if err != nil {
			return 0, err
		}
		var s state
		if v == nil || decodeState(v, &s) != nil {
			tx.Delete(sk)
			p.states.delete(sk)
			continue
		}
		if s.lastSeen/86400 != d {
			continue // a stale entry: the visitor came back
		}
		for i := s.histFirst; i < s.histNext; i++ {
			tx.Delete(p.keys.history(tenant, visitor, i))
		}
		tx.Delete(sk)
		p.states.delete(sk)
		ts.expired.Inc()
	}
	return len(expired), nil
}

func encodeSweep(day int64, cursor string) []byte {
	b := binary.AppendUvarint(nil, uint64(day))
	return append(b, cursor...)
}

func decodeSweep(v []byte) (int64, string) {
	d, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, ""
	}
	return int64(d), string(v[n:])
}
