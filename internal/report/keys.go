package report

import (
	"encoding/binary"
	"strconv"
)

// Key layout of the rollups, inside a visitor shard's state ("v/<p>/"):
//
//	r/<tenant>/<section><res><start><seq>  one record of a bucket's section:
//	                                  its counts, or (lower-case <section>)
//	                                  its rows' visitor sketches
//	r/<tenant>/w                      the tenant's compaction marks
//	rt/<tenant>                       the partition's tenants with rollups
//	rn                                the partition's clock: the newest receivedAt
//	rh/<tenant>/<seq>                 a log message's hits not yet folded (hitlog.go)
//
// <section> is a byte ('A' the total, then one per dimension), <res> is
// 'm', 'h', 'd' or 'w' and <start> the bucket's start, Unix seconds as eight
// bytes big-endian, so that a section's buckets sort by time. A bucket is
// the sum of its records: <seq> 0 holds what was consolidated (by a
// compaction), and every fold of the hit log that counted into the bucket
// since adds a record of its own under its log message's sequence, so
// that a fold writes only what it changed.
type keys struct{ prefix string }

func newKeys(p int) keys { return keys{prefix: "v/" + strconv.Itoa(p) + "/"} }

// Resolutions.
const (
	resMinute = 'm'
	resHour   = 'h'
	resDay    = 'd'
	resWeek   = 'w'
)

// section is where the counts records of section s of a tenant's bucket
// of resolution res starting at start begin.
func (k keys) section(tenant string, s int, res byte, start int64) []byte {
	return k.appendSection(nil, tenant, byte('A'+s), res, start)
}

// sketchSection is the same for the records' sketches: the same key with
// the section's letter in lower case.
func (k keys) sketchSection(tenant string, s int, res byte, start int64) []byte {
	return k.appendSection(nil, tenant, byte('a'+s), res, start)
}

func (k keys) appendSection(b []byte, tenant string, letter, res byte, start int64) []byte {
	b = append(b, k.prefix...)
	b = append(b, "r/"...)
	b = append(b, tenant...)
	b = append(b, '/', letter, res)
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

func (k keys) record(tenant string, s int, res byte, start int64, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(k.section(tenant, s, res, start), seq)
}

func (k keys) sketchRecord(tenant string, s int, res byte, start int64, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(k.sketchSection(tenant, s, res, start), seq)
}

func (k keys) marks(tenant string) []byte { return []byte(k.prefix + "r/" + tenant + "/w") }

func (k keys) tenantIndex() []byte { return []byte(k.prefix + "rt/") }

func (k keys) tenant(t string) []byte { return []byte(k.prefix + "rt/" + t) }

func (k keys) clock() []byte { return []byte(k.prefix + "rn") }

// hitRecord is the key of message seq's hits of tenant. Tenant ids hold
// no '/'.
func (k keys) hitRecord(tenant string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(k.prefix+"rh/"+tenant+"/"), seq)
}

// hitLogEnd is the upper bound of tenant's hit log.
func (k keys) hitLogEnd(tenant string) []byte {
	return append([]byte(k.prefix+"rh/"+tenant), '/'+1)
}

// hitLogs returns the bounds of every tenant's hit log in the partition.
func (k keys) hitLogs() (lo, hi []byte) {
	return []byte(k.prefix + "rh/"), []byte(k.prefix + "rh0")
}
