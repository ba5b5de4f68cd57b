package event

import "github.com/cespare/xxhash/v2"

// Partition returns the partition of a visitor: hash(tenant, visitor key) mod
// n. It is stable across processes and versions; changing it would split a
// visitor's history across partitions.
func Partition(tenant, visitorKey string, n int) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(tenant)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(visitorKey)
	return int(d.Sum64() % uint64(n))
}
