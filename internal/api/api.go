package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/eventlog"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/tenant"
)

// Tenants is the tenant store as the API uses it; *tenant.Store implements it.
type Tenants interface {
	Create(ctx context.Context, name string, limits tenant.Limits) (tenant.Created, error)
	Get(ctx context.Context, idOrName string) (tenant.Tenant, error)
	List(ctx context.Context) ([]tenant.Tenant, error)
	SetLimits(ctx context.Context, idOrName string, l tenant.Limits) (tenant.Tenant, error)
	SetSettings(ctx context.Context, idOrName string, s tenant.Settings) (tenant.Tenant, error)
	AddKey(ctx context.Context, idOrName, kind string) (tenant.Tenant, tenant.Key, string, error)
	RevokeKey(ctx context.Context, idOrName, keyID string) (tenant.Tenant, error)
}

// LogReader reads the event log; *eventlog.Log implements it.
type LogReader interface {
	Read(ctx context.Context, partition int, start eventlog.Start, fn func(eventlog.Message) error) error
}

// Applier reports when this node serves a tenant change; *tenant.Cache
// implements it.
type Applier interface {
	WaitFor(ctx context.Context, rev uint64) error
}

// Deps are the API's collaborators.
type Deps struct {
	AdminToken string
	Tenants    Tenants
	Log        LogReader
	// Dead lists and replays the DEAD stream.
	Dead DeadLetters
	// Applied, when set, makes tenant changes read-your-writes: the API
	// answers once this node's collector serves the change (at most
	// ApplyWait; other nodes follow within moments).
	Applied   Applier
	ApplyWait time.Duration
	// Status reports the node's shards for GET /api/v1/status.
	Status StatusReporter
	// Reports answers /api/v1/reports/*; when nil (processing is off)
	// those endpoints answer 503 unavailable.
	Reports ReportQuerier
	// Keys finds the tenant of a report request by its API key; without
	// it only the admin token reads reports.
	Keys TenantKeys
	// Leads and LeadWriter serve /api/v1/leads; when nil (processing is
	// off) those endpoints answer 503. Lists creates list definitions.
	Leads      LeadReader
	LeadWriter LeadWriter
	Lists      Lists
	// Campaigns stores the tenants' campaigns and CampaignRegistry is
	// their compiled, live view: answers after a publish, pause or resume
	// wait until it applies the change. CheckURL vets webhook URLs at
	// publish (the SSRF guard); nil accepts them.
	Campaigns        CampaignStore
	CampaignRegistry CampaignCatalog
	CheckURL         func(ctx context.Context, raw string) error
	// Runs reads campaign runs and counters, and Deliveries the results
	// of their webhooks and emails; when Runs is nil (processing is off)
	// the run, stats and request endpoints answer 503.
	Runs       RunReader
	Deliveries DeliveryResults
	// Pauser pauses tenants; Processing pauses this node's shards (nil
	// when it runs none).
	Pauser     Pauser
	Processing Processing
	Logger     *slog.Logger
}

// PartitionStatus is one shard's progress: the last stream sequence it
// applied, the last one stored in its partition, how many log messages of
// the partition are not applied yet, and how many events it parked.
type PartitionStatus struct {
	Stream    string `json:"stream"`
	Partition int    `json:"partition"`
	Position  uint64 `json:"position"`
	Last      uint64 `json:"last"`
	Lag       uint64 `json:"lag"`
	// Parked counts the events the shard set aside in PARKED (paused or
	// over their share) and has not replayed yet.
	Parked uint64 `json:"parked"`
}

// StatusReporter reports the node's shards; *app.Node implements it.
type StatusReporter interface {
	Status(ctx context.Context) ([]PartitionStatus, error)
}

// API is the admin HTTP API and the tenants' report API.
type API struct {
	deps Deps
	// mergeMu serializes lead merges, from the check of both leads to the
	// loser's shard applying the merge: two merges in opposite directions
	// cannot both pass their checks on this node.
	mergeMu sync.Mutex
}

// New returns the API; mount it with Register.
func New(deps Deps) *API {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	deps.Logger = deps.Logger.With("component", "api")
	return &API{deps: deps}
}

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, a.admin(f)) }
	h("POST /api/v1/tenants", a.createTenant)
	h("GET /api/v1/tenants", a.listTenants)
	h("GET /api/v1/tenants/{id}", a.getTenant)
	h("GET /api/v1/tenants/{id}/keys", a.listKeys)
	h("POST /api/v1/tenants/{id}/keys", a.addKey)
	h("DELETE /api/v1/tenants/{id}/keys/{key}", a.revokeKey)
	h("GET /api/v1/tenants/{id}/limits", a.getLimits)
	h("PUT /api/v1/tenants/{id}/limits", a.setLimits)
	h("PATCH /api/v1/tenants/{id}/limits", a.setLimits)
	h("GET /api/v1/tenants/{id}/settings", a.getSettings)
	h("PUT /api/v1/tenants/{id}/settings", a.setSettings)
	h("PATCH /api/v1/tenants/{id}/settings", a.setSettings)
	h("GET /api/v1/tenants/{id}/tail", a.adminTail)
	mux.HandleFunc("GET /api/v1/tail", a.tenantScoped(a.deps.Log != nil, "events", a.tail))
	h("GET /api/v1/status", a.status)
	h("GET /api/v1/dead", a.listDead)
	h("POST /api/v1/dead/replay", a.replayDead)
	a.registerReports(mux)
	a.registerLeads(mux)
	a.registerCampaigns(mux)
	a.registerOps(mux)
	mux.Handle("/api/", a.admin(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, CodeNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
}

// AdminOnly wraps h so that it answers only requests with the admin token.
func (a *API) AdminOnly(h http.Handler) http.Handler { return a.admin(h.ServeHTTP) }

// admin checks the admin token.
func (a *API) admin(next http.HandlerFunc) http.Handler {
	want := []byte(a.deps.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="contrail"`)
			writeError(w, CodeUnauthorized, "send the admin token as Authorization: Bearer <token>")
			return
		}
		next(w, r)
	})
}

// TenantView is a tenant as the API shows it: API keys only by prefix.
type TenantView struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	CreatedAt time.Time       `json:"created_at"`
	Limits    tenant.Limits   `json:"limits"`
	Settings  tenant.Settings `json:"settings"`
	Keys      []KeyView       `json:"keys"`
	// WebhookSecret signs the tenant's campaign webhooks (Standard
	// Webhooks); receivers verify webhook-signature with it.
	WebhookSecret string `json:"webhook_secret,omitempty"`
	// Paused tenants' events are parked, not processed.
	Paused   bool       `json:"paused"`
	PausedAt *time.Time `json:"paused_at,omitempty"`
}

// KeyView is a key as the API shows it.
type KeyView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Prefix    string    `json:"prefix"`
	Secret    string    `json:"secret,omitempty"` // write keys are public
	CreatedAt time.Time `json:"created_at"`
}

func viewKey(k tenant.Key) KeyView {
	return KeyView{ID: k.ID, Kind: k.Kind, Prefix: k.Prefix, Secret: k.Secret, CreatedAt: k.CreatedAt}
}

func view(t tenant.Tenant) TenantView {
	v := TenantView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, Limits: t.Limits, Settings: t.Settings.WithDefaults(), Keys: []KeyView{}, WebhookSecret: t.WebhookSecret,
		Paused: t.IsPaused(), PausedAt: t.PausedAt}
	for _, k := range t.Keys {
		v.Keys = append(v.Keys, viewKey(k))
	}
	return v
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: body: %v", errInvalid, err)
	}
	return nil
}

// applied waits until this node serves tenant revision rev. A timeout is
// logged, not failed: the change is stored and will arrive.
func (a *API) applied(ctx context.Context, rev uint64) {
	if a.deps.Applied == nil || rev == 0 {
		return
	}
	wait := a.deps.ApplyWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := a.deps.Applied.WaitFor(ctx, rev); err != nil {
		a.deps.Logger.Warn("tenant change stored but not yet applied by this node", "revision", rev, "err", err)
	}
}

func (a *API) fail(w http.ResponseWriter, err error) {
	code := errorCode(err)
	if code == CodeInternal {
		a.deps.Logger.Error("admin api request failed", "err", err)
	}
	writeError(w, code, err.Error())
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string         `json:"name"`
		Limits *tenant.Limits `json:"limits"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	var l tenant.Limits
	if req.Limits != nil {
		l = *req.Limits
	}
	if err := l.WithDefaults().Validate(); err != nil {
		a.fail(w, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	c, err := a.deps.Tenants.Create(r.Context(), req.Name, l)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.applied(r.Context(), c.Tenant.Revision)
	a.deps.Logger.Info("tenant created", "tenant", c.Tenant.ID, "name", c.Tenant.Name)
	writeJSON(w, http.StatusCreated, struct {
		TenantView
		WriteKey string `json:"write_key"`
		APIKey   string `json:"api_key"`
	}{view(c.Tenant), c.WriteKey, c.APIKey})
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := a.deps.Tenants.List(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]TenantView, 0, len(ts))
	for _, t := range ts {
		out = append(out, view(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(t))
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": t.ID, "keys": view(t).Keys})
}

func (a *API) addKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Kind string `json:"kind"`
	}
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Kind != tenant.KindWrite && req.Kind != tenant.KindAPI {
		a.fail(w, fmt.Errorf("%w: kind must be %q or %q", errInvalid, tenant.KindWrite, tenant.KindAPI))
		return
	}
	t, k, secret, err := a.deps.Tenants.AddKey(r.Context(), r.PathValue("id"), req.Kind)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.applied(r.Context(), t.Revision)
	writeJSON(w, http.StatusCreated, map[string]any{"tenant": t.ID, "key": viewKey(k), "secret": secret})
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.RevokeKey(r.Context(), r.PathValue("id"), r.PathValue("key"))
	if err != nil {
		a.fail(w, err)
		return
	}
	a.applied(r.Context(), t.Revision)
	writeJSON(w, http.StatusOK, view(t))
}

func (a *API) getLimits(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t.Limits)
}

// setLimits replaces (PUT) or updates (PATCH: only the fields sent) limits.
func (a *API) setLimits(w http.ResponseWriter, r *http.Request) {
	var l tenant.Limits
	if r.Method == http.MethodPatch {
		t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, err)
			return
		}
		l = t.Limits
	}
	if err := decodeBody(r, &l); err != nil {
		a.fail(w, err)
		return
	}
	if err := l.WithDefaults().Validate(); err != nil {
		a.fail(w, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	t, err := a.deps.Tenants.SetLimits(r.Context(), r.PathValue("id"), l)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.applied(r.Context(), t.Revision)
	a.deps.Logger.Info("tenant limits changed", "tenant", t.ID, "limits", t.Limits)
	writeJSON(w, http.StatusOK, t.Limits)
}

// status answers {"partitions":[{"stream","partition","position","last","lag"}],
// "tenants":[...], "processing_paused"}.
func (a *API) status(w http.ResponseWriter, r *http.Request) {
	parts := []PartitionStatus{}
	tenants := []TenantStatus{}
	if a.deps.Status != nil {
		var err error
		if parts, err = a.deps.Status.Status(r.Context()); err != nil {
			a.fail(w, err)
			return
		}
		if ts, ok := a.deps.Status.(tenantStatuses); ok {
			if tenants, err = ts.TenantStatus(r.Context()); err != nil {
				a.fail(w, err)
				return
			}
		}
	}
	paused := a.deps.Processing != nil && a.deps.Processing.ProcessingPaused()
	writeJSON(w, http.StatusOK, map[string]any{"partitions": parts, "tenants": tenants, "processing_paused": paused})
}

// maxTailSince bounds how far back a tail's since= may start.
const maxTailSince = 24 * time.Hour

// adminTail is tail for the tenant of the path (admin token).
func (a *API) adminTail(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	a.tail(w, r, &t)
}

// tail streams the tenant's accepted events as NDJSON, one event a line,
// from now (default), from a while ago (?since=5m, at most a day) or from
// the start of the log (?from=start), optionally only events of one type
// (?type=track).
func (a *API) tail(w http.ResponseWriter, r *http.Request, t *tenant.Tenant) {
	start := eventlog.Start{New: true}
	if r.URL.Query().Get("from") == "start" {
		start = eventlog.Start{}
	}
	if s := r.URL.Query().Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxTailSince {
			writeError(w, CodeInvalidParameter, "since "+strconv.Quote(s)+": want a duration such as 5m, at most 24h")
			return
		}
		start = eventlog.Start{Time: time.Now().Add(-d)}
	}
	typ := event.TypeUnknown
	if s := r.URL.Query().Get("type"); s != "" {
		if typ = event.ParseType(s); typ == event.TypeUnknown {
			writeError(w, CodeInvalidRequest, "unknown type "+s)
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	type line struct {
		Partition int          `json:"partition"`
		Seq       uint64       `json:"seq"`
		Event     *event.Event `json:"event"`
	}
	err := a.deps.Log.Read(r.Context(), -1, start, func(m eventlog.Message) error {
		if shard.IsOutputID(m.MsgID) {
			return nil // a shard's forward (an alias sent to its previousId's partition), not an accepted event
		}
		wrote := false
		err := event.EachEvent(m.Data, func(e *event.Event) error {
			if e.Tenant != t.ID || typ != event.TypeUnknown && e.Type != typ {
				return nil
			}
			wrote = true
			return enc.Encode(line{Partition: m.Partition, Seq: m.Seq, Event: e})
		})
		if wrote && flusher != nil {
			flusher.Flush()
		}
		return err
	})
	if err != nil && r.Context().Err() == nil {
		a.deps.Logger.Warn("tail ended", "tenant", t.ID, "err", err)
	}
}
