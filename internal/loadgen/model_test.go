package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// segmentBatch is the shape of a /v1/batch body, as strict as the model
// promises: decoding with DisallowUnknownFields pins the field set.
type segmentBatch struct {
	Batch  []segmentEvent `json:"batch"`
	SentAt string         `json:"sentAt"`
}

type segmentEvent struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	AnonymousID string         `json:"anonymousId"`
	UserID      *string        `json:"userId"`
	Event       string         `json:"event"`
	Name        string         `json:"name"`
	Properties  map[string]any `json:"properties"`
	Traits      map[string]any `json:"traits"`
	Context     struct {
		IP        string      `json:"ip"`
		UserAgent string      `json:"userAgent"`
		Page      segmentPage `json:"page"`
		Campaign  *struct {
			Source string `json:"source"`
			Medium string `json:"medium"`
			Name   string `json:"name"`
		} `json:"campaign"`
		Library struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"library"`
		Locale string `json:"locale"`
	} `json:"context"`
	Timestamp string `json:"timestamp"`
}

// lightEvent is the part of an event the statistical tests need; it decodes
// much faster than segmentEvent.
type lightEvent struct {
	Type        string  `json:"type"`
	AnonymousID string  `json:"anonymousId"`
	UserID      *string `json:"userId"`
	Event       string  `json:"event"`
	Context     struct {
		Campaign json.RawMessage `json:"campaign"`
	} `json:"context"`
}

func decodeLight(tb testing.TB, body []byte) []lightEvent {
	tb.Helper()
	var b struct {
		Batch []lightEvent `json:"batch"`
	}
	require.NoError(tb, json.Unmarshal(body, &b))
	return b.Batch
}

type segmentPage struct {
	Path     string `json:"path"`
	URL      string `json:"url"`
	Referrer string `json:"referrer"`
	Title    string `json:"title"`
}

func decodeBatch(tb testing.TB, body []byte) segmentBatch {
	tb.Helper()
	require.True(tb, json.Valid(body), "batch is not valid JSON: %.300s", body)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b segmentBatch
	require.NoError(tb, dec.Decode(&b))
	return b
}

var millisTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

var sentAt = time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC)

func TestModelIsDeterministic(t *testing.T) {
	t.Parallel()
	gen := func(cfg ModelConfig) []byte {
		m := NewModel(cfg)
		var out []byte
		for range 5 {
			out = m.AppendBatch(out, 50, sentAt)
		}
		return out
	}
	base := ModelConfig{Seed: 42, Visitors: 1000}
	require.Equal(t, gen(base), gen(base))
	require.NotEqual(t, gen(base), gen(ModelConfig{Seed: 43, Visitors: 1000}))
	require.NotEqual(t, gen(base), gen(ModelConfig{Seed: 42, Visitors: 1000, Stream: 1}))
}

func TestModelStreamsShareVisitors(t *testing.T) {
	t.Parallel()
	users := func(stream int) map[string]string {
		m := NewModel(ModelConfig{Seed: 7, Visitors: 50, Stream: stream})
		ids := map[string]string{}
		for _, e := range decodeLight(t, m.AppendBatch(nil, 1000, sentAt)) {
			ids[e.AnonymousID] = ptr(e.UserID)
		}
		return ids
	}
	a, b := users(0), users(1)
	// With 50 visitors and 1000 events each, both streams meet every visitor,
	// and a visitor is the same person in both.
	require.Len(t, a, 50)
	require.Equal(t, a, b)
}

func TestModelEventSize(t *testing.T) {
	t.Parallel()
	m := NewModel(ModelConfig{Seed: 1})
	const n = 20000
	total, largest := 0, 0
	var buf []byte
	for range n {
		buf = m.AppendEvent(buf[:0], sentAt)
		total += len(buf)
		largest = max(largest, len(buf))
	}
	avg := total / n
	t.Logf("average event %d bytes, largest %d", avg, largest)
	require.GreaterOrEqual(t, avg, 500)
	require.LessOrEqual(t, avg, 700)
	require.Less(t, largest, 1200)
}

func TestModelMix(t *testing.T) {
	t.Parallel()
	m := NewModel(ModelConfig{Seed: 3})
	events := decodeLight(t, m.AppendBatch(nil, 10000, sentAt))
	types := map[string]int{}
	tracks := map[string]int{}
	known := map[string]bool{}
	userOf := map[string]string{}
	campaigns := 0
	for _, e := range events {
		types[e.Type]++
		if e.Type == "track" {
			tracks[e.Event]++
		}
		if prev, seen := userOf[e.AnonymousID]; seen && prev != ptr(e.UserID) {
			t.Fatalf("visitor %s changed userId from %q to %q", e.AnonymousID, prev, ptr(e.UserID))
		}
		userOf[e.AnonymousID] = ptr(e.UserID)
		known[e.AnonymousID] = e.UserID != nil
		if e.Context.Campaign != nil {
			campaigns++
		}
	}
	n := float64(len(events))
	require.InDelta(t, 0.70, float64(types["page"])/n, 0.02)
	require.InDelta(t, 0.22, float64(types["track"])/n, 0.02)
	require.InDelta(t, 0.08, float64(types["identify"])/n, 0.015)
	require.Len(t, types, 3)
	for _, name := range trackNames {
		require.Positive(t, tracks[name], "no %q event", name)
	}
	nKnown := 0
	for _, k := range known {
		if k {
			nKnown++
		}
	}
	require.InDelta(t, 0.10, float64(nKnown)/float64(len(known)), 0.02, "share of known visitors")
	require.InDelta(t, 0.10, float64(campaigns)/n, 0.02, "share of events with a campaign")
}

func TestAppendBatchIsSegmentShaped(t *testing.T) {
	t.Parallel()
	ids := map[string]bool{}
	for stream := range 2 {
		m := NewModel(ModelConfig{Seed: 9, Stream: stream, RunID: "run1"})
		for range 10 {
			body := m.AppendBatch(nil, 100, sentAt)
			b := decodeBatch(t, body)
			require.Len(t, b.Batch, 100)
			require.Equal(t, "2025-03-14T15:09:26.535Z", b.SentAt)
			for _, e := range b.Batch {
				require.NoError(t, checkSegmentEvent(e), "%+v", e)
				if !strings.HasPrefix(e.MessageID, "run1-") || ids[e.MessageID] {
					t.Fatalf("messageId %s: not from the run, or a duplicate", e.MessageID)
				}
				ids[e.MessageID] = true
			}
		}
	}
	require.Len(t, ids, 2000)

	empty := decodeBatch(t, NewModel(ModelConfig{}).AppendBatch(nil, 0, sentAt))
	require.Empty(t, empty.Batch)

	odd := decodeBatch(t, NewModel(ModelConfig{RunID: "a\"b\\c\n d:é"}).AppendBatch(nil, 1, sentAt))
	require.True(t, strings.HasPrefix(odd.Batch[0].MessageID, "a_b_c__d:__-0-"), odd.Batch[0].MessageID)
}

var (
	anonymousIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	userIDRe      = regexp.MustCompile(`^usr_\d+$`)
	emailRe       = regexp.MustCompile(`^[a-z]+\.[a-z]+\d+@[a-z.]+$`)
	ipRe          = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
)

// checkSegmentEvent returns the first way e differs from what the model
// promises. It is plain code rather than assertions because it runs for
// thousands of events.
func checkSegmentEvent(e segmentEvent) error {
	has := func(m map[string]any, keys ...string) bool {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case e.MessageID == "":
		return errors.New("no messageId")
	case !anonymousIDRe.MatchString(e.AnonymousID):
		return fmt.Errorf("anonymousId %q is not a v4 UUID", e.AnonymousID)
	case e.UserID != nil && !userIDRe.MatchString(*e.UserID):
		return fmt.Errorf("userId %q", *e.UserID)
	}
	switch e.Type {
	case "page":
		switch {
		case e.Name == "" || e.Event != "" || e.Traits != nil:
			return fmt.Errorf("page with name %q, event %q, traits %v", e.Name, e.Event, e.Traits)
		case !has(e.Properties, "path", "url", "referrer", "title", "search"):
			return fmt.Errorf("page properties %v", e.Properties)
		case e.Properties["path"] != e.Context.Page.Path || e.Properties["url"] != e.Context.Page.URL:
			return fmt.Errorf("page properties %v differ from context.page %+v", e.Properties, e.Context.Page)
		}
	case "track":
		if !slices.Contains(trackNames[:], e.Event) || len(e.Properties) < 2 || e.Traits != nil {
			return fmt.Errorf("track %q with properties %v, traits %v", e.Event, e.Properties, e.Traits)
		}
	case "identify":
		email, _ := e.Traits["email"].(string)
		plan, _ := e.Traits["plan"].(string)
		if !emailRe.MatchString(email) || e.Traits["name"] == "" || !slices.Contains(plans[:], plan) || e.Properties != nil {
			return fmt.Errorf("identify with traits %v, properties %v", e.Traits, e.Properties)
		}
	default:
		return fmt.Errorf("unexpected type %q", e.Type)
	}
	c := e.Context
	switch {
	case !ipRe.MatchString(c.IP):
		return fmt.Errorf("context.ip %q", c.IP)
	case !slices.Contains(userAgents[:], c.UserAgent):
		return fmt.Errorf("context.userAgent %q", c.UserAgent)
	case !strings.HasPrefix(c.Page.URL, siteURL+c.Page.Path) || c.Page.Title == "":
		return fmt.Errorf("context.page %+v", c.Page)
	case c.Campaign != nil && !strings.Contains(c.Page.URL, "utm_campaign="+c.Campaign.Name):
		return fmt.Errorf("campaign %+v not in %s", *c.Campaign, c.Page.URL)
	case c.Library.Name != "contrail-bench" || c.Library.Version != LibraryVersion:
		return fmt.Errorf("context.library %+v", c.Library)
	case !slices.Contains(locales[:], c.Locale):
		return fmt.Errorf("context.locale %q", c.Locale)
	case !millisTime.MatchString(e.Timestamp):
		return fmt.Errorf("timestamp %q is not RFC 3339 with milliseconds", e.Timestamp)
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return err
	}
	if ts.After(sentAt) || sentAt.Sub(ts) > 5*time.Second {
		return fmt.Errorf("timestamp %s is not shortly before sentAt", e.Timestamp)
	}
	return nil
}

// TestCatalogNeedsNoEscaping guards the model's shortcut of writing catalog
// strings into JSON unquoted.
func TestCatalogNeedsNoEscaping(t *testing.T) {
	t.Parallel()
	var all []string
	all = append(all, siteURL, LibraryVersion, "contrail-bench")
	all = append(all, pageNames[:]...)
	all = append(all, pagePaths[:]...)
	all = append(all, trackNames[:]...)
	for _, p := range products {
		all = append(all, p.sku, p.slug, p.name, p.category)
	}
	for _, c := range categories {
		all = append(all, c.slug, c.name)
	}
	for _, p := range posts {
		all = append(all, p.slug, p.title)
	}
	for _, c := range campaigns {
		all = append(all, c.source, c.medium, c.name, c.referrer)
	}
	all = append(all, searchTerms[:]...)
	all = append(all, referrers[:]...)
	all = append(all, userAgents[:]...)
	all = append(all, locales[:]...)
	all = append(all, firstNames[:]...)
	all = append(all, lastNames[:]...)
	all = append(all, emailDomains[:]...)
	all = append(all, plans[:]...)
	all = append(all, signupMethods[:]...)
	for _, s := range all {
		for i := 0; i < len(s); i++ {
			c := s[i]
			require.True(t, c >= 0x20 && c < 0x7f && c != '"' && c != '\\', "%q needs escaping", s)
		}
	}
	for _, p := range posts {
		require.GreaterOrEqual(t, len(p.slug), 6, "video ids take the first 6 bytes of %q", p.slug)
	}
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestAppendTime(t *testing.T) {
	t.Parallel()
	m := NewModel(ModelConfig{})
	paris := time.FixedZone("CET", 3600)
	for _, tm := range []time.Time{
		time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC),
		time.Date(2025, 3, 14, 15, 9, 26, 999_999_999, time.UTC), // same second: from the cache
		time.Date(2025, 3, 14, 16, 9, 27, 0, paris),
		time.Date(2025, 12, 31, 23, 59, 59, 1_000_000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC),
		{},
	} {
		want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		require.Equal(t, want, string(m.appendTime(nil, tm)))
	}
}
