package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/contrailhq/contrail/internal/campaign"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/report"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Stable error codes of the admin and report API.
const (
	CodeUnauthorized   = "unauthorized"
	CodeNotFound       = "not_found"
	CodeInvalidRequest = "invalid_request"
	CodeConflict       = "conflict"
	CodeNotReplayable  = "not_replayable"
	CodeInternal       = "internal"
	// CodeInvalidParameter: a report query parameter is missing, repeated
	// or malformed (a time, metric, interval, dimension, limit, filter or
	// time zone).
	CodeInvalidParameter = "invalid_parameter"
	// CodeInvalidRange: a report's from is not before its to.
	CodeInvalidRange = "invalid_range"
	// CodeRangeTooLarge: a report's range, or its number of time series
	// points, is over the bounds.
	CodeRangeTooLarge = "range_too_large"
	// CodeUnsupportedFilter: the rollups cannot answer the report under
	// that filter.
	CodeUnsupportedFilter = "unsupported_filter"
	// CodeUnavailable: the node does not serve reports (processing is off).
	CodeUnavailable = "unavailable"
	// CodeLeadNotFound: no lead has that id, email or userId (or it was
	// erased).
	CodeLeadNotFound = "lead_not_found"
	// CodeListNotFound: the tenant has no list with that id or name.
	CodeListNotFound = "list_not_found"
	// CodeTooManyLeads: a bulk request names more leads than allowed.
	CodeTooManyLeads = "too_many_leads"
	// CodeInvalidCursor: a page cursor was not made by this API.
	CodeInvalidCursor = "invalid_cursor"
	// CodeInvalidCampaign: a campaign does not parse or validate; the
	// error lists its problems, each with a path (and a line and column
	// for an expression).
	CodeInvalidCampaign = "invalid_campaign"
	// CodeCampaignNotFound: the tenant has no campaign with that id.
	CodeCampaignNotFound = "campaign_not_found"
)

var codeStatus = map[string]int{
	CodeUnauthorized:      http.StatusUnauthorized,
	CodeNotFound:          http.StatusNotFound,
	CodeInvalidRequest:    http.StatusBadRequest,
	CodeConflict:          http.StatusConflict,
	CodeNotReplayable:     http.StatusUnprocessableEntity,
	CodeInternal:          http.StatusInternalServerError,
	CodeInvalidParameter:  http.StatusBadRequest,
	CodeInvalidRange:      http.StatusBadRequest,
	CodeRangeTooLarge:     http.StatusBadRequest,
	CodeUnsupportedFilter: http.StatusBadRequest,
	CodeUnavailable:       http.StatusServiceUnavailable,
	CodeLeadNotFound:      http.StatusNotFound,
	CodeListNotFound:      http.StatusNotFound,
	CodeTooManyLeads:      http.StatusBadRequest,
	CodeInvalidCursor:     http.StatusBadRequest,
	CodeInvalidCampaign:   http.StatusBadRequest,
	CodeCampaignNotFound:  http.StatusNotFound,
}

// Error is the JSON body of every error answer: {"error":{"code","message"}},
// with "problems" for an invalid campaign.
type Error struct {
	Code     string                `json:"code"`
	Message  string                `json:"message"`
	Problems []campaign.FieldError `json:"problems,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code, msg string) {
	writeJSON(w, codeStatus[code], map[string]Error{"error": {Code: code, Message: msg}})
}

// errorCode maps a domain error to an API code.
func errorCode(err error) string {
	if _, ok := errors.AsType[*campaign.ValidationError](err); ok {
		return CodeInvalidCampaign
	}
	switch {
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, tenant.ErrKeyNotFound), errors.Is(err, eventlog.ErrDeadNotFound):
		return CodeNotFound
	case errors.Is(err, lead.ErrNotFound):
		return CodeLeadNotFound
	case errors.Is(err, campaign.ErrNotFound):
		return CodeCampaignNotFound
	case errors.Is(err, campaign.ErrNameTaken), errors.Is(err, campaign.ErrNotPublished):
		return CodeConflict
	case errors.Is(err, campaign.ErrTooMany):
		return CodeInvalidRequest
	case errors.Is(err, tenant.ErrListNotFound):
		return CodeListNotFound
	case errors.Is(err, errTooMany):
		return CodeTooManyLeads
	case errors.Is(err, lead.ErrBadCursor):
		return CodeInvalidCursor
	case errors.Is(err, tenant.ErrNameTaken), errors.Is(err, tenant.ErrListExists), errors.Is(err, errConflict):
		return CodeConflict
	case errors.Is(err, tenant.ErrInvalidList):
		return CodeInvalidRequest
	case errors.Is(err, tenant.ErrInvalidName), errors.Is(err, errInvalid):
		return CodeInvalidRequest
	case errors.Is(err, eventlog.ErrNotReplayable):
		return CodeNotReplayable
	case errors.Is(err, errUnauthorized):
		return CodeUnauthorized
	case errors.Is(err, errInvalidParameter):
		return CodeInvalidParameter
	case errors.Is(err, errInvalidRange):
		return CodeInvalidRange
	case errors.Is(err, errRangeTooLarge):
		return CodeRangeTooLarge
	case errors.Is(err, report.ErrUnsupportedFilter):
		return CodeUnsupportedFilter
	case errors.Is(err, errUnavailable):
		return CodeUnavailable
	case errors.Is(err, errTenantPaused):
		return CodeTenantPaused
	case errors.Is(err, errCampaignLimit):
		return CodeCampaignLimit
	}
	return CodeInternal
}

// Errors that mark what is wrong with a request; errorCode maps them to
// their codes.
var (
	// errInvalid marks errors in the request itself.
	errInvalid = errors.New("invalid request")
	// errUnauthorized: no or a wrong credential.
	errUnauthorized = errors.New("unauthorized")
	// errInvalidParameter marks a bad report query parameter.
	errInvalidParameter = errors.New("invalid parameter")
	// errInvalidRange: a report's from is not before its to.
	errInvalidRange = errors.New("invalid range")
	// errRangeTooLarge: a report asks for too long a range or too many points.
	errRangeTooLarge = errors.New("range too large")
	// errUnavailable: this node does not serve reports.
	errUnavailable = errors.New("unavailable")
	// errTooMany: a bulk request over its bound.
	errTooMany = errors.New("too many leads")
	// errConflict: the request contradicts the state (a lead merged elsewhere).
	errConflict = errors.New("conflict")
)
