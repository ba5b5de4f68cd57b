// Package campaign runs trigger campaigns in the lead shards (DESIGN.md
// §8): the campaign model and its validation, compiled expressions, the
// trigger index, flow execution with waits and choices, durable timers and
// the qualification rules. Internal effects are applied through the lead
// shard in the same batch as the run's progress; external effects
// (webhooks, email) are handed to the senders with a stable idempotency key.
package campaign

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Spec is a campaign as a marketer writes it, in JSON or YAML (one schema).
type Spec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Triggers start a run when any of them matches an activity of a lead.
	Triggers []Trigger `json:"triggers"`
	// Filters are expressions over lead (and event) that must all hold
	// when the lead enters; they are not checked again later.
	Filters []string `json:"filters,omitempty"`
	// Flow is the steps a run takes, in order.
	Flow []Step `json:"flow"`
	// Qualification says how often a lead may enter: "once" (the
	// default), "every_time", "once_per" (with QualificationPeriod) or
	// "one_active" (not while a run of the lead is active).
	Qualification       string `json:"qualification,omitempty"`
	QualificationPeriod string `json:"qualification_period,omitempty"`
	// CommunicationLimits bound the emails a lead is sent, from any
	// campaign, when this campaign sends one.
	CommunicationLimits *CommunicationLimits `json:"communication_limits,omitempty"`
	// PersonRestriction narrows who may enter.
	PersonRestriction *PersonRestriction `json:"person_restriction,omitempty"`
	// Priority orders the campaigns one activity triggers (highest first).
	Priority int `json:"priority,omitempty"`
	// Backfill says whether a lead's anonymous history, attached when the
	// visitor became the lead, may trigger the campaign, and how old it may
	// be (at most the tenant's window).
	Backfill *Backfill `json:"backfill,omitempty"`
}

// Trigger is an activity type with a constraint.
type Trigger struct {
	Type string `json:"type"`
	// Constraint is an expression over event and lead that must hold.
	Constraint string `json:"constraint,omitempty"`
	// Event, List, Field and Form narrow the trigger by the activity's
	// event name, list, changed field or form id.
	Event string `json:"event,omitempty"`
	List  string `json:"list,omitempty"`
	Field string `json:"field,omitempty"`
	Form  string `json:"form,omitempty"`
	// MinCount, with Within, fires only when the lead has done such an
	// activity (matching the same constraint) at least MinCount times in
	// the window: a duration such as "24h" or "7d", or "today" in the
	// tenant's time zone.
	MinCount int    `json:"min_count,omitempty"`
	Within   string `json:"within,omitempty"`
}

// Step is one step of a flow. Type says which of the other fields apply.
type Step struct {
	Type string `json:"type"`
	// change_field
	Field string          `json:"field,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// change_score
	Change int64 `json:"change,omitempty"`
	// add_to_list, remove_from_list
	List string `json:"list,omitempty"`
	// interesting_moment
	Description string `json:"description,omitempty"`
	// request_campaign (one campaign), remove_from_flow (none means this
	// one)
	Campaign  string            `json:"campaign,omitempty"`
	Campaigns []string          `json:"campaigns,omitempty"`
	Tokens    map[string]string `json:"tokens,omitempty"`
	// wait: a Duration, or Until a time (RFC 3339); then, if given, the
	// next moment on Weekdays ("mon".."sun") within Hours, in the
	// tenant's time zone.
	Duration string   `json:"duration,omitempty"`
	Until    string   `json:"until,omitempty"`
	Weekdays []string `json:"weekdays,omitempty"`
	Hours    *Hours   `json:"hours,omitempty"`
	// wait_for_event: the activity awaited, and how long at most.
	Trigger *Trigger `json:"trigger,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
	// choice: the first branch whose condition holds, else Default.
	Branches []Branch `json:"branches,omitempty"`
	Default  []Step   `json:"default,omitempty"`
	// call_webhook
	URL         string            `json:"url,omitempty"`
	Method      string            `json:"method,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        string            `json:"body,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	TimeoutMS   int               `json:"timeout_ms,omitempty"`
	// send_email
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
}

// Branch is one arm of a choice.
type Branch struct {
	If   string `json:"if"`
	Flow []Step `json:"flow"`
}

// Hours is a daily window [From, To) in whole hours, 0..24.
type Hours struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// CommunicationLimits bound the emails per lead.
type CommunicationLimits struct {
	PerDay  int `json:"per_day,omitempty"`
	PerWeek int `json:"per_week,omitempty"`
}

// PersonRestriction narrows who may enter a campaign.
type PersonRestriction struct {
	// RequireEmail admits only leads with an email.
	RequireEmail bool `json:"require_email,omitempty"`
	// Lists admits only members of one of them; ExcludeLists keeps their
	// members out.
	Lists        []string `json:"lists,omitempty"`
	ExcludeLists []string `json:"exclude_lists,omitempty"`
	// ExcludeDoNotContact keeps out leads flagged do-not-contact or
	// unsubscribed.
	ExcludeDoNotContact bool `json:"exclude_do_not_contact,omitempty"`
}

// Backfill allows anonymous history to trigger a campaign.
type Backfill struct {
	Allow  bool   `json:"allow"`
	MaxAge string `json:"max_age,omitempty"`
}

// Trigger types, the snake_case names of DESIGN.md §8.
const (
	TrigVisitsWebPage     = "visits_web_page"
	TrigClicksLink        = "clicks_link"
	TrigFillsOutForm      = "fills_out_form"
	TrigEventTracked      = "event_tracked"
	TrigDataValueChanges  = "data_value_changes"
	TrigScoreChanged      = "score_changed"
	TrigAddedToList       = "added_to_list"
	TrigRemovedFromList   = "removed_from_list"
	TrigLeadCreated       = "lead_created"
	TrigCampaignRequested = "campaign_requested"
)

// Step types.
const (
	StepChangeField       = "change_field"
	StepChangeScore       = "change_score"
	StepAddToList         = "add_to_list"
	StepRemoveFromList    = "remove_from_list"
	StepInterestingMoment = "interesting_moment"
	StepRequestCampaign   = "request_campaign"
	StepRemoveFromFlow    = "remove_from_flow"
	StepWait              = "wait"
	StepWaitForEvent      = "wait_for_event"
	StepChoice            = "choice"
	StepCallWebhook       = "call_webhook"
	StepSendEmail         = "send_email"
)

// Qualification rules.
const (
	QualOnce      = "once"
	QualEveryTime = "every_time"
	QualOncePer   = "once_per"
	QualOneActive = "one_active"
)

// FieldError is one problem of a campaign, at a path such as
// "flow[1].url"; an expression's problem carries its line and column.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	// At is where in the submitted document the problem is: the value at
	// Path (or its nearest parent that the document holds). Locate sets
	// it; Line and Column, for an expression, count within it.
	At *Position `json:"at,omitempty"`
}

// Position is a line and column in a document, from 1.
type Position struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

func (e FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %d:%d: %s", e.Path, e.Line, e.Column, e.Message)
	}
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ValidationError lists every problem found in a campaign.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid campaign: " + strings.Join(parts, "; ")
}

// yamlProblem turns a YAML error into a problem, with its line when the
// error names one.
func yamlProblem(err error) FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := FieldError{Message: "reading the campaign: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, _, ok := strings.Cut(rest, ":"); ok {
			if line, err := strconv.Atoi(n); err == nil {
				p.Line = line
			}
		}
	}
	return p
}

// jsonProblem turns a decoding error into a problem with its position.
func jsonProblem(data []byte, err error) FieldError {
	var off int64 = -1
	var path string
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off, path = e.Offset, e.Field
		err = fmt.Errorf("want %s, got %s", e.Type, e.Value)
	}
	p := FieldError{Path: path, Message: err.Error()}
	if strings.HasPrefix(p.Message, "json: unknown field ") {
		p.Message = "unknown field " + strings.TrimPrefix(p.Message, "json: unknown field ")
	}
	if off >= 0 && off <= int64(len(data)) {
		p.Line = 1 + bytes.Count(data[:off], []byte("\n"))
		p.Column = int(off) - bytes.LastIndexByte(data[:off], '\n')
	}
	return p
}
