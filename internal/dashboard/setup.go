package dashboard

import (
	"net/http"

	"github.com/contrailhq/contrail/internal/tenant"
)

// setup is what a new tenant needs to send its first events: the
// tenant's public write key and this server's address.
type setup struct {
	Origin   string
	WriteKey string
}

// setupFor returns the setup of the request's tenant.
func (s *Server) setupFor(rq *request) setup {
	st := setup{Origin: origin(rq.Request)}
	for _, k := range rq.tenant.Keys {
		if k.Kind == tenant.KindWrite && k.Secret != "" {
			st.WriteKey = k.Secret
			break
		}
	}
	return st
}

// origin is the site's own address as the browser reached it.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// setupPage shows how to send events: the snippet, a curl call and the
// Segment SDKs' settings.
func (s *Server) setupPage(w http.ResponseWriter, rq *request) {
	s.render(w, rq, http.StatusOK, "setup", page{Title: "Send events", Nav: "setup", Data: s.setupFor(rq)})
}
