package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/contrailhq/contrail/internal/campaign"
)

// The dashboard reads and changes everything through the HTTP API, called
// in this process with the session's own credential: the API is the one
// place that decides what a key may see and do, and the dashboard shows
// exactly what a client of the API would get.

// apiError is an error answer of the API.
type apiError struct {
	Status   int
	Code     string
	Message  string
	Problems []campaign.FieldError
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// call is one API request.
type call struct {
	method, path string
	query        url.Values
	body         []byte
	contentType  string
}

// do runs c against the API as sess and decodes a JSON answer into out
// (when not nil). Tenant-scoped paths get the session's tenant when it is
// an admin's.
func (s *Server) do(ctx context.Context, sess *session, c call, out any) error {
	rec := &recorder{header: http.Header{}}
	req, err := s.request(ctx, sess, c)
	if err != nil {
		return err
	}
	s.deps.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		e := &apiError{Status: rec.status}
		var body struct {
			Error struct {
				Code     string                `json:"code"`
				Message  string                `json:"message"`
				Problems []campaign.FieldError `json:"problems"`
			} `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &body) == nil && body.Error.Code != "" {
			e.Code, e.Message, e.Problems = body.Error.Code, body.Error.Message, body.Error.Problems
		} else {
			e.Code, e.Message = "http_"+fmt.Sprint(rec.status), strings.TrimSpace(rec.body.String())
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("decoding answer of %s %s: %w", c.method, c.path, err)
	}
	return nil
}

// stream runs c against the API as sess, writing the answer to w as it
// comes (the tail).
func (s *Server) stream(ctx context.Context, sess *session, c call, w http.ResponseWriter) error {
	req, err := s.request(ctx, sess, c)
	if err != nil {
		return err
	}
	s.deps.API.ServeHTTP(w, req)
	return nil
}

// request builds the API request of c for sess.
func (s *Server) request(ctx context.Context, sess *session, c call) (*http.Request, error) {
	q := url.Values{}
	for k, v := range c.query {
		q[k] = v
	}
	if sess.Admin && sess.Tenant != "" && !strings.HasPrefix(c.path, "/api/v1/tenants") && c.path != "/api/v1/status" {
		q.Set("tenant", sess.Tenant)
	}
	u := c.path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader = http.NoBody
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("building API request %s %s: %w", c.method, c.path, err)
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Authorization", "Bearer "+sess.Key)
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	} else if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// jsonBody encodes v for a call.
func jsonBody(v any) []byte {
	b, _ := json.Marshal(v) // the dashboard's own request types always encode
	return b
}

// recorder is an in-memory http.ResponseWriter for API calls.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
