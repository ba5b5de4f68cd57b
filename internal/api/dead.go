package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/tenant"
)

// DeadLetters is the DEAD stream as the API uses it; *eventlog.Log
// implements it. The API finds it in Deps.Log: a log that does not
// implement it answers the dead endpoints with an internal error.
type DeadLetters interface {
	ListDead(ctx context.Context, tenant string, after uint64, limit int) ([]eventlog.DeadMessage, error)
	ReplayDead(ctx context.Context, seq uint64) (int, error)
	LastDeadSeq(ctx context.Context) (uint64, error)
}

// Bounds of the dead endpoints.
const (
	defaultDeadLimit = 100
	maxDeadLimit     = 1000
	maxReplaySeqs    = 1000
)

// DeadView is a DEAD message as the API shows it. Events holds the
// rejected event; when the data cannot be decoded (a whole unreadable log
// message, subject dead.unknown), Events is left out and Error says why.
type DeadView struct {
	Seq       uint64         `json:"seq"`
	Subject   string         `json:"subject"`
	Tenant    string         `json:"tenant"`
	Time      time.Time      `json:"time"`
	Reason    string         `json:"reason"`
	Stream    string         `json:"stream"`
	Partition int            `json:"partition"` // -1 when unknown
	SourceSeq uint64         `json:"source_seq"`
	Events    []*event.Event `json:"events,omitempty"`
	Error     string         `json:"error,omitempty"`
}

func viewDead(m eventlog.DeadMessage) DeadView {
	v := DeadView{
		Seq: m.Seq, Subject: m.Subject, Tenant: m.Tenant, Time: m.Time, Reason: m.Reason,
		Stream: m.Stream, Partition: m.Partition, SourceSeq: m.SourceSeq,
	}
	err := event.EachEvent(m.Data, func(e *event.Event) error {
		c := *e
		v.Events = append(v.Events, &c)
		return nil
	})
	if err != nil {
		v.Events, v.Error = nil, err.Error()
	}
	return v
}

// ReplayError is why one DEAD message was not replayed.
type ReplayError struct {
	Seq     uint64 `json:"seq"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ReplayResult is the answer of POST /api/v1/dead/replay.
type ReplayResult struct {
	ReplayedMessages int           `json:"replayed_messages"`
	ReplayedEvents   int           `json:"replayed_events"`
	Errors           []ReplayError `json:"errors"`
}

func (a *API) deadLetters() (DeadLetters, error) {
	if a.deps.Dead == nil {
		return nil, errors.New("this node's log does not keep dead events")
	}
	return a.deps.Dead, nil
}

// deadTenant resolves a tenant id or name to the id used in DEAD subjects.
// "unknown" names the unreadable log messages, unless a tenant has that
// name.
func (a *API) deadTenant(ctx context.Context, idOrName string) (string, error) {
	if idOrName == "" {
		return "", nil
	}
	t, err := a.deps.Tenants.Get(ctx, idOrName)
	if errors.Is(err, tenant.ErrNotFound) && idOrName == eventlog.DeadUnknownTenant {
		return eventlog.DeadUnknownTenant, nil
	}
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// listDead answers GET /api/v1/dead?tenant=&after=&limit= with
// {"messages":[...],"next_after":<seq of the last message>}; next_after is
// left out when no message came back.
func (a *API) listDead(w http.ResponseWriter, r *http.Request) {
	dl, err := a.deadLetters()
	if err != nil {
		a.fail(w, err)
		return
	}
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			a.fail(w, fmt.Errorf("%w: after must be a stream sequence, got %q", errInvalid, s))
			return
		}
	}
	limit := defaultDeadLimit
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxDeadLimit {
			a.fail(w, fmt.Errorf("%w: limit must be a number from 1 to %d, got %q", errInvalid, maxDeadLimit, s))
			return
		}
	}
	id, err := a.deadTenant(r.Context(), q.Get("tenant"))
	if err != nil {
		a.fail(w, err)
		return
	}
	ms, err := dl.ListDead(r.Context(), id, after, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := struct {
		Messages  []DeadView `json:"messages"`
		NextAfter uint64     `json:"next_after,omitempty"`
	}{Messages: make([]DeadView, 0, len(ms))}
	for _, m := range ms {
		out.Messages = append(out.Messages, viewDead(m))
	}
	if len(ms) > 0 {
		out.NextAfter = ms[len(ms)-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

// replayDead answers POST /api/v1/dead/replay. The body names the
// messages, {"seqs":[1,2]}, or a tenant, {"tenant":"acme","all":true}: all
// its DEAD messages stored before the request. Each message is replayed on
// its own; those that fail are listed in errors and stay in DEAD.
func (a *API) replayDead(w http.ResponseWriter, r *http.Request) {
	dl, err := a.deadLetters()
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		Seqs   []uint64 `json:"seqs"`
		Tenant string   `json:"tenant"`
		All    bool     `json:"all"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	switch {
	case len(req.Seqs) > 0 && (req.Tenant != "" || req.All):
		err = errors.New("give either seqs, or a tenant with all: true")
	case len(req.Seqs) == 0 && !req.All:
		err = errors.New("give seqs, or a tenant with all: true")
	case req.All && req.Tenant == "":
		err = errors.New("all needs a tenant")
	case len(req.Seqs) > maxReplaySeqs:
		err = fmt.Errorf("at most %d seqs at a time, got %d", maxReplaySeqs, len(req.Seqs))
	}
	for _, s := range req.Seqs {
		if s == 0 && err == nil {
			err = errors.New("seqs start at 1")
		}
	}
	if err != nil {
		a.fail(w, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	ctx := r.Context()
	res := ReplayResult{Errors: []ReplayError{}}
	replay := func(seq uint64) {
		n, err := dl.ReplayDead(ctx, seq)
		if err != nil {
			code := errorCode(err)
			if code == CodeInternal {
				a.deps.Logger.Error("replaying dead message failed", "seq", seq, "err", err)
			}
			res.Errors = append(res.Errors, ReplayError{Seq: seq, Code: code, Message: err.Error()})
			return
		}
		res.ReplayedMessages++
		res.ReplayedEvents += n
	}
	if req.All {
		if err := a.replayTenant(ctx, dl, req.Tenant, replay); err != nil {
			a.fail(w, err)
			return
		}
	} else {
		for _, seq := range req.Seqs {
			replay(seq)
		}
	}
	a.deps.Logger.Info("dead messages replayed", "tenant", req.Tenant, "messages", res.ReplayedMessages,
		"events", res.ReplayedEvents, "failed", len(res.Errors))
	writeJSON(w, http.StatusOK, res)
}

// replayTenant calls replay for each DEAD message of the tenant stored up to
// now. Events that are rejected again by their replay come after that end,
// so they are not replayed in a loop.
func (a *API) replayTenant(ctx context.Context, dl DeadLetters, idOrName string, replay func(seq uint64)) error {
	id, err := a.deadTenant(ctx, idOrName)
	if err != nil {
		return err
	}
	end, err := dl.LastDeadSeq(ctx)
	if err != nil {
		return err
	}
	var after uint64
	for after < end {
		ms, err := dl.ListDead(ctx, id, after, maxDeadLimit)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		for _, m := range ms {
			if m.Seq > end {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			replay(m.Seq)
			after = m.Seq
		}
	}
	return nil
}
