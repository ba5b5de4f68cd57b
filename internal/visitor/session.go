package visitor

import (
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/contrailhq/contrail/internal/event"
)

// sessionRules are a tenant's session settings.
type sessionRules struct {
	timeout, maxLength int64 // ms
	splitOnCampaign    bool
}

// sessionize attaches e to the visitor's session, starting a new one when
// the last has timed out, grown too long, or (optionally) when the UTM
// campaign changed. Time is the event's timestamp, never the wall clock, so
// a replay makes the same sessions.
//
// Page, screen and track events start and extend sessions; identify, alias
// and group only join the current one. An event older than the current
// session's start by more than the timeout is late (a device that was
// offline): it gets no session and leaves the state alone. One that falls
// inside the current session joins it without moving its end.
//
// It returns what the event changed in the session for the web reports,
// and whether the event is in a session.
func sessionize(s *state, e *event.Event, tenant, visitor string, campaign uint32, r sessionRules) (sessionDelta, bool) {
	var d sessionDelta
	x := &e.Enrichment
	t := e.Timestamp.UnixMilli()
	active := e.Type == event.TypePage || e.Type == event.TypeScreen || e.Type == event.TypeTrack
	page := e.Type == event.TypePage || e.Type == event.TypeScreen
	if s.sessStart != 0 && t < s.sessStart-r.timeout {
		return d, false // late
	}
	expired := s.sessStart == 0 || t > s.sessLast+r.timeout || t-s.sessStart >= r.maxLength ||
		r.splitOnCampaign && campaign != 0 && campaign != s.campaign
	if expired {
		if !active {
			return d, false // identify, alias, group outside a session: no session
		}
		*s = state{lastSeen: s.lastSeen, histFirst: s.histFirst, histNext: s.histNext, lead: s.lead}
		s.sessStart, s.sessLast, s.campaign = t, t, campaign
		x.NewSession = true
	}
	if active && s.src.channel == "" && x.Channel != "" {
		// The session's source is its first page view's or track's
		// that has one.
		d.sourceKnown = true
		s.src = source{referrer: x.ReferrerDomain, channel: x.Channel, utmSource: x.UTMSource,
			utmMedium: x.UTMMedium, utmCampaign: x.UTMCampaign, country: x.Country}
	}
	if active && t > s.sessLast {
		d.durationMs = t - s.sessLast
		s.sessLast = t
	}
	if page {
		s.pages++
		if s.landing == "" && x.Path != "" {
			s.landing = x.Path
			d.entryKnown = true
		}
		switch s.pages {
		case 1:
			d.bounce = 1
		case 2:
			d.bounce = -1
		}
		if x.Path != "" && x.Path != s.exit {
			d.exitFrom, d.exit = s.exit, true
			s.exit = x.Path
		}
	}
	if campaign != 0 && s.campaign == 0 {
		s.campaign = campaign
	}
	x.SessionID = sessionID(tenant, visitor, s.sessStart)
	x.SessionStart = time.UnixMilli(s.sessStart).UTC()
	x.LandingPage = s.landing
	x.PageCount = s.pages
	if s.pages == 1 {
		d.sessionBounce = 1
	}
	d.sessionMs = s.sessLast - s.sessStart
	return d, true
}

// sessionDelta is what one event changed in its session: the bounce (+1 on
// the first page view, -1 on the second), the time it added, and the exit
// page moving from exitFrom ("" none) to the event's page when exit.
//
// entryKnown and sourceKnown say the event made the session's landing page
// or source known; sessionBounce (1 while the session has one page view)
// and sessionMs are the session so far.
type sessionDelta struct {
	bounce, durationMs       int64
	exitFrom                 string
	exit                     bool
	entryKnown, sourceKnown  bool
	sessionBounce, sessionMs int64
}

// sessionID is a deterministic id: hex of hash(tenant, visitor, start).
func sessionID(tenant, visitor string, start int64) string {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(tenant)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(visitor)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(start))
	_, _ = d.Write(b[:])
	binary.BigEndian.PutUint64(b[:], d.Sum64())
	return hex.EncodeToString(b[:])
}

// campaignHash is the session-split key of a UTM campaign (0: none).
func campaignHash(c string) uint32 {
	if c == "" {
		return 0
	}
	return uint32(xxhash.Sum64String(c)) | 1
}
