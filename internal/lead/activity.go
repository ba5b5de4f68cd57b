package lead

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/event"
)

// Activity types, as the timeline and the campaigns' triggers name them.
const (
	ActVisitPage     = "visit_page"
	ActClickLink     = "click_link"
	ActFillForm      = "fill_form"
	ActTrack         = "track"
	ActIdentify      = "identify"
	ActCreateLead    = "create_lead"
	ActChangeField   = "change_field"
	ActChangeScore   = "change_score"
	ActAddToList     = "add_to_list"
	ActRemoveList    = "remove_from_list"
	ActMergeLead     = "merge_lead"
	ActCampaignStep  = "campaign_step"
	ActInteresting   = "interesting_moment"
	maxPropertyBytes = 4 << 10
)

// ActivityTypes lists every activity type, for validating a type filter.
var ActivityTypes = []string{
	ActVisitPage, ActClickLink, ActFillForm, ActTrack, ActIdentify, ActCreateLead, ActChangeField,
	ActChangeScore, ActAddToList, ActRemoveList, ActMergeLead, ActCampaignStep, ActInteresting,
}

// linkEvents are the track event names that mean a link click.
var linkEvents = map[string]bool{"Link Clicked": true, "Clicked Link": true, "link_click": true}

// Activity is one entry of a lead's timeline.
type Activity struct {
	// ID identifies the activity within the lead; it is also the cursor
	// that pages past it.
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Backfill marks anonymous history attached when the visitor became
	// this lead.
	Backfill bool `json:"backfill,omitempty"`
	// Event is the track event's name, or the form's id.
	Event   string `json:"event,omitempty"`
	Page    string `json:"page,omitempty"`
	Visitor string `json:"visitor,omitempty"`
	Session string `json:"session,omitempty"`
	// Referrer is the referring domain, Channel its class.
	Referrer   string          `json:"referrer,omitempty"`
	Channel    string          `json:"channel,omitempty"`
	Campaign   string          `json:"utm_campaign,omitempty"`
	Properties json.RawMessage `json:"properties,omitempty"`
	// Field, Old and New describe a field change; List a list change;
	// Change and Score a score change.
	Field  string          `json:"field,omitempty"`
	Old    json.RawMessage `json:"old,omitempty"`
	New    json.RawMessage `json:"new,omitempty"`
	List   string          `json:"list,omitempty"`
	Change int64           `json:"change,omitempty"`
	Score  *int64          `json:"score,omitempty"`
	// Source says where a change came from: "api", "form", "identify",
	// "merge".
	Source string `json:"source,omitempty"`
	// Lead names the other lead of a merge.
	Lead string `json:"lead,omitempty"`
	// CampaignID, Run and Step name the campaign step that made the
	// activity; Result is a step's outcome, Description an interesting
	// moment's text.
	CampaignID  string `json:"campaign_id,omitempty"`
	Run         string `json:"run,omitempty"`
	Step        string `json:"step,omitempty"`
	Result      string `json:"result,omitempty"`
	Description string `json:"description,omitempty"`
}

// activityOf returns the activity an event records, if any: page and
// screen views, tracked events (link clicks among them), form fills and
// identify calls. Alias and group calls only update the profile.
func activityOf(e *event.Event) (Activity, bool) {
	a := Activity{Time: e.Timestamp.UTC(), Backfill: e.Enrichment.Backfill, Visitor: e.AnonymousID, Session: e.Enrichment.SessionID}
	x := &e.Enrichment
	switch e.Type {
	case event.TypePage, event.TypeScreen:
		a.Type, a.Event, a.Page = ActVisitPage, e.Name, x.Path
		a.Referrer, a.Channel, a.Campaign = x.ReferrerDomain, x.Channel, x.UTMCampaign
	case event.TypeTrack:
		a.Type, a.Event = ActTrack, e.Event
		if linkEvents[e.Event] {
			a.Type = ActClickLink
		}
	case event.TypeForm:
		a.Type, a.Event, a.Page = ActFillForm, e.Name, x.Path
	case event.TypeIdentify:
		a.Type = ActIdentify
	default:
		return a, false
	}
	if p := e.Properties; len(p) > 0 && len(p) <= maxPropertyBytes && string(p) != "{}" && string(p) != "null" {
		a.Properties = p
	}
	if e.Type == event.TypeForm && len(e.Traits) <= maxPropertyBytes {
		a.Properties = e.Traits // the fields filled in
	}
	return a, true
}

// activityID encodes an activity key's suffix as its public id.
func activityID(suffix []byte) string { return base64.RawURLEncoding.EncodeToString(suffix) }

// parseActivityID decodes an id made by activityID.
func parseActivityID(id string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != activitySuffixLen {
		return nil, false
	}
	return b, true
}

// ValidActivityType reports whether t names an activity type.
func ValidActivityType(t string) bool {
	for _, x := range ActivityTypes {
		if strings.EqualFold(x, t) {
			return true
		}
	}
	return false
}
