package report

import (
	"context"
	"encoding/binary"

	"github.com/contrailhq/contrail/internal/store"
)

// CountRecords counts the stored total records of tenant's buckets of
// resolution res ('m', 'h', 'd', 'w') in partitions 0..parts-1.
func CountRecords(st *store.Store, parts int, tenant string, res byte) int {
	n := 0
	for _, c := range RecordsPerBucket(st, parts, tenant, res) {
		n += c
	}
	return n
}

// DropConsolidated deletes the consolidated records (counts and sketches,
// every section) of tenant's bucket of resolution res starting at start in
// partition p, as retention does.
func DropConsolidated(st *store.Store, p int, tenant string, res byte, start int64) error {
	k := newKeys(p)
	b := st.NewBatch()
	for s := range numSecs {
		if err := b.Delete(k.record(tenant, s, res, start, 0), nil); err != nil {
			return err
		}
		if err := b.Delete(k.sketchRecord(tenant, s, res, start, 0), nil); err != nil {
			return err
		}
	}
	return st.Commit(b)
}

// RecordsPerBucket counts the stored total records of each of tenant's
// buckets of resolution res in partitions 0..parts-1, by the bucket's
// start (Unix seconds).
func RecordsPerBucket(st *store.Store, parts int, tenant string, res byte) map[int64]int {
	out := map[int64]int{}
	for p := range parts {
		k := newKeys(p)
		it, err := st.NewIter(k.section(tenant, secTotal, res, 0), k.section(tenant, secTotal, res, 1<<62))
		if err != nil {
			panic(err)
		}
		for it.First(); it.Valid(); it.Next() {
			key := it.Key()
			out[int64(binary.BigEndian.Uint64(key[len(key)-16:]))]++
		}
		_ = it.Close()
	}
	return out
}

// OnCore runs fn under q's limit of cores.
func OnCore(ctx context.Context, q *Querier, fn func() error) error { return q.onCore(ctx, fn) }
