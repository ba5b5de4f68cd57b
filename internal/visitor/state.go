package visitor

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Key layout of a visitor shard's state, all under "v/<partition>/":
//
//	dd/<day>/<tenant>/<messageId>    a messageId seen on that UTC day (of receivedAt)
//	ddday                            the newest day seen, to expire old buckets
//	n/<tenant>                       events processed (not duplicates); also
//	                                 the list of the partition's tenants
//	s/<tenant>/<visitor>             the visitor's state (see state)
//	h/<tenant>/<visitor>\x00<index>  one entry of its anonymous history
//	x/<tenant>/<day>/<visitor>       expiry index: the day it was last seen
//	xs                               the expiry sweep's progress
//
// <day> is days since the epoch, zero-padded to six digits so that keys sort
// by day; <index> is eight bytes, big-endian.
type keys struct{ prefix string }

func newKeys(p int) keys { return keys{prefix: "v/" + strconv.Itoa(p) + "/"} }

func (k keys) dedup(day int64, tenant, messageID string) []byte {
	return []byte(k.prefix + "dd/" + dayString(day) + "/" + tenant + "/" + messageID)
}

func (k keys) dedupDay() []byte { return []byte(k.prefix + "ddday") }

func (k keys) processed(tenant string) []byte { return []byte(k.prefix + "n/" + tenant) }

func (k keys) state(buf []byte, tenant, visitor string) []byte {
	buf = append(buf[:0], k.prefix...)
	buf = append(buf, "s/"...)
	buf = append(buf, tenant...)
	buf = append(buf, '/')
	return append(buf, visitor...)
}

func (k keys) history(tenant, visitor string, i uint64) []byte {
	b := make([]byte, 0, len(k.prefix)+len(tenant)+len(visitor)+13)
	b = append(b, k.prefix...)
	b = append(b, "h/"...)
	b = append(b, tenant...)
	b = append(b, '/')
	b = append(b, visitor...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, i)
}

func (k keys) expiry(tenant string, day int64, visitor string) []byte {
	return []byte(k.prefix + "x/" + tenant + "/" + dayString(day) + "/" + visitor)
}

func (k keys) expiryTenant(tenant string) []byte { return []byte(k.prefix + "x/" + tenant + "/") }

func (k keys) sweep() []byte { return []byte(k.prefix + "xs") }

// dayString keeps buckets in key order: days since the epoch, zero-padded.
func dayString(day int64) string {
	s := strconv.FormatInt(day, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// state is what a visitor shard keeps per visitor (device). Anonymous
// visitors cost this record and their history entries; nothing else.
type state struct {
	lastSeen int64 // receivedAt of the last event, Unix seconds
	// The current session, in event time (Unix ms); sessStart is 0 when
	// there is none.
	sessStart, sessLast int64
	pages               uint32
	campaign            uint32 // hash of the session's UTM campaign, 0 if none
	landing             string
	// histFirst..histNext are the indexes of the anonymous history entries.
	histFirst, histNext uint64
	// lead is the lead the visitor is linked to, "" while anonymous.
	lead string
	// src is where the current session came from; exit its last page.
	// The web reports count every event of the session under them.
	src  source
	exit string
}

// source is a session's acquisition: what its first event said.
type source struct {
	referrer, channel, utmSource, utmMedium, utmCampaign, country string
}

// stateVersion 2 added the session's source and exit page.
const stateVersion = 2

var errState = errors.New("corrupt visitor state")

// appendState encodes s:
//
//	version:byte lastSeen:uvarint sessStart:uvarint sessLast:uvarint(from sessStart)
//	pages:uvarint campaign:uint32 histFirst:uvarint histNext:uvarint(from histFirst)
//	landing:len+bytes lead:len+bytes
//	referrer channel utmSource utmMedium utmCampaign country exit: len+bytes each
func appendState(dst []byte, s *state) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendUvarint(dst, uint64(s.lastSeen))
	dst = binary.AppendUvarint(dst, uint64(s.sessStart))
	dst = binary.AppendUvarint(dst, uint64(s.sessLast-s.sessStart))
	dst = binary.AppendUvarint(dst, uint64(s.pages))
	dst = binary.BigEndian.AppendUint32(dst, s.campaign)
	dst = binary.AppendUvarint(dst, s.histFirst)
	dst = binary.AppendUvarint(dst, s.histNext-s.histFirst)
	dst = binary.AppendUvarint(dst, uint64(len(s.landing)))
	dst = append(dst, s.landing...)
	for _, v := range [...]string{s.lead, s.src.referrer, s.src.channel, s.src.utmSource, s.src.utmMedium, s.src.utmCampaign, s.src.country, s.exit} {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// decodeState decodes b into s.
func decodeState(b []byte, s *state) error {
	if len(b) == 0 || b[0] < 1 || b[0] > stateVersion {
		return errState
	}
	version := b[0]
	b = b[1:]
	var bad bool
	u := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := u()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		v := string(b[:n])
		b = b[n:]
		return v
	}
	s.lastSeen = int64(u())
	s.sessStart = int64(u())
	s.sessLast = s.sessStart + int64(u())
	s.pages = uint32(u())
	if len(b) < 4 {
		return errState
	}
	s.campaign = binary.BigEndian.Uint32(b)
	b = b[4:]
	s.histFirst = u()
	s.histNext = s.histFirst + u()
	s.landing = str()
	s.lead = str()
	if version >= 2 {
		s.src = source{referrer: str(), channel: str(), utmSource: str(), utmMedium: str(), utmCampaign: str(), country: str()}
		s.exit = str()
	}
	if bad || len(b) != 0 {
		return errState
	}
	return nil
}
