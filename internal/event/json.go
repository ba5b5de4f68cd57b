package event

import (
	"encoding/json"
	"time"
)

// jsonEvent is the Segment-shaped JSON view of an Event, for tools (tail)
// and the API. Zero times and empty fields are left out.
type jsonEvent struct {
	Tenant            string          `json:"tenant,omitempty"`
	Type              Type            `json:"type"`
	MessageID         string          `json:"messageId"`
	AnonymousID       string          `json:"anonymousId,omitempty"`
	UserID            string          `json:"userId,omitempty"`
	Event             string          `json:"event,omitempty"`
	Name              string          `json:"name,omitempty"`
	PreviousID        string          `json:"previousId,omitempty"`
	GroupID           string          `json:"groupId,omitempty"`
	IP                string          `json:"ip,omitempty"`
	Timestamp         *time.Time      `json:"timestamp,omitempty"`
	OriginalTimestamp *time.Time      `json:"originalTimestamp,omitempty"`
	SentAt            *time.Time      `json:"sentAt,omitempty"`
	ReceivedAt        *time.Time      `json:"receivedAt,omitempty"`
	Properties        json.RawMessage `json:"properties,omitempty"`
	Traits            json.RawMessage `json:"traits,omitempty"`
	Context           json.RawMessage `json:"context,omitempty"`
	Integrations      json.RawMessage `json:"integrations,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// MarshalJSON writes e in the Segment shape, with the four timestamps.
func (e *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonEvent{
		Tenant: e.Tenant, Type: e.Type, MessageID: e.MessageID, AnonymousID: e.AnonymousID, UserID: e.UserID,
		Event: e.Event, Name: e.Name, PreviousID: e.PreviousID, GroupID: e.GroupID, IP: e.IP,
		Timestamp: timePtr(e.Timestamp), OriginalTimestamp: timePtr(e.OriginalTimestamp),
		SentAt: timePtr(e.SentAt), ReceivedAt: timePtr(e.ReceivedAt),
		Properties: e.Properties, Traits: e.Traits, Context: e.Context, Integrations: e.Integrations,
	})
}
