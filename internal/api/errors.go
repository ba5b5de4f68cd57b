package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Stable error codes of the admin API.
const (
	CodeUnauthorized   = "unauthorized"
	CodeNotFound       = "not_found"
	CodeInvalidRequest = "invalid_request"
	CodeConflict       = "conflict"
	CodeNotReplayable  = "not_replayable"
	CodeInternal       = "internal"
)

var codeStatus = map[string]int{
	CodeUnauthorized:   http.StatusUnauthorized,
	CodeNotFound:       http.StatusNotFound,
	CodeInvalidRequest: http.StatusBadRequest,
	CodeConflict:       http.StatusConflict,
	CodeNotReplayable:  http.StatusUnprocessableEntity,
	CodeInternal:       http.StatusInternalServerError,
}

// Error is the JSON body of every error answer: {"error":{"code","message"}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
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
	switch {
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, tenant.ErrKeyNotFound), errors.Is(err, eventlog.ErrDeadNotFound):
		return CodeNotFound
	case errors.Is(err, tenant.ErrNameTaken):
		return CodeConflict
	case errors.Is(err, tenant.ErrInvalidName), errors.Is(err, errInvalid):
		return CodeInvalidRequest
	case errors.Is(err, eventlog.ErrNotReplayable):
		return CodeNotReplayable
	}
	return CodeInternal
}

// errInvalid marks errors in the request itself.
var errInvalid = errors.New("invalid request")
