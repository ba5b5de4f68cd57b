package dashboard

import (
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/contrailhq/contrail/internal/api"
)

// tenantRow is a tenant in the admin's list.
type tenantRow struct {
	api.TenantView
	Status *api.TenantStatus
	// Rate is accepted events per second since the previous look, when
	// there was one in the last few minutes.
	Rate      *float64
	Rejected  float64
	Dead, Lag float64
	LagSecs   float64
}

// tenantsView is the tenants page's data.
type tenantsView struct {
	Tenants []tenantRow
	// NewKey is a key just made, shown this once.
	NewKey *newKey
	Error  string
}

type newKey struct {
	Tenant, Kind, Secret string
	More                 []newKey
}

// rates turns the status's running counters into rates: it keeps each
// tenant's last count and when it was read.
type rates struct {
	mu   sync.Mutex
	last map[string]sample
}

type sample struct {
	at    time.Time
	count float64
}

// rate records count for id at now and returns the rate since the last
// sample, if it is recent and the counter did not restart.
func (r *rates) rate(id string, now time.Time, count float64) *float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]sample{}
	}
	prev, ok := r.last[id]
	r.last[id] = sample{at: now, count: count}
	dt := now.Sub(prev.at).Seconds()
	if !ok || dt < 1 || dt > 300 || count < prev.count {
		return nil
	}
	v := (count - prev.count) / dt
	return &v
}

// tenantsPage lists the tenants with their traffic, lag and drops.
func (s *Server) tenantsPage(w http.ResponseWriter, rq *request) {
	s.showTenants(w, rq, http.StatusOK, tenantsView{})
}

func (s *Server) showTenants(w http.ResponseWriter, rq *request, code int, v tenantsView) {
	ctx := rq.Context()
	var list struct {
		Tenants []api.TenantView `json:"tenants"`
	}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/tenants"}, &list); err != nil {
		s.fail(w, rq, err)
		return
	}
	var status struct {
		Tenants []api.TenantStatus `json:"tenants"`
	}
	if err := s.do(ctx, &rq.sess, call{method: "GET", path: "/api/v1/status"}, &status); err != nil {
		v.Error = "Status unavailable: " + errorText(err)
	}
	byID := map[string]*api.TenantStatus{}
	for i := range status.Tenants {
		byID[status.Tenants[i].ID] = &status.Tenants[i]
	}
	now := s.deps.Now()
	for _, t := range list.Tenants {
		row := tenantRow{TenantView: t, Status: byID[t.ID]}
		if st := row.Status; st != nil {
			row.Rate = s.rates.rate(t.ID, now, st.Accepted)
			for _, n := range st.Rejected {
				row.Rejected += n
			}
			for _, sg := range st.Stages {
				row.Dead += sg.Dead
				row.Lag += sg.LagEvents
				row.LagSecs = max(row.LagSecs, sg.LagSeconds)
			}
		}
		v.Tenants = append(v.Tenants, row)
	}
	sort.Slice(v.Tenants, func(i, j int) bool { return v.Tenants[i].Name < v.Tenants[j].Name })
	s.render(w, rq, code, "tenants", page{Title: "Tenants", Nav: "tenants", Refresh: int(s.cfg.Refresh / time.Second), Data: v})
}

// openTenant makes the tenant the one an admin's pages show.
func (s *Server) openTenant(w http.ResponseWriter, rq *request) {
	t, ok := s.deps.Tenants.ByID(rq.PathValue("id"))
	if !ok {
		s.renderError(w, rq, http.StatusNotFound, "No such tenant.")
		return
	}
	sess := rq.sess
	sess.Tenant = t.ID
	if s.reseal(w, rq, sess) {
		http.Redirect(w, rq.Request, "/report", http.StatusSeeOther)
	}
}

// pauseTenant pauses or resumes a tenant: its events are parked, then
// replayed in order on resume.
func (s *Server) pauseTenant(pause bool) handlerFunc {
	action := "resume"
	if pause {
		action = "pause"
	}
	return func(w http.ResponseWriter, rq *request) {
		id := rq.PathValue("id")
		if err := s.do(rq.Context(), &rq.sess, call{method: "POST", path: "/api/v1/tenants/" + url.PathEscape(id) + "/" + action}, nil); err != nil {
			s.fail(w, rq, err)
			return
		}
		msg := "Resumed: parked events replay in order"
		if pause {
			msg = "Paused: its events are parked until you resume it"
		}
		http.Redirect(w, rq.Request, "/tenants?flash="+url.QueryEscape(msg), http.StatusSeeOther)
	}
}

// createKey makes a write or API key and shows it this once.
func (s *Server) createKey(w http.ResponseWriter, rq *request) {
	kind := rq.PostFormValue("kind")
	var out struct {
		Secret string `json:"secret"`
	}
	id := rq.PathValue("id")
	if err := s.do(rq.Context(), &rq.sess, call{method: "POST", path: "/api/v1/tenants/" + url.PathEscape(id) + "/keys", body: jsonBody(map[string]string{"kind": kind})}, &out); err != nil {
		s.showTenants(w, rq, http.StatusBadRequest, tenantsView{Error: "Could not create the key: " + errorText(err)})
		return
	}
	name := id
	if t, ok := s.deps.Tenants.ByID(id); ok {
		name = t.Name
	}
	s.showTenants(w, rq, http.StatusCreated, tenantsView{NewKey: &newKey{Tenant: name, Kind: kind, Secret: out.Secret}})
}

// createTenant makes a tenant and shows its first keys this once.
func (s *Server) createTenant(w http.ResponseWriter, rq *request) {
	var out struct {
		Name     string `json:"name"`
		WriteKey string `json:"write_key"`
		APIKey   string `json:"api_key"`
	}
	if err := s.do(rq.Context(), &rq.sess, call{method: "POST", path: "/api/v1/tenants", body: jsonBody(map[string]string{"name": rq.PostFormValue("name")})}, &out); err != nil {
		s.showTenants(w, rq, http.StatusBadRequest, tenantsView{Error: "Could not create the tenant: " + errorText(err)})
		return
	}
	k := &newKey{Tenant: out.Name, Kind: "api", Secret: out.APIKey, More: []newKey{{Tenant: out.Name, Kind: "write", Secret: out.WriteKey}}}
	s.showTenants(w, rq, http.StatusCreated, tenantsView{NewKey: k})
}
