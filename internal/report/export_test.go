package report

import "github.com/contrailhq/contrail/internal/store"

// CountRecords counts the stored total records of tenant's buckets of
// resolution res ('m', 'h', 'd', 'w') in partitions 0..parts-1.
func CountRecords(st *store.Store, parts int, tenant string, res byte) int {
	n := 0
	for p := range parts {
		k := newKeys(p)
		it, err := st.NewIter(k.section(tenant, secTotal, res, 0), k.section(tenant, secTotal, res, 1<<62))
		if err != nil {
			panic(err)
		}
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		_ = it.Close()
	}
	return n
}
