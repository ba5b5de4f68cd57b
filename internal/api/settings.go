package api

import (
	"fmt"
	"net/http"

	"github.com/contrailhq/contrail/internal/tenant"
)

// getSettings answers a tenant's processing settings, defaults filled in.
func (a *API) getSettings(w http.ResponseWriter, r *http.Request) {
	t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t.Settings.WithDefaults())
}

// setSettings replaces (PUT) or updates (PATCH: only the fields sent) the
// settings; they apply to the events processed from then on.
func (a *API) setSettings(w http.ResponseWriter, r *http.Request) {
	var s tenant.Settings
	if r.Method == http.MethodPatch {
		t, err := a.deps.Tenants.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			a.fail(w, err)
			return
		}
		s = t.Settings
	}
	if err := decodeBody(r, &s); err != nil {
		a.fail(w, err)
		return
	}
	if err := s.Validate(); err != nil {
		a.fail(w, fmt.Errorf("%w: %v", errInvalid, err))
		return
	}
	t, err := a.deps.Tenants.SetSettings(r.Context(), r.PathValue("id"), s)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.applied(r.Context(), t.Revision)
	a.deps.Logger.Info("tenant settings changed", "tenant", t.ID, "settings", t.Settings)
	writeJSON(w, http.StatusOK, t.Settings.WithDefaults())
}
