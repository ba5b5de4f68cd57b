package deliver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// userAgent identifies Contrail's webhook calls.
const userAgent = "Contrail-Webhook/1"

// secretPrefix starts a Standard Webhooks secret; base64 follows.
const secretPrefix = "whsec_"

// reservedHeader says whether a header (canonical name) is not taken from
// a job because the transport or the Sender sets it.
func reservedHeader(name string) bool {
	switch name {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade",
		"Content-Type", "User-Agent", "Idempotency-Key",
		"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature":
		return true
	}
	return false
}

// signingKey decodes a "whsec_<base64>" secret.
func signingKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("decoding webhook secret: %w", err)
	}
	if len(key) == 0 {
		return nil, errors.New("webhook secret is empty")
	}
	return key, nil
}

// sign returns the webhook-signature header value: "v1," and the base64 of
// HMAC-SHA256(key, "<id>.<timestamp>.<body>") (Standard Webhooks).
func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	// One buffer for the signed prefix, the MAC and the encoded result.
	const encLen = 44 // base64 of a SHA-256 sum
	buf := make([]byte, 0, len(id)+22+sha256.Size+3+encLen)
	buf = append(buf, id...)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, ts, 10)
	buf = append(buf, '.')
	m.Write(buf)
	m.Write(body)
	sum := m.Sum(buf[len(buf):len(buf)])
	out := append(sum[len(sum):], "v1,"...)
	out = base64.StdEncoding.AppendEncode(out, sum)
	return string(out)
}

// outcome is how one attempt ended.
type outcome struct {
	ok         bool
	retry      bool // a failure worth another attempt
	httpStatus int
	err        error
	// retryAfter is the server's Retry-After, when hasRetryAfter.
	retryAfter    time.Duration
	hasRetryAfter bool
}

func permanent(err error) outcome { return outcome{err: err} }
func transient(err error) outcome { return outcome{retry: true, err: err} }

// webhook makes one attempt to call j's URL.
func (s *Sender) webhook(ctx context.Context, j *Job) outcome {
	u, err := parseWebhookURL(j.URL)
	if err != nil {
		return permanent(err)
	}
	method := j.Method
	if method == "" {
		method = http.MethodPost
	}
	body := []byte(j.Body)
	ctx, cancel := context.WithTimeout(ctx, j.timeout(s.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, j.URL, strings.NewReader(j.Body))
	if err != nil {
		return permanent(fmt.Errorf("%w: building request: %w", ErrInvalidJob, err))
	}
	for name, v := range j.Headers {
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(v) {
			return permanent(fmt.Errorf("%w: header %q is not valid", ErrInvalidJob, name))
		}
		if !reservedHeader(http.CanonicalHeaderKey(name)) {
			req.Header.Set(name, v)
		}
	}
	ct := j.ContentType
	if ct == "" {
		ct = "application/json"
	}
	if !httpguts.ValidHeaderFieldValue(ct) {
		return permanent(fmt.Errorf("%w: content type %q is not valid", ErrInvalidJob, ct))
	}
	ts := s.now().Unix()
	// Set directly: the lower-case names are Standard Webhooks' spelling,
	// and HTTP header names are case-insensitive anyway.
	req.Header["Content-Type"] = []string{ct}
	req.Header["User-Agent"] = []string{userAgent}
	req.Header["Idempotency-Key"] = []string{j.Key}
	req.Header["webhook-id"] = []string{j.Key}
	req.Header["webhook-timestamp"] = []string{strconv.FormatInt(ts, 10)}
	if s.deps.Secret != nil {
		if secret, ok := s.deps.Secret(j.Tenant); ok && secret != "" {
			key, err := signingKey(secret)
			if err != nil {
				return permanent(fmt.Errorf("signing for tenant %s: %w", j.Tenant, err))
			}
			req.Header["webhook-signature"] = []string{sign(key, j.Key, ts, body)}
		}
	}

	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return permanent(fmt.Errorf("calling %s: %w", u.Redacted(), err))
		}
		return transient(fmt.Errorf("calling %s: %w", u.Redacted(), err))
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()

	o := outcome{httpStatus: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		o.ok = true
		return o
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		o.retry = true
		o.retryAfter, o.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	case code >= 300 && code < 400:
		o.err = fmt.Errorf("http %d from %s: redirects are not followed", code, u.Redacted())
		return o
	}
	o.err = fmt.Errorf("http %d %s from %s", resp.StatusCode, http.StatusText(resp.StatusCode), u.Redacted())
	return o
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 1<<32)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
