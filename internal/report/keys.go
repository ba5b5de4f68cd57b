package report

import (
	"encoding/binary"
	"strconv"
)

// Key layout of the rollups, inside a visitor shard's state ("v/<p>/"):
//
//	r/<tenant>/<section><res><start><seq>  one record of a bucket's section
//	r/<tenant>/w                      the tenant's compaction marks
//	rt/<tenant>                       the partition's tenants with rollups
//	rn                                the partition's clock: the newest receivedAt
//
// <section> is a byte ('A' the total, then one per dimension), <res> is
// 'm', 'h' or 'd' and <start> the bucket's start, Unix seconds as eight
// bytes big-endian, so that a section's buckets sort by time. A bucket is
// the sum of its records: <seq> 0 holds what was consolidated (by a
// compaction), and every log message that counted into the bucket since
// adds a record of its own under its stream sequence, so that a message
// writes only what it changed.
type keys struct{ prefix string }

func newKeys(p int) keys { return keys{prefix: "v/" + strconv.Itoa(p) + "/"} }

// Resolutions.
const (
	resMinute = 'm'
	resHour   = 'h'
	resDay    = 'd'
)

func (k keys) section(tenant string, s int, res byte, start int64) []byte {
	b := make([]byte, 0, len(k.prefix)+len(tenant)+21)
	return k.appendSection(b, tenant, s, res, start)
}

func (k keys) appendSection(b []byte, tenant string, s int, res byte, start int64) []byte {
	b = append(b, k.prefix...)
	b = append(b, "r/"...)
	b = append(b, tenant...)
	b = append(b, '/', byte('A'+s), res)
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

func (k keys) record(tenant string, s int, res byte, start int64, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(k.section(tenant, s, res, start), seq)
}

func (k keys) marks(tenant string) []byte { return []byte(k.prefix + "r/" + tenant + "/w") }

func (k keys) tenantIndex() []byte { return []byte(k.prefix + "rt/") }

func (k keys) tenant(t string) []byte { return []byte(k.prefix + "rt/" + t) }

func (k keys) clock() []byte { return []byte(k.prefix + "rn") }
