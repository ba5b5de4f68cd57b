package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// livePage shows events as they arrive; the page's script reads
// /live/stream.
func (s *Server) livePage(w http.ResponseWriter, rq *request) {
	s.render(w, rq, http.StatusOK, "live", page{Title: "Live events", Nav: "live", Data: s.setupFor(rq)})
}

// liveEvent is one row of the live view.
type liveEvent struct {
	Type    string `json:"type"`
	Name    string `json:"name,omitempty"`
	Visitor string `json:"visitor,omitempty"`
	Lead    string `json:"lead,omitempty"`
	Page    string `json:"page,omitempty"`
	Time    string `json:"time"`
	Seq     uint64 `json:"seq"`
}

// liveStream relays the tenant's tail (GET /api/v1/tail) to the browser
// as server-sent events, one per event, with only what the view shows.
// It starts a few minutes back so that the view is not empty.
func (s *Server) liveStream(w http.ResponseWriter, rq *request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	q := url.Values{"since": {"5m"}}
	if t := rq.URL.Query().Get("type"); t != "" {
		q.Set("type", t)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	sse := &sseWriter{w: w, flusher: flusher, loc: rq.tenant.Settings.Location()}
	// Comments keep proxies from closing an idle stream.
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(20 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-rq.Context().Done():
				return
			case <-t.C:
				sse.comment()
			}
		}
	}()
	if err := s.stream(rq.Context(), &rq.sess, call{method: "GET", path: "/api/v1/tail", query: q}, sse); err != nil {
		s.deps.Logger.Warn("live stream ended", "err", err)
	}
}

// sseWriter turns the tail's NDJSON lines into server-sent events. The
// tail writes whole lines, one per Write; it is written by the tail and
// by the keep-alive, so it serialises them.
type sseWriter struct {
	w       http.ResponseWriter
	flusher http.Flusher
	loc     *time.Location
	mu      sync.Mutex
	status  int
	header  http.Header
	buf     bytes.Buffer
}

// Header is the tail's own: its NDJSON content type must not reach the
// browser, which was told text/event-stream.
func (s *sseWriter) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *sseWriter) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == 0 {
		s.status = code
		s.w.WriteHeader(code)
	}
}

func (s *sseWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == 0 {
		s.status = http.StatusOK
		s.w.WriteHeader(http.StatusOK)
	}
	if s.status != http.StatusOK {
		return s.w.Write(b) // an error answer passes through
	}
	s.buf.Write(b)
	for {
		line, err := s.buf.ReadBytes('\n')
		if err != nil { // an incomplete line: keep it for the next write
			rest := append([]byte(nil), line...)
			s.buf.Reset()
			s.buf.Write(rest)
			return len(b), nil
		}
		if err := s.event(line); err != nil {
			return 0, err
		}
	}
}

// event writes one tail line as an event.
func (s *sseWriter) event(line []byte) error {
	// The tail writes event.Event as encoding/json does: field names as
	// they are, the type by its Segment name.
	var in struct {
		Seq   uint64 `json:"seq"`
		Event *struct {
			Type, Event, Name, AnonymousID, UserID string
			Timestamp                              time.Time
			Context, Properties                    json.RawMessage
		} `json:"event"`
	}
	if err := json.Unmarshal(line, &in); err != nil || in.Event == nil {
		return nil // not an event line
	}
	e := in.Event
	out := liveEvent{Type: e.Type, Name: e.Event, Visitor: e.AnonymousID, Lead: e.UserID, Page: pageOf(e.Properties, e.Context), Seq: in.Seq}
	if out.Name == "" {
		out.Name = e.Name
	}
	if !e.Timestamp.IsZero() {
		out.Time = e.Timestamp.In(s.loc).Format("15:04:05")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return nil
}

// Flush sends what was written.
func (s *sseWriter) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flusher.Flush()
}

// comment writes a keep-alive.
func (s *sseWriter) comment() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == http.StatusOK {
		_, _ = s.w.Write([]byte(": keep-alive\n\n"))
		s.flusher.Flush()
	}
}

// pageOf is the page an event was on: a page call's properties say, else
// its context's page; the path, else the URL.
func pageOf(properties, context json.RawMessage) string {
	type page struct {
		Path string `json:"path"`
		URL  string `json:"url"`
	}
	var props page
	var ctx struct {
		Page page `json:"page"`
	}
	for _, p := range []struct {
		raw json.RawMessage
		dst any
		got *page
	}{{properties, &props, &props}, {context, &ctx, &ctx.Page}} {
		if len(p.raw) > 0 && json.Unmarshal(p.raw, p.dst) == nil {
			if p.got.Path != "" {
				return p.got.Path
			}
			if p.got.URL != "" {
				return p.got.URL
			}
		}
	}
	return ""
}
