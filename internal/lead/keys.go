package lead

import (
	"encoding/binary"
	"strconv"
	"time"
)

// Key layout of a lead shard's state, all under "l/<partition>/":
//
//	p/<tenant>/<lead>                   the lead's profile (JSON, see record)
//	a/<tenant>/<lead>/<time><seq><idx>  one activity (JSON), in time order
//	ie/<tenant>/<email>                 email → lead id, in the email's partition
//	m/<tenant>/<list>/<lead>            list membership, for listing a list
//	au/<tenant>/<seq><idx>              audit record of a merge or an erasure
//
// <time> is the activity's time in µs since the epoch, <seq> the stream
// sequence of the log message that recorded it, both eight bytes
// big-endian; <idx> is the event's index in the message and a counter
// within the event, two bytes each. So a timeline reads in time order,
// back-filled history merged in, and every key is deterministic.
type keys struct{ prefix string }

func newKeys(q int) keys { return keys{prefix: "l/" + strconv.Itoa(q) + "/"} }

func (k keys) profile(tenant, lead string) []byte {
	return []byte(k.prefix + "p/" + tenant + "/" + lead)
}

func (k keys) activities(tenant, lead string) []byte {
	return []byte(k.prefix + "a/" + tenant + "/" + lead + "/")
}

// activitySuffixLen is the length of an activity key after its lead prefix.
const activitySuffixLen = 20

func (k keys) activity(tenant, lead string, t time.Time, seq uint64, idx, sub int) []byte {
	b := k.activities(tenant, lead)
	return appendActivitySuffix(b, t, seq, idx, sub)
}

func appendActivitySuffix(b []byte, t time.Time, seq uint64, idx, sub int) []byte {
	us := t.UnixMicro()
	if us < 0 {
		us = 0
	}
	b = binary.BigEndian.AppendUint64(b, uint64(us))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint16(b, uint16(idx))
	return binary.BigEndian.AppendUint16(b, uint16(sub))
}

func (k keys) email(tenant, email string) []byte {
	return []byte(k.prefix + "ie/" + tenant + "/" + email)
}

func (k keys) member(tenant, list, lead string) []byte {
	return []byte(k.prefix + "m/" + tenant + "/" + list + "/" + lead)
}

func (k keys) members(tenant, list string) []byte {
	return []byte(k.prefix + "m/" + tenant + "/" + list + "/")
}

func (k keys) audit(tenant string, seq uint64, idx int) []byte {
	b := []byte(k.prefix + "au/" + tenant + "/")
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint16(b, uint16(idx))
}

func (k keys) audits(tenant string) []byte { return []byte(k.prefix + "au/" + tenant + "/") }
