package event

import (
	"encoding/json"
	"fmt"
	"time"
)

// Type is the kind of a Segment-compatible call.
type Type uint8

// The event types of the Segment Tracking API.
const (
	TypeUnknown Type = iota
	TypeTrack
	TypePage
	TypeScreen
	TypeIdentify
	TypeAlias
	TypeGroup
	// TypeForm is a form fill posted to the collector's form endpoint:
	// Name is the form id, Traits the submitted fields.
	TypeForm
	// TypeCommand is an instruction from the API or from another shard
	// (patch a lead, change its score, link a visitor...): Event names it,
	// Properties holds its arguments and Enrichment.LeadID its lead.
	// Clients cannot send commands: ParseType does not accept the name.
	TypeCommand
	typeEnd
)

var typeNames = [...]string{"unknown", "track", "page", "screen", "identify", "alias", "group", "form", "command"}

// String returns the Segment name of t ("track", "page", ...).
func (t Type) String() string {
	if t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType returns the Type for a Segment type name, or TypeUnknown. The
// internal types (form, command) are not Segment types and are unknown here.
func ParseType(s string) Type {
	switch s {
	case "track":
		return TypeTrack
	case "page":
		return TypePage
	case "screen":
		return TypeScreen
	case "identify":
		return TypeIdentify
	case "alias":
		return TypeAlias
	case "group":
		return TypeGroup
	}
	return TypeUnknown
}

// MarshalJSON writes the type as its Segment name.
func (t Type) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// Event is one accepted call, as stored in the log.
//
// Ids are kept raw, as the client sent them; identity resolution happens
// later. Properties, traits, context and integrations are kept as the JSON the
// client sent (after batch-level context was merged in), so that the collector
// never pays for a full parse of them.
type Event struct {
	Tenant      string
	Type        Type
	MessageID   string
	AnonymousID string
	UserID      string
	Event       string // track: the event name
	Name        string // page, screen: the page or screen name
	PreviousID  string // alias
	GroupID     string // group
	IP          string // context.ip after the IP policy, or the peer address

	// Timestamp is the event time corrected for client clock skew.
	Timestamp time.Time
	// OriginalTimestamp is the client's clock when the call was made (zero if unknown).
	OriginalTimestamp time.Time
	// SentAt is the client's clock when the batch was sent (zero if unknown).
	SentAt time.Time
	// ReceivedAt is the collector's clock when the request arrived.
	ReceivedAt time.Time

	Properties   json.RawMessage
	Traits       json.RawMessage
	Context      json.RawMessage
	Integrations json.RawMessage

	// Enrichment is what the pipeline learned about the event; zero until
	// the collector or a visitor shard fills it in.
	Enrichment Enrichment
}

// Enrichment is what the pipeline adds to an event: the collector resolves
// the country (before the IP policy drops the address), and the visitor
// shard adds the rest before the event goes on to the lead shards.
type Enrichment struct {
	// Path is the page path (pages: properties.path, else from the URL).
	Path string
	// Browser, OS and Device come from the user agent; Device is one of
	// desktop, mobile, tablet, bot or other ("" when there is no user agent).
	Browser, OS, Device string
	// Bot flags automated traffic. Bots are counted but never trigger.
	Bot bool
	// Channel classifies the referrer: search, social, email, direct,
	// internal or other; ReferrerDomain is its host.
	Channel, ReferrerDomain string
	// UTM parameters, from context.campaign or the page URL.
	UTMSource, UTMMedium, UTMCampaign, UTMTerm, UTMContent string
	// Country is the ISO 3166-1 alpha-2 code of the IP's country.
	Country string

	// SessionID identifies the visitor's session; SessionStart is when it
	// began, LandingPage its first page, PageCount its pages so far
	// (this event included).
	SessionID    string
	SessionStart time.Time
	LandingPage  string
	PageCount    uint32
	// NewSession is set on the first event of a session.
	NewSession bool

	// LeadID is the known lead the visitor was linked to when the event
	// happened; "" for anonymous events.
	LeadID string
	// Backfill marks anonymous history handed to a lead on promotion.
	Backfill bool
}

// VisitorKey is the key that orders a visitor's events: the anonymousId when
// there is one, else the userId.
func (e *Event) VisitorKey() string {
	if e.AnonymousID != "" {
		return e.AnonymousID
	}
	return e.UserID
}
