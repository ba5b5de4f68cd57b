package collect

import (
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/tenant"
)

// The collector never builds a tree of the client's JSON. The whole body is
// validated once (gjson.Valid), then each event is scanned once, field by
// field; nested objects (properties, traits, context, integrations) are kept
// as the raw bytes the client sent. All strings and raw values are views of
// the request body: whatever must outlive the request is copied (frames by
// event.AppendFrame, message ids by strings.Clone).

// maxIDLen bounds every identifier.
const maxIDLen = 256

// blockedID reports whether s is refused as an id: the defaults of
// DESIGN.md §6 and the tenant's own list.
func (in *eventInput) blockedID(s string) bool {
	if in.t != nil {
		return in.t.IsBlockedID(s)
	}
	return tenant.IsBlockedID(s)
}

// batchDefaults are what a batch passes down to each of its events.
type batchDefaults struct {
	context      string // raw JSON object, or ""
	integrations string
	sentAt       string
}

// eventInput is everything decodeEvent needs besides the event's own JSON.
type eventInput struct {
	tenant        string
	t             *tenant.Tenant // for its blocked ids; nil: the defaults
	typ           event.Type     // forced by the endpoint, or TypeUnknown to read "type"
	receivedAt    time.Time
	peerIP        string
	maxFutureSkew time.Duration
	maxEventBytes int
	batch         *batchDefaults
}

// idField is an identifier sent as a JSON string or number; null is absent.
// Libraries in loosely typed languages send numeric user ids.
type idField struct {
	s   string
	set bool
}

// rawFields are an event's fields as scanned, before validation.
type rawFields struct {
	typ                                string
	messageID, anon, user, prev, group idField
	event, name                        string
	ts, orig, sent                     string
	props, traits, ctx, integ          string
}

// decodeEvent decodes and validates one event into out. raw must be valid
// JSON. It returns the code of the first problem, or "" when the event is
// acceptable.
func decodeEvent(raw string, in *eventInput, out *event.Event) (Code, string) {
	if in.maxEventBytes > 0 && len(raw) > in.maxEventBytes {
		*out = event.Event{MessageID: messageIDOf(raw)}
		return CodeEventTooLarge, fmt.Sprintf("event is %d bytes, limit %d", len(raw), in.maxEventBytes)
	}
	var f rawFields
	if code, msg := scanEvent(raw, &f); code != "" {
		*out = event.Event{MessageID: messageIDOf(raw)}
		return code, msg
	}
	typ := in.typ
	if typ == event.TypeUnknown {
		typ = event.ParseType(f.typ)
		if typ == event.TypeUnknown {
			*out = event.Event{MessageID: f.messageID.s}
			return CodeInvalidType, fmt.Sprintf("type %q is not one of track, page, screen, identify, alias, group", f.typ)
		}
	}
	blocked := dropBlockedIDs(&f, in)
	*out = event.Event{
		Tenant:       in.tenant,
		Type:         typ,
		MessageID:    f.messageID.s,
		AnonymousID:  f.anon.s,
		UserID:       f.user.s,
		Event:        f.event,
		Name:         f.name,
		PreviousID:   f.prev.s,
		GroupID:      f.group.s,
		ReceivedAt:   in.receivedAt,
		Properties:   bytesOf(f.props),
		Traits:       bytesOf(f.traits),
		Integrations: bytesOf(f.integ),
	}
	if code, msg := validateIDs(&f, typ, blocked, in); code != "" {
		return code, msg
	}
	if typ == event.TypeTrack && strings.TrimSpace(f.event) == "" {
		return CodeMissingEvent, "track needs a non-empty event name"
	}
	ctx := f.ctx
	if in.batch != nil {
		if ctx == "" {
			ctx = in.batch.context
			if ctx != "" {
				out.Context = bytesOf(ctx)
			}
		} else {
			out.Context = mergeObjects(ctx, in.batch.context)
		}
		if f.integ == "" {
			out.Integrations = bytesOf(in.batch.integrations)
		}
	} else {
		out.Context = bytesOf(ctx)
	}
	if ctx != "" && strings.Contains(ctx, `"ip"`) {
		if ip := gjson.Get(ctx, "ip"); ip.Type == gjson.String {
			out.IP = ip.Str
		}
	}
	if out.IP == "" {
		out.IP = in.peerIP
	}
	sentAt := f.sent
	if sentAt == "" && in.batch != nil {
		sentAt = in.batch.sentAt
	}
	return setTimes(out, f.ts, f.orig, sentAt, in.maxFutureSkew)
}

// scanEvent reads the fields of one event and checks their JSON types.
func scanEvent(raw string, f *rawFields) (code Code, msg string) {
	v := gjson.Parse(raw)
	if !v.IsObject() {
		return CodeInvalidEvent, "an event must be a JSON object"
	}
	v.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "type":
			code, msg = stringField(k.Str, v, &f.typ)
		case "messageId":
			code, msg = idValue(k.Str, v, &f.messageID)
		case "anonymousId":
			code, msg = idValue(k.Str, v, &f.anon)
		case "userId":
			code, msg = idValue(k.Str, v, &f.user)
		case "previousId":
			code, msg = idValue(k.Str, v, &f.prev)
		case "groupId":
			code, msg = idValue(k.Str, v, &f.group)
		case "event":
			code, msg = stringField(k.Str, v, &f.event)
		case "name":
			code, msg = stringField(k.Str, v, &f.name)
		case "timestamp":
			code, msg = stringField(k.Str, v, &f.ts)
		case "originalTimestamp":
			code, msg = stringField(k.Str, v, &f.orig)
		case "sentAt":
			code, msg = stringField(k.Str, v, &f.sent)
		case "properties":
			code, msg = objectField(k.Str, v, &f.props)
		case "traits":
			code, msg = objectField(k.Str, v, &f.traits)
		case "context":
			code, msg = objectField(k.Str, v, &f.ctx)
		case "integrations":
			code, msg = objectField(k.Str, v, &f.integ)
		}
		return code == ""
	})
	return code, msg
}

func stringField(name string, v gjson.Result, dst *string) (Code, string) {
	switch v.Type {
	case gjson.String:
		*dst = v.Str
	case gjson.Null:
		*dst = ""
	default:
		return CodeInvalidEvent, fmt.Sprintf("field %s: expected a string, got %.40s", name, v.Raw)
	}
	return "", ""
}

func idValue(name string, v gjson.Result, dst *idField) (Code, string) {
	switch v.Type {
	case gjson.String:
		*dst = idField{s: v.Str, set: true}
	case gjson.Number:
		*dst = idField{s: v.Raw, set: true}
	case gjson.Null:
		*dst = idField{}
	default:
		return CodeInvalidEvent, fmt.Sprintf("field %s: expected a string or a number, got %.40s", name, v.Raw)
	}
	return "", ""
}

func objectField(name string, v gjson.Result, dst *string) (Code, string) {
	switch {
	case v.IsObject():
		*dst = v.Raw
	case v.Type == gjson.Null:
		*dst = ""
	default:
		return CodeInvalidField, fmt.Sprintf("field %s: expected an object, got %.40s", name, v.Raw)
	}
	return "", ""
}

// dropBlockedIDs treats a blocked anonymousId or userId as absent: the value
// is refused as an id (DESIGN.md §6), but an event that has the other id is
// kept. It returns a description of what it dropped, or "".
func dropBlockedIDs(f *rawFields, in *eventInput) string {
	var dropped string
	if f.user.set && in.blockedID(f.user.s) {
		dropped = fmt.Sprintf("userId %q is not a usable id", f.user.s)
		f.user = idField{}
	}
	if f.anon.set && in.blockedID(f.anon.s) {
		dropped = fmt.Sprintf("anonymousId %q is not a usable id", f.anon.s)
		f.anon = idField{}
	}
	return dropped
}

func validateIDs(f *rawFields, typ event.Type, blocked string, in *eventInput) (Code, string) {
	ids := [...]struct {
		name string
		id   idField
	}{{"anonymousId", f.anon}, {"userId", f.user}, {"previousId", f.prev}, {"groupId", f.group}, {"messageId", f.messageID}}
	for _, x := range ids {
		if !x.id.set {
			continue
		}
		if len(x.id.s) > maxIDLen {
			return CodeInvalidID, fmt.Sprintf("%s is longer than %d bytes", x.name, maxIDLen)
		}
		if x.name != "messageId" && in.blockedID(x.id.s) {
			return CodeBlockedID, fmt.Sprintf("%s %q is not a usable id", x.name, x.id.s)
		}
	}
	if f.messageID.set && strings.TrimSpace(f.messageID.s) == "" {
		return CodeInvalidID, "messageId must not be empty"
	}
	if !f.anon.set && !f.user.set {
		if blocked != "" {
			return CodeBlockedID, blocked + "; userId or anonymousId is required"
		}
		return CodeMissingID, "userId or anonymousId is required"
	}
	switch typ {
	case event.TypeAlias:
		if !f.prev.set {
			return CodeMissingPreviousID, "alias needs previousId"
		}
		if !f.user.set {
			return CodeMissingID, "alias needs userId"
		}
	case event.TypeGroup:
		if !f.group.set {
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

// mergeObjects returns the JSON object own with the members of defaults that
// own lacks; own's members win. Both must be JSON objects.
func mergeObjects(own, defaults string) []byte {
	if defaults == "" {
		return bytesOf(own)
	}
	var keysBuf [16]string
	keys := keysBuf[:0]
	gjson.Parse(own).ForEach(func(k, _ gjson.Result) bool {
		keys = append(keys, k.Str)
		return true
	})
	end := strings.LastIndexByte(own, '}')
	out := make([]byte, 0, len(own)+len(defaults))
	out = append(out, own[:end]...)
	n := len(keys)
	gjson.Parse(defaults).ForEach(func(k, v gjson.Result) bool {
		for _, have := range keys {
			if have == k.Str {
				return true
			}
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		n++
		return true
	})
	return append(out, '}')
}

// messageIDOf returns the messageId of a rejected event, when it has one,
// so that the answer names the event the client sent.
func messageIDOf(raw string) string {
	v := gjson.Get(raw, "messageId")
	if v.Type == gjson.String || v.Type == gjson.Number {
		return v.String()
	}
	return ""
}

// bytesOf returns the bytes of s without copying, or nil for "". The result
// must only be read: it aliases the request body.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
