package deliver

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of Job.
const (
	KindWebhook = "webhook"
	KindEmail   = "email"
)

// Job is one external effect: the payload of a shard.External, encoded as
// JSON by the campaign engine.
type Job struct {
	Kind   string `json:"kind"` // KindWebhook or KindEmail
	Tenant string `json:"tenant"`
	// Key is the idempotency key; it equals the External's Key.
	Key      string `json:"key"`
	Campaign string `json:"campaign,omitempty"`
	Version  int    `json:"version,omitempty"`
	Run      string `json:"run,omitempty"`
	Step     int    `json:"step,omitempty"`
	Lead     string `json:"lead,omitempty"`
	// Order repeats the External's Order. The outbox keeps only the
	// payload, so this is how an effect read back after a restart keeps
	// its place behind the earlier effects of its Order.
	Order string `json:"order,omitempty"`
	// At is when the step ran (event time).
	At time.Time `json:"at"`

	// URL is where a webhook goes: http or https.
	URL string `json:"url,omitempty"`
	// Method defaults to POST.
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// ContentType defaults to application/json.
	ContentType string `json:"content_type,omitempty"`
	// TimeoutMS bounds each attempt; 0 means Config.Timeout. It is capped
	// at a minute (or Config.Timeout, if longer), so that slow receivers
	// cannot hold the workers for long.
	TimeoutMS int `json:"timeout_ms,omitempty"`

	// From and To are RFC 5322 addresses ("Ann <ann@example.com>"); To may
	// list several, separated by commas.
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Text and HTML are the bodies; with both, the email is
	// multipart/alternative.
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	ReplyTo string `json:"reply_to,omitempty"`
	// ListUnsubscribe is a URL or a mailto: address, sent as
	// List-Unsubscribe; an https URL also gets List-Unsubscribe-Post for
	// one-click unsubscription (RFC 8058).
	ListUnsubscribe string `json:"list_unsubscribe,omitempty"`
}

// parseJob decodes a payload. An error wraps ErrInvalidJob.
func parseJob(payload []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(payload, &j); err != nil {
		return Job{}, fmt.Errorf("decoding job: %w: %w", ErrInvalidJob, err)
	}
	switch j.Kind {
	case KindWebhook, KindEmail:
	default:
		return j, fmt.Errorf("kind %q: %w", j.Kind, ErrInvalidJob)
	}
	return j, nil
}

// maxJobTimeout caps Job.TimeoutMS, unless Config.Timeout is longer.
const maxJobTimeout = time.Minute

// timeout is the bound of one attempt of j.
func (j *Job) timeout(def time.Duration) time.Duration {
	if j.TimeoutMS <= 0 {
		return def
	}
	ceil := max(def, maxJobTimeout)
	if int64(j.TimeoutMS) >= ceil.Milliseconds() {
		return ceil
	}
	return time.Duration(j.TimeoutMS) * time.Millisecond
}
