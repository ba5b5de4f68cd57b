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
	Contrail          *jsonEnrichment `json:"contrail,omitempty"`
}

// jsonEnrichment is the JSON view of an Enrichment.
type jsonEnrichment struct {
	Path           string     `json:"path,omitempty"`
	Browser        string     `json:"browser,omitempty"`
	OS             string     `json:"os,omitempty"`
	Device         string     `json:"device,omitempty"`
	Bot            bool       `json:"bot,omitempty"`
	Channel        string     `json:"channel,omitempty"`
	ReferrerDomain string     `json:"referrerDomain,omitempty"`
	UTMSource      string     `json:"utmSource,omitempty"`
	UTMMedium      string     `json:"utmMedium,omitempty"`
	UTMCampaign    string     `json:"utmCampaign,omitempty"`
	UTMTerm        string     `json:"utmTerm,omitempty"`
	UTMContent     string     `json:"utmContent,omitempty"`
	Country        string     `json:"country,omitempty"`
	SessionID      string     `json:"sessionId,omitempty"`
	SessionStart   *time.Time `json:"sessionStart,omitempty"`
	LandingPage    string     `json:"landingPage,omitempty"`
	PageCount      uint32     `json:"pageCount,omitempty"`
	NewSession     bool       `json:"newSession,omitempty"`
	LeadID         string     `json:"leadId,omitempty"`
	Backfill       bool       `json:"backfill,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// MarshalJSON writes e in the Segment shape, with the four timestamps and,
// once enriched, a "contrail" object with what the pipeline added.
func (e *Event) MarshalJSON() ([]byte, error) {
	var x *jsonEnrichment
	if n := &e.Enrichment; *n != (Enrichment{}) {
		x = &jsonEnrichment{
			Path: n.Path, Browser: n.Browser, OS: n.OS, Device: n.Device, Bot: n.Bot,
			Channel: n.Channel, ReferrerDomain: n.ReferrerDomain, UTMSource: n.UTMSource,
			UTMMedium: n.UTMMedium, UTMCampaign: n.UTMCampaign, UTMTerm: n.UTMTerm, UTMContent: n.UTMContent,
			Country: n.Country, SessionID: n.SessionID, SessionStart: timePtr(n.SessionStart),
			LandingPage: n.LandingPage, PageCount: n.PageCount, NewSession: n.NewSession,
			LeadID: n.LeadID, Backfill: n.Backfill,
		}
	}
	return json.Marshal(jsonEvent{
		Contrail: x,
		Tenant:   e.Tenant, Type: e.Type, MessageID: e.MessageID, AnonymousID: e.AnonymousID, UserID: e.UserID,
		Event: e.Event, Name: e.Name, PreviousID: e.PreviousID, GroupID: e.GroupID, IP: e.IP,
		Timestamp: timePtr(e.Timestamp), OriginalTimestamp: timePtr(e.OriginalTimestamp),
		SentAt: timePtr(e.SentAt), ReceivedAt: timePtr(e.ReceivedAt),
		Properties: e.Properties, Traits: e.Traits, Context: e.Context, Integrations: e.Integrations,
	})
}
