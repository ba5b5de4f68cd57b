package lead

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// record is a lead's profile as the lead shard stores it. A merged or
// erased lead keeps a small tombstone: MergedInto, or Erased.
type record struct {
	ID     string           `json:"id"`
	UserID string           `json:"user_id,omitempty"`
	Email  string           `json:"email,omitempty"`
	Score  int64            `json:"score,omitempty"`
	Traits map[string]trait `json:"traits,omitempty"`
	Lists  []string         `json:"lists,omitempty"` // sorted
	// Visitors are the devices linked to the lead, oldest first, at most
	// maxVisitors (the oldest are dropped).
	Visitors     []string `json:"visitors,omitempty"`
	Created      int64    `json:"created,omitempty"` // µs since the epoch
	FirstSeen    int64    `json:"first_seen,omitempty"`
	LastSeen     int64    `json:"last_seen,omitempty"`
	Unsubscribed bool     `json:"unsubscribed,omitempty"`
	DoNotContact bool     `json:"do_not_contact,omitempty"`
	MergedFrom   []string `json:"merged_from,omitempty"`
	// OtherEmails are the emails of merged leads that the index points here.
	OtherEmails []string `json:"other_emails,omitempty"`
	// Activities counts the stored activities; Oldest is the time of the
	// oldest one (µs), so trimming knows when it has work to do.
	Activities int   `json:"activities,omitempty"`
	Oldest     int64 `json:"oldest,omitempty"`
	// Waiting counts the lead's campaign runs waiting for an activity.
	Waiting int `json:"waiting,omitempty"`

	MergedInto string `json:"merged_into,omitempty"`
	Erased     int64  `json:"erased,omitempty"` // µs; non-zero on an erasure tombstone
}

// trait is one profile field with the event time of the write that set it:
// a later write by event time wins, whatever order the writes arrive in.
type trait struct {
	V json.RawMessage `json:"v"`
	T int64           `json:"t"` // µs since the epoch
}

// maxVisitors bounds the devices remembered per lead.
const maxVisitors = 100

func decodeRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding lead record: %w", err)
	}
	return &r, nil
}

func (r *record) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("lead: encoding a record cannot fail: %v", err)) // only plain types and valid RawMessages
	}
	return b
}

// clone returns a copy that can be changed without touching r.
func (r *record) clone() *record {
	c := *r
	if r.Traits != nil {
		c.Traits = make(map[string]trait, len(r.Traits)+2)
		for k, v := range r.Traits {
			c.Traits[k] = v
		}
	}
	c.Lists = slices.Clone(r.Lists)
	c.Visitors = slices.Clone(r.Visitors)
	c.MergedFrom = slices.Clone(r.MergedFrom)
	c.OtherEmails = slices.Clone(r.OtherEmails)
	return &c
}

// tombstone reports whether the record is a merged or erased lead's.
func (r *record) tombstone() bool { return r.MergedInto != "" || r.Erased != 0 }

// seen widens the first and last seen times to t.
func (r *record) seen(t int64) {
	if r.FirstSeen == 0 || t < r.FirstSeen {
		r.FirstSeen = t
	}
	if t > r.LastSeen {
		r.LastSeen = t
	}
}

// addVisitor links a device; it reports whether it is new.
func (r *record) addVisitor(v string) bool {
	if v == "" || slices.Contains(r.Visitors, v) {
		return false
	}
	r.Visitors = append(r.Visitors, v)
	if len(r.Visitors) > maxVisitors {
		r.Visitors = slices.Delete(r.Visitors, 0, len(r.Visitors)-maxVisitors)
	}
	return true
}

// setTrait writes a field at event time t, unless a later write holds it.
// It returns the old value when the value changed (nil old: the field was
// absent), and whether it changed. A null value removes the field.
func (r *record) setTrait(name string, v json.RawMessage, t int64) (old json.RawMessage, changed bool) {
	cur, ok := r.Traits[name]
	if ok && cur.T > t {
		return nil, false
	}
	null := len(v) == 0 || string(v) == "null"
	if null {
		if !ok {
			return nil, false
		}
		delete(r.Traits, name)
		return cur.V, true
	}
	if r.Traits == nil {
		r.Traits = map[string]trait{}
	}
	r.Traits[name] = trait{V: append(json.RawMessage(nil), v...), T: t}
	if ok && bytes.Equal(cur.V, v) {
		return nil, false
	}
	return cur.V, true
}

// setList adds the lead to a list or removes it, keeping Lists sorted.
func (r *record) setList(id string, member bool) bool {
	i, ok := slices.BinarySearch(r.Lists, id)
	switch {
	case member && !ok:
		r.Lists = slices.Insert(r.Lists, i, id)
		return true
	case !member && ok:
		r.Lists = slices.Delete(r.Lists, i, i+1)
		return true
	}
	return false
}

// Lead is a lead's profile as the API shows it.
type Lead struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Score  int64  `json:"score"`
	// Traits are the profile's fields; TraitTimes the event time of the
	// write that set each.
	Traits       map[string]json.RawMessage `json:"traits"`
	TraitTimes   map[string]time.Time       `json:"traits_updated_at"`
	Lists        []string                   `json:"lists"`
	Visitors     []string                   `json:"visitors"`
	CreatedAt    time.Time                  `json:"created_at"`
	FirstSeen    time.Time                  `json:"first_seen"`
	LastSeen     time.Time                  `json:"last_seen"`
	Unsubscribed bool                       `json:"unsubscribed"`
	DoNotContact bool                       `json:"do_not_contact"`
	MergedFrom   []string                   `json:"merged_from,omitempty"`
	Activities   int                        `json:"activity_count"`
}

func micros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func (r *record) view() *Lead {
	l := &Lead{
		ID: r.ID, UserID: r.UserID, Email: r.Email, Score: r.Score,
		Traits: make(map[string]json.RawMessage, len(r.Traits)), TraitTimes: make(map[string]time.Time, len(r.Traits)),
		Lists: r.Lists, Visitors: r.Visitors,
		CreatedAt: micros(r.Created), FirstSeen: micros(r.FirstSeen), LastSeen: micros(r.LastSeen),
		Unsubscribed: r.Unsubscribed, DoNotContact: r.DoNotContact, MergedFrom: r.MergedFrom, Activities: r.Activities,
	}
	for k, v := range r.Traits {
		l.Traits[k], l.TraitTimes[k] = v.V, micros(v.T)
	}
	if l.Lists == nil {
		l.Lists = []string{}
	}
	if l.Visitors == nil {
		l.Visitors = []string{}
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = l.FirstSeen
	}
	return l
}
