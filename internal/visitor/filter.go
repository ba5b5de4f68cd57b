package visitor

import (
	"github.com/bits-and-blooms/bloom/v3"

	"github.com/contrailhq/contrail/internal/shard"
)

// filterStart is the capacity of a new filter; a full one is rebuilt four
// times larger.
const filterStart = 1 << 20

// keyFilter is an in-memory Bloom filter of the keys under a prefix of the
// shard's state: the messageIds of a dedup day, or the visitors that have
// a state. Most events bring a new messageId and many a new visitor; the
// filter answers those without reading the store, where a lookup of an
// absent key is the most expensive thing a visitor shard does.
//
// A filter only ever says "maybe present" too often, never "absent"
// wrongly: keys are added before their batch commits, and expired keys stay
// in it. So it needs no care on a failed commit or a restart; the store
// stays the truth, and a new processor rebuilds filters from it on first
// use.
type keyFilter struct {
	prefix   []byte
	f        *bloom.BloomFilter
	n, limit uint
}

// newKeyFilter builds the filter of the keys under prefix, sized for at
// least limit keys.
func newKeyFilter(tx *shard.Tx, prefix []byte, limit uint) (*keyFilter, error) {
	var keys [][]byte
	upper := append(append([]byte(nil), prefix[:len(prefix)-1]...), prefix[len(prefix)-1]+1)
	err := tx.Scan(prefix, upper, func(k, _ []byte) bool {
		keys = append(keys, append([]byte(nil), k[len(prefix):]...))
		return true
	})
	if err != nil {
		return nil, err
	}
	tx.ScanPending(prefix, upper, func(k []byte) { keys = append(keys, k[len(prefix):]) })
	limit = max(limit, filterStart, uint(len(keys))*2)
	kf := &keyFilter{prefix: prefix, f: bloom.NewWithEstimates(limit, 0.01), n: uint(len(keys)), limit: limit}
	for _, k := range keys {
		kf.f.Add(k)
	}
	return kf, nil
}

// mayHave reports whether the key prefix+suffix may exist.
func (kf *keyFilter) mayHave(suffix []byte) bool { return kf.f.Test(suffix) }

// add records prefix+suffix; it reports whether the filter is full and
// should be rebuilt larger.
func (kf *keyFilter) add(suffix []byte) (full bool) {
	kf.f.Add(suffix)
	kf.n++
	return kf.n > kf.limit
}
