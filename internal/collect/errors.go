package collect

import "net/http"

// Code is a stable error code, answered in JSON bodies and per-event results
// and used as the "reason" label of the rejection metrics.
type Code string

// Request-level codes: the whole request is refused with the status of the code.
const (
	CodeInvalidJSON         Code = "invalid_json"
	CodeInvalidBatch        Code = "invalid_batch"
	CodeEmptyBatch          Code = "empty_batch"
	CodeMissingWriteKey     Code = "missing_write_key"
	CodeInvalidWriteKey     Code = "invalid_write_key"
	CodeBatchTooLarge       Code = "batch_too_large"
	CodeTooManyEvents       Code = "too_many_events"
	CodeUnsupportedEncoding Code = "unsupported_encoding"
	CodeInvalidGzip         Code = "invalid_gzip"
	CodeRateLimited         Code = "rate_limited"
	CodeQuotaExceeded       Code = "quota_exceeded"
	CodeUnavailable         Code = "log_unavailable"
	CodeShuttingDown        Code = "shutting_down"
	// CodeTenantPaused refuses a paused tenant's events when its
	// paused_intake setting is refuse.
	CodeTenantPaused Code = "tenant_paused"
	// CodeDiskLow refuses every request while the node's disk is below
	// its min_free_bytes floor.
	CodeDiskLow Code = "disk_low"
)

// Form codes: a form fill (POST /v1/form/{formId}) is refused with the
// status of the code, and nothing is stored.
const (
	CodeInvalidFormID          Code = "invalid_form_id"
	CodeInvalidForm            Code = "invalid_form"
	CodeUnsupportedContentType Code = "unsupported_content_type"
	CodeMissingIdentity        Code = "missing_identity"
	CodeInvalidEmail           Code = "invalid_email"
	CodeInvalidRedirect        Code = "invalid_redirect"
)

// Event-level codes: the event is rejected, the rest of the request goes on.
// A single-event endpoint answers event_too_large with 413; every other
// event-level code is reported in the per-event results of a 200. So is
// CodeQuotaExceeded for the events over the daily quota of a tenant whose
// over_quota setting is drop.
const (
	CodeEventTooLarge     Code = "event_too_large"
	CodeInvalidEvent      Code = "invalid_event"
	CodeInvalidType       Code = "invalid_type"
	CodeMissingID         Code = "missing_id"
	CodeInvalidID         Code = "invalid_id"
	CodeBlockedID         Code = "blocked_id"
	CodeMissingEvent      Code = "missing_event"
	CodeMissingPreviousID Code = "missing_previous_id"
	CodeMissingGroupID    Code = "missing_group_id"
	CodeInvalidTimestamp  Code = "invalid_timestamp"
	CodeInvalidField      Code = "invalid_field"
)

// status is the HTTP status of each request-level code.
var status = map[Code]int{
	CodeInvalidJSON:         http.StatusBadRequest,
	CodeInvalidBatch:        http.StatusBadRequest,
	CodeEmptyBatch:          http.StatusBadRequest,
	CodeMissingWriteKey:     http.StatusUnauthorized,
	CodeInvalidWriteKey:     http.StatusUnauthorized,
	CodeBatchTooLarge:       http.StatusRequestEntityTooLarge,
	CodeTooManyEvents:       http.StatusRequestEntityTooLarge,
	CodeEventTooLarge:       http.StatusRequestEntityTooLarge,
	CodeUnsupportedEncoding: http.StatusUnsupportedMediaType,
	CodeInvalidGzip:         http.StatusBadRequest,
	CodeRateLimited:         http.StatusTooManyRequests,
	CodeQuotaExceeded:       http.StatusTooManyRequests,
	CodeUnavailable:         http.StatusServiceUnavailable,
	CodeShuttingDown:        http.StatusServiceUnavailable,
	CodeTenantPaused:        http.StatusServiceUnavailable,
	CodeDiskLow:             http.StatusServiceUnavailable,

	CodeInvalidFormID:          http.StatusBadRequest,
	CodeInvalidForm:            http.StatusBadRequest,
	CodeUnsupportedContentType: http.StatusUnsupportedMediaType,
	CodeMissingIdentity:        http.StatusBadRequest,
	CodeInvalidEmail:           http.StatusBadRequest,
	CodeInvalidRedirect:        http.StatusBadRequest,
}

// reqError is a request-level refusal.
type reqError struct {
	code       Code
	msg        string
	retryAfter int // seconds; 0 for none
}

func (e *reqError) Error() string { return string(e.code) + ": " + e.msg }

func refuse(code Code, msg string) *reqError { return &reqError{code: code, msg: msg} }
