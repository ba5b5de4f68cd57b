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
	typeEnd
)

var typeNames = [...]string{"unknown", "track", "page", "screen", "identify", "alias", "group"}

// String returns the Segment name of t ("track", "page", ...).
func (t Type) String() string {
	if t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType returns the Type for a Segment type name, or TypeUnknown.
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
}

// VisitorKey is the key that orders a visitor's events: the anonymousId when
// there is one, else the userId.
func (e *Event) VisitorKey() string {
	if e.AnonymousID != "" {
		return e.AnonymousID
	}
	return e.UserID
}
