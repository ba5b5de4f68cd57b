package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Version is the log encoding written by this build. The first byte of every
// log message holds the version it was written with.
const Version byte = 1

// Errors returned by the decoder.
var (
	// ErrVersion means the message was written with an encoding this build
	// cannot read.
	ErrVersion = errors.New("unsupported log encoding version")
	// ErrCorrupt means the message is truncated or malformed.
	ErrCorrupt = errors.New("corrupt log message")
)

// Layout of version 1:
//
//	message := version:byte count:uvarint frame*
//	frame   := len:uvarint record
//	record  := type:byte flags:byte receivedAt:varint(µs since epoch)
//	           timestamp:varint(µs from receivedAt)
//	           [originalTimestamp:varint(µs from receivedAt)] if flags&flagOriginal
//	           [sentAt:varint(µs from receivedAt)]            if flags&flagSentAt
//	           tenant messageId anonymousId userId event name previousId groupId ip
//	           properties traits context integrations        (each len:uvarint bytes)
//	           [enrichment]                                  if flags&flagEnriched
//	enrichment := bits:byte (bot, newSession, backfill, sessionStart)
//	           [sessionStart:varint(µs from receivedAt)] pageCount:uvarint
//	           path browser os device channel referrerDomain utmSource utmMedium
//	           utmCampaign utmTerm utmContent country sessionId landingPage leadId
//
// Times are kept to the microsecond, in UTC. Times other than receivedAt are
// deltas, which keeps them to two or three bytes for live traffic.
const (
	flagOriginal = 1 << iota
	flagSentAt
	flagEnriched
	flagsKnown = flagOriginal | flagSentAt | flagEnriched
)

const (
	bitBot = 1 << iota
	bitNewSession
	bitBackfill
	bitSessionStart
	bitsKnown = bitBot | bitNewSession | bitBackfill | bitSessionStart
)

// AppendFrame appends e as one length-prefixed frame of a batch message. The
// collector frames each event once, in the request handler, so that building
// a log message is a plain concatenation of frames.
func AppendFrame(dst []byte, e *Event) []byte {
	start := len(dst)
	dst = AppendRecord(dst, e)
	n := len(dst) - start
	var prefix [binary.MaxVarintLen64]byte
	p := binary.PutUvarint(prefix[:], uint64(n))
	dst = append(dst, prefix[:p]...) // grow by p, then shift the record right
	copy(dst[start+p:], dst[start:start+n])
	copy(dst[start:], prefix[:p])
	return dst
}

// AppendRecord appends the encoding of e, without a frame length.
func AppendRecord(dst []byte, e *Event) []byte {
	var flags byte
	if !e.OriginalTimestamp.IsZero() {
		flags |= flagOriginal
	}
	if !e.SentAt.IsZero() {
		flags |= flagSentAt
	}
	if e.Enrichment != (Enrichment{}) {
		flags |= flagEnriched
	}
	recv := e.ReceivedAt.UnixMicro()
	dst = append(dst, byte(e.Type), flags)
	dst = binary.AppendVarint(dst, recv)
	dst = binary.AppendVarint(dst, e.Timestamp.UnixMicro()-recv)
	if flags&flagOriginal != 0 {
		dst = binary.AppendVarint(dst, e.OriginalTimestamp.UnixMicro()-recv)
	}
	if flags&flagSentAt != 0 {
		dst = binary.AppendVarint(dst, e.SentAt.UnixMicro()-recv)
	}
	for _, s := range [...]string{e.Tenant, e.MessageID, e.AnonymousID, e.UserID, e.Event, e.Name, e.PreviousID, e.GroupID, e.IP} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	for _, b := range [...][]byte{e.Properties, e.Traits, e.Context, e.Integrations} {
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = append(dst, b...)
	}
	if flags&flagEnriched != 0 {
		dst = appendEnrichment(dst, &e.Enrichment, recv)
	}
	return dst
}

func appendEnrichment(dst []byte, x *Enrichment, recv int64) []byte {
	var bits byte
	if x.Bot {
		bits |= bitBot
	}
	if x.NewSession {
		bits |= bitNewSession
	}
	if x.Backfill {
		bits |= bitBackfill
	}
	if !x.SessionStart.IsZero() {
		bits |= bitSessionStart
	}
	dst = append(dst, bits)
	if bits&bitSessionStart != 0 {
		dst = binary.AppendVarint(dst, x.SessionStart.UnixMicro()-recv)
	}
	dst = binary.AppendUvarint(dst, uint64(x.PageCount))
	for _, s := range [...]string{x.Path, x.Browser, x.OS, x.Device, x.Channel, x.ReferrerDomain,
		x.UTMSource, x.UTMMedium, x.UTMCampaign, x.UTMTerm, x.UTMContent, x.Country,
		x.SessionID, x.LandingPage, x.LeadID} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// AppendHeader appends the header of a batch message holding count frames.
func AppendHeader(dst []byte, count int) []byte {
	dst = append(dst, Version)
	return binary.AppendUvarint(dst, uint64(count))
}

// EncodeBatch returns a log message holding events.
func EncodeBatch(events []Event) []byte {
	msg := AppendHeader(make([]byte, 0, 64+len(events)*256), len(events))
	for i := range events {
		msg = AppendFrame(msg, &events[i])
	}
	return msg
}

// DecodeBatch decodes a log message. It never panics on malformed input.
func DecodeBatch(msg []byte) ([]Event, error) {
	var out []Event
	err := EachEvent(msg, func(e *Event) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// EachEvent decodes a log message and calls fn for each event in order. The
// event passed to fn is reused between calls; its byte slices alias msg.
func EachEvent(msg []byte, fn func(*Event) error) error {
	var e Event
	i := 0
	return EachRecord(msg, func(rec []byte) error {
		if err := DecodeRecord(rec, &e); err != nil {
			return fmt.Errorf("reading frame %d: %w", i, err)
		}
		i++
		return fn(&e)
	})
}

// EachRecord calls fn with each record of a log message, undecoded, in
// order: a shard that only routes an event (to PARKED, say) need not
// decode it. rec aliases msg.
func EachRecord(msg []byte, fn func(rec []byte) error) error {
	if len(msg) == 0 {
		return fmt.Errorf("empty message: %w", ErrCorrupt)
	}
	if msg[0] != Version {
		return fmt.Errorf("version %d: %w", msg[0], ErrVersion)
	}
	d := decoder{b: msg[1:]}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		return fmt.Errorf("reading count: %w", ErrCorrupt)
	}
	for i := uint64(0); i < n; i++ {
		size := d.uvarint()
		if d.err != nil || size > uint64(len(d.b)) {
			return fmt.Errorf("reading frame %d: %w", i, ErrCorrupt)
		}
		rec := d.b[:size:size]
		d.b = d.b[size:]
		if err := fn(rec); err != nil {
			return err
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes: %w", len(d.b), ErrCorrupt)
	}
	return nil
}

// AppendRecordFrame appends an encoded record as a frame of a batch
// message.
func AppendRecordFrame(dst, rec []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	return append(dst, rec...)
}

// RecordHead reads the tenant and receivedAt of an encoded record without
// decoding the rest. tenant aliases rec.
func RecordHead(rec []byte) (tenant []byte, receivedAt time.Time, err error) {
	d := decoder{b: rec}
	d.byte() // type
	flags := d.byte()
	recv := d.varint()
	d.varint() // timestamp
	if flags&flagOriginal != 0 {
		d.varint()
	}
	if flags&flagSentAt != 0 {
		d.varint()
	}
	tenant = d.bytes()
	if d.err != nil {
		return nil, time.Time{}, d.err
	}
	return tenant, time.UnixMicro(recv).UTC(), nil
}

// Count returns the number of events a log message holds, as its header
// says; 0 when the header cannot be read.
func Count(msg []byte) int {
	if len(msg) < 2 || msg[0] != Version {
		return 0
	}
	n, k := binary.Uvarint(msg[1:])
	if k <= 0 || n > uint64(len(msg)) {
		return 0
	}
	return int(n)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) record(e *Event) {
	e.Type = Type(d.byte())
	flags := d.byte()
	recv := d.varint()
	e.ReceivedAt = time.UnixMicro(recv).UTC()
	e.Timestamp = time.UnixMicro(recv + d.varint()).UTC()
	e.OriginalTimestamp, e.SentAt = time.Time{}, time.Time{}
	if flags&flagOriginal != 0 {
		e.OriginalTimestamp = time.UnixMicro(recv + d.varint()).UTC()
	}
	if flags&flagSentAt != 0 {
		e.SentAt = time.UnixMicro(recv + d.varint()).UTC()
	}
	e.Tenant = d.string()
	e.MessageID = d.string()
	e.AnonymousID = d.string()
	e.UserID = d.string()
	e.Event = d.string()
	e.Name = d.string()
	e.PreviousID = d.string()
	e.GroupID = d.string()
	e.IP = d.string()
	e.Properties = d.bytes()
	e.Traits = d.bytes()
	e.Context = d.bytes()
	e.Integrations = d.bytes()
	e.Enrichment = Enrichment{}
	if flags&flagEnriched != 0 {
		d.enrichment(&e.Enrichment, recv)
	}
	if d.err == nil && (e.Type == TypeUnknown || e.Type >= typeEnd || flags&^flagsKnown != 0) {
		d.fail()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
}

func (d *decoder) enrichment(x *Enrichment, recv int64) {
	bits := d.byte()
	x.Bot, x.NewSession, x.Backfill = bits&bitBot != 0, bits&bitNewSession != 0, bits&bitBackfill != 0
	if bits&bitSessionStart != 0 {
		x.SessionStart = time.UnixMicro(recv + d.varint()).UTC()
	}
	pages := d.uvarint()
	if pages > math.MaxUint32 {
		d.fail()
	}
	x.PageCount = uint32(pages)
	for _, s := range [...]*string{&x.Path, &x.Browser, &x.OS, &x.Device, &x.Channel, &x.ReferrerDomain,
		&x.UTMSource, &x.UTMMedium, &x.UTMCampaign, &x.UTMTerm, &x.UTMContent, &x.Country,
		&x.SessionID, &x.LandingPage, &x.LeadID} {
		*s = d.string()
	}
	if d.err == nil && bits&^bitsKnown != 0 {
		d.fail()
	}
}
