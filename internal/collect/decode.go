package collect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/event"
)

// wireBatch is the body of /v1/batch, /v1/b and a batched beacon.
type wireBatch struct {
	Batch        []json.RawMessage `json:"batch"`
	Context      json.RawMessage   `json:"context"`
	Integrations json.RawMessage   `json:"integrations"`
	WriteKey     string            `json:"writeKey"`
	SentAt       string            `json:"sentAt"`
}

// wireEvent is one call as Segment's libraries send it.
type wireEvent struct {
	Type              string          `json:"type"`
	MessageID         wireID          `json:"messageId"`
	AnonymousID       wireID          `json:"anonymousId"`
	UserID            wireID          `json:"userId"`
	Event             string          `json:"event"`
	Name              string          `json:"name"`
	PreviousID        wireID          `json:"previousId"`
	GroupID           wireID          `json:"groupId"`
	Timestamp         string          `json:"timestamp"`
	OriginalTimestamp string          `json:"originalTimestamp"`
	SentAt            string          `json:"sentAt"`
	Properties        json.RawMessage `json:"properties"`
	Traits            json.RawMessage `json:"traits"`
	Context           json.RawMessage `json:"context"`
	Integrations      json.RawMessage `json:"integrations"`
	WriteKey          string          `json:"writeKey"`
}

// wireID is an identifier sent as a JSON string or number; null is absent.
// Libraries in loosely typed languages send numeric user ids.
type wireID struct {
	s   string
	set bool
}

func (id *wireID) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		if err := json.Unmarshal(b, &id.s); err != nil {
			return err
		}
		id.set = true
	case bytes.Equal(b, []byte("null")):
		*id = wireID{}
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		id.s, id.set = string(b), true
	default:
		return fmt.Errorf("id must be a string or a number, got %.20s", b)
	}
	return nil
}

// maxIDLen bounds every identifier.
const maxIDLen = 256

// blockedIDs are values that libraries send when the real id is missing;
// accepting them would merge unrelated people (DESIGN.md §6).
var blockedIDs = [...]string{"anonymous", "null", "undefined", "0", "[object object]", "nil", "none", "-1"}

func isBlockedID(s string) bool {
	t := strings.TrimSpace(s)
	if t == "" {
		return true
	}
	for _, b := range blockedIDs {
		if strings.EqualFold(t, b) {
			return true
		}
	}
	return false
}

// batchDefaults are what a batch passes down to each of its events.
type batchDefaults struct {
	context      json.RawMessage
	contextMap   map[string]json.RawMessage // parsed once per batch, on demand
	integrations json.RawMessage
	sentAt       string
}

// eventInput is everything decodeEvent needs besides the event's own JSON.
type eventInput struct {
	tenant        string
	typ           event.Type // forced by the endpoint, or TypeUnknown to read "type"
	receivedAt    time.Time
	peerIP        string
	maxFutureSkew time.Duration
	maxEventBytes int
	batch         *batchDefaults
}

// decodeEvent decodes and validates one event into out. It returns the code
// of the first problem, or "" when the event is acceptable.
func decodeEvent(raw []byte, in *eventInput, out *event.Event) (Code, string) {
	if in.maxEventBytes > 0 && len(raw) > in.maxEventBytes {
		return CodeEventTooLarge, fmt.Sprintf("event is %d bytes, limit %d", len(raw), in.maxEventBytes)
	}
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return CodeInvalidEvent, jsonErrorMessage(err)
	}
	typ := in.typ
	if typ == event.TypeUnknown {
		typ = event.ParseType(w.Type)
		if typ == event.TypeUnknown {
			return CodeInvalidType, fmt.Sprintf("type %q is not one of track, page, screen, identify, alias, group", w.Type)
		}
	}
	*out = event.Event{
		Tenant:       in.tenant,
		Type:         typ,
		MessageID:    w.MessageID.s,
		AnonymousID:  w.AnonymousID.s,
		UserID:       w.UserID.s,
		Event:        w.Event,
		Name:         w.Name,
		PreviousID:   w.PreviousID.s,
		GroupID:      w.GroupID.s,
		ReceivedAt:   in.receivedAt,
		Properties:   w.Properties,
		Traits:       w.Traits,
		Context:      w.Context,
		Integrations: w.Integrations,
	}
	if code, msg := validateIDs(&w, typ); code != "" {
		return code, msg
	}
	if typ == event.TypeTrack && strings.TrimSpace(w.Event) == "" {
		return CodeMissingEvent, "track needs a non-empty event name"
	}
	for _, f := range [...]struct {
		name string
		v    json.RawMessage
	}{{"properties", w.Properties}, {"traits", w.Traits}, {"context", w.Context}, {"integrations", w.Integrations}} {
		if !isObjectOrNull(f.v) {
			return CodeInvalidField, f.name + " must be an object"
		}
	}
	if isNull(out.Properties) {
		out.Properties = nil
	}
	if isNull(out.Traits) {
		out.Traits = nil
	}
	if isNull(out.Integrations) {
		out.Integrations = nil
	}
	if in.batch != nil {
		var err error
		if out.Context, err = in.batch.mergeContext(out.Context); err != nil {
			return CodeInvalidField, "context: " + err.Error()
		}
		if len(out.Integrations) == 0 {
			out.Integrations = in.batch.integrations
		}
	} else if isNull(out.Context) {
		out.Context = nil
	}
	out.IP = contextIP(out.Context)
	if out.IP == "" {
		out.IP = in.peerIP
	}
	sentAt := w.SentAt
	if sentAt == "" && in.batch != nil {
		sentAt = in.batch.sentAt
	}
	if code, msg := setTimes(out, w.Timestamp, w.OriginalTimestamp, sentAt, in.maxFutureSkew); code != "" {
		return code, msg
	}
	return "", ""
}

func validateIDs(w *wireEvent, typ event.Type) (Code, string) {
	ids := [...]struct {
		name string
		id   wireID
	}{{"anonymousId", w.AnonymousID}, {"userId", w.UserID}, {"previousId", w.PreviousID}, {"groupId", w.GroupID}, {"messageId", w.MessageID}}
	for _, f := range ids {
		if !f.id.set {
			continue
		}
		if len(f.id.s) > maxIDLen {
			return CodeInvalidID, fmt.Sprintf("%s is longer than %d bytes", f.name, maxIDLen)
		}
		if f.name != "messageId" && isBlockedID(f.id.s) {
			return CodeBlockedID, fmt.Sprintf("%s %q is not a usable id", f.name, f.id.s)
		}
	}
	if w.MessageID.set && strings.TrimSpace(w.MessageID.s) == "" {
		return CodeInvalidID, "messageId must not be empty"
	}
	if !w.AnonymousID.set && !w.UserID.set {
		return CodeMissingID, "userId or anonymousId is required"
	}
	switch typ {
	case event.TypeAlias:
		if !w.PreviousID.set {
			return CodeMissingPreviousID, "alias needs previousId"
		}
		if !w.UserID.set {
			return CodeMissingID, "alias needs userId"
		}
	case event.TypeGroup:
		if !w.GroupID.set {
			return CodeMissingGroupID, "group needs groupId"
		}
	}
	return "", ""
}

// setTimes fills the four timestamps (Segment's semantics):
//   - originalTimestamp is the client's clock at the call: "originalTimestamp",
//     else "timestamp";
//   - with sentAt, timestamp = receivedAt − (sentAt − originalTimestamp), which
//     corrects the client's clock skew and still places historical imports at
//     their time;
//   - without sentAt, an explicit time is taken as it is (historical import);
//   - without any, timestamp = receivedAt;
//   - a timestamp later than receivedAt + maxFutureSkew is clamped to receivedAt.
func setTimes(e *event.Event, ts, orig, sent string, maxFutureSkew time.Duration) (Code, string) {
	var err error
	if orig == "" {
		orig = ts
	}
	if e.OriginalTimestamp, err = parseTime(orig); err != nil {
		return CodeInvalidTimestamp, "originalTimestamp/timestamp: " + err.Error()
	}
	if e.SentAt, err = parseTime(sent); err != nil {
		return CodeInvalidTimestamp, "sentAt: " + err.Error()
	}
	switch {
	case e.OriginalTimestamp.IsZero():
		e.Timestamp = e.ReceivedAt
	case !e.SentAt.IsZero():
		e.Timestamp = e.ReceivedAt.Add(-e.SentAt.Sub(e.OriginalTimestamp))
	default:
		e.Timestamp = e.OriginalTimestamp
	}
	if e.Timestamp.After(e.ReceivedAt.Add(maxFutureSkew)) {
		e.Timestamp = e.ReceivedAt
	}
	return "", ""
}

var timeLayouts = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02"}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

// mergeContext returns the event's context with the batch's context keys it
// lacks; the event's own keys win.
func (b *batchDefaults) mergeContext(own json.RawMessage) (json.RawMessage, error) {
	if isNull(own) {
		own = nil
	}
	if len(b.context) == 0 || isNull(b.context) {
		return own, nil
	}
	if len(own) == 0 {
		return b.context, nil
	}
	if b.contextMap == nil {
		if err := json.Unmarshal(b.context, &b.contextMap); err != nil {
			return nil, err
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(own, &m); err != nil {
		return nil, err
	}
	added := false
	for k, v := range b.contextMap {
		if _, ok := m[k]; !ok {
			m[k] = v
			added = true
		}
	}
	if !added {
		return own, nil
	}
	return json.Marshal(m)
}

// contextIP returns context.ip when the client set it.
func contextIP(ctx json.RawMessage) string {
	if !bytes.Contains(ctx, []byte(`"ip"`)) {
		return ""
	}
	var c struct {
		IP string `json:"ip"`
	}
	if json.Unmarshal(ctx, &c) != nil {
		return ""
	}
	return c.IP
}

func isNull(b json.RawMessage) bool { return len(b) == 4 && string(b) == "null" }

func isObjectOrNull(b json.RawMessage) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) == 0 || b[0] == '{' || isNull(b)
}

// jsonErrorMessage turns a decoding error into a short message for clients.
func jsonErrorMessage(err error) string {
	switch e := err.(type) {
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %s: expected %s, got JSON %s", e.Field, e.Type, e.Value)
	case *json.SyntaxError:
		return "malformed JSON at byte " + strconv.FormatInt(e.Offset, 10) + ": " + e.Error()
	}
	return err.Error()
}
