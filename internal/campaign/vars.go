package campaign

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/contrailhq/contrail/internal/lead"
)

// vars are the variables of expressions and templates: event (the
// activity), lead (the profile as it stands) and run. The maps are built
// on first use and shared by every campaign an activity is tested against.
type vars struct {
	act    *lead.Activity
	tokens map[string]string // a campaign request's, as event.tokens
	event  map[string]any
	lead   func() (*lead.Lead, error)
	lv     map[string]any
	leadOK bool
	run    *Run
	rv     map[string]any
	// The maps as CEL values, converted once however many expressions
	// read them.
	eventVal, leadVal, runVal ref.Val
}

var _ interpreter.Activation = (*vars)(nil)

// ResolveName implements interpreter.Activation.
func (v *vars) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		if v.eventVal == nil {
			v.eventVal = types.DefaultTypeAdapter.NativeToValue(v.eventMap())
		}
		return v.eventVal, true
	case "lead":
		if v.leadVal == nil {
			v.leadVal = types.DefaultTypeAdapter.NativeToValue(v.leadMap())
		}
		return v.leadVal, true
	case "run":
		if v.runVal == nil {
			v.runVal = types.DefaultTypeAdapter.NativeToValue(v.runMap())
		}
		return v.runVal, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (v *vars) Parent() interpreter.Activation { return nil }

func (v *vars) eventMap() map[string]any {
	if v.event != nil {
		return v.event
	}
	m := map[string]any{}
	if a := v.act; a != nil {
		m = activityMap(a)
	}
	if v.tokens != nil {
		t := make(map[string]any, len(v.tokens))
		for k, s := range v.tokens {
			t[k] = s
		}
		m["tokens"] = t
	}
	v.event = m
	return m
}

// activityMap is an activity as expressions see it. A page visit's
// properties carry its path even when the client did not send one.
func activityMap(a *lead.Activity) map[string]any {
	m := map[string]any{"type": a.Type, "time": a.Time, "backfill": a.Backfill}
	set := func(k, s string) {
		if s != "" {
			m[k] = s
		}
	}
	set("id", a.ID)
	set("event", a.Event)
	set("name", a.Event)
	set("page", a.Page)
	set("path", a.Page)
	set("visitor", a.Visitor)
	set("session", a.Session)
	set("referrer", a.Referrer)
	set("channel", a.Channel)
	set("utm_campaign", a.Campaign)
	set("field", a.Field)
	set("list", a.List)
	set("source", a.Source)
	set("campaign_id", a.CampaignID)
	if a.Type == lead.ActFillForm {
		set("form", a.Event)
	}
	if a.Type == lead.ActChangeScore {
		m["change"] = a.Change
		if a.Score != nil {
			m["score"] = *a.Score
		}
	}
	if a.Old != nil {
		m["old"] = decodeJSON(a.Old)
	}
	if a.New != nil {
		m["new"] = decodeJSON(a.New)
	}
	props, _ := decodeJSON(a.Properties).(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	if a.Type == lead.ActVisitPage && a.Page != "" {
		if _, ok := props["path"]; !ok {
			props["path"] = a.Page
		}
	}
	m["properties"] = props
	return m
}

func decodeJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return normalize(v)
}

// normalize turns JSON numbers that are whole into int64, so that
// lead.traits.employees > 50 compares integers as a marketer expects.
func normalize(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

func (v *vars) leadMap() map[string]any {
	if v.leadOK {
		return v.lv
	}
	v.leadOK = true
	v.lv = map[string]any{}
	if v.lead == nil {
		return v.lv
	}
	l, err := v.lead()
	if err != nil || l == nil {
		return v.lv
	}
	traits := make(map[string]any, len(l.Traits))
	for k, raw := range l.Traits {
		traits[k] = decodeJSON(raw)
	}
	lists := make([]any, len(l.Lists))
	for i, s := range l.Lists {
		lists[i] = s
	}
	v.lv = map[string]any{
		"id": l.ID, "user_id": l.UserID, "email": l.Email, "score": l.Score, "traits": traits, "lists": lists,
		"created_at": l.CreatedAt, "first_seen": l.FirstSeen, "last_seen": l.LastSeen,
		"unsubscribed": l.Unsubscribed, "do_not_contact": l.DoNotContact,
	}
	return v.lv
}

// reload forgets the lead's map: a step changed the lead.
func (v *vars) reload() { v.leadOK, v.lv, v.leadVal, v.runVal, v.rv = false, nil, nil, nil, nil }

func (v *vars) runMap() map[string]any {
	if v.rv != nil {
		return v.rv
	}
	m := map[string]any{}
	if r := v.run; r != nil {
		m["id"], m["campaign"], m["version"], m["timed_out"], m["started_at"] = r.ID, r.Campaign, int64(r.Version), r.TimedOut, r.Started
		t := make(map[string]any, len(r.Tokens))
		for k, s := range r.Tokens {
			t[k] = s
			if _, taken := m[k]; !taken {
				m[k] = s
			}
		}
		m["tokens"] = t
	}
	v.rv = m
	return m
}

// Token implements Tokens: {{lead.x}} is a profile field (id, email,
// user_id, score) or a trait; {{event.x}} a field of the activity;
// {{run.x}} a field of the run or one of its tokens.
func (v *vars) Token(root, path string) (string, bool) {
	var m map[string]any
	switch root {
	case "lead":
		m = v.leadMap()
		if _, ok := m[firstPart(path)]; !ok {
			if traits, ok := m["traits"].(map[string]any); ok {
				m = traits
			}
		}
	case "event":
		m = v.eventMap()
	case "run":
		m = v.runMap()
	}
	val, ok := lookup(m, path)
	if !ok || val == nil {
		return "", false
	}
	return text(val), true
}

func firstPart(path string) string {
	first, _, _ := strings.Cut(path, ".")
	return first
}

// lookup follows a dotted path through nested maps.
func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for part := range strings.SplitSeq(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// text renders a value for a template: strings as they are, anything
// else as JSON.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
