// Package dashboard serves Contrail's web UI: server-rendered pages for
// web reports, live events, leads, campaigns and (for the admin) tenants.
//
// Every page is rendered on the server with html/template from the API's
// answers (see backend.go); the browser gets HTML and a few hundred lines
// of plain JavaScript that only enhance it (auto-refresh, the live tail,
// the campaign editor's error placement). A signed-in browser holds a
// sealed, HttpOnly, SameSite session cookie; every form that changes
// something carries a CSRF token.
package dashboard

import (
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/tenant"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Tenants finds a session's tenant; *tenant.Cache implements it.
type Tenants interface {
	ByAPIKey(secret string) (*tenant.Tenant, bool)
	ByID(id string) (*tenant.Tenant, bool)
}

// Deps are the dashboard's collaborators.
type Deps struct {
	// API serves the HTTP API (/api/v1/...); the dashboard calls it in
	// process with the session's credential.
	API http.Handler
	// AdminToken signs the admin in, and seals every session.
	AdminToken string
	Tenants    Tenants
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Config tunes the dashboard.
type Config struct {
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration
	// Refresh is how often the report refreshes itself.
	Refresh time.Duration
	// ReportCache is how long a tenant's report answer is kept for the
	// next browser that asks: 0 means 4/5 of Refresh, a negative value
	// keeps none (every page computes its report).
	ReportCache time.Duration
}

// DefaultConfig returns the defaults: a 12-hour session, a 5-second
// refresh.
func DefaultConfig() Config {
	return Config{SessionTTL: 12 * time.Hour, Refresh: 5 * time.Second}
}

// Server is the dashboard.
type Server struct {
	cfg     Config
	deps    Deps
	seal    *sealer
	pages   map[string]*template.Template
	assets  *assets
	rates   rates
	reports reportCache
}

// New returns the dashboard; mount it with Register.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.API == nil || deps.Tenants == nil {
		return nil, errors.New("the dashboard needs the API and the tenants")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	deps.Logger = deps.Logger.With("component", "dashboard")
	if deps.Now == nil {
		deps.Now = time.Now
	}
	def := DefaultConfig()
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = def.SessionTTL
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = def.Refresh
	}
	if cfg.ReportCache == 0 {
		cfg.ReportCache = cfg.Refresh * 4 / 5
	}
	seal, err := newSealer(deps.AdminToken)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, seal: seal}
	if s.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if s.pages, err = s.parseTemplates(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register mounts the dashboard's pages on mux, at the root of the site.
func (s *Server) Register(mux *http.ServeMux) {
	guard := http.NewCrossOriginProtection()
	h := func(pattern string, f http.Handler) { mux.Handle(pattern, secureHeaders(guard.Handler(f))) }
	h("GET /assets/", s.assets)
	h("GET /signin", http.HandlerFunc(s.signInPage))
	h("POST /signin", http.HandlerFunc(s.signIn))
	h("POST /signout", s.authed(s.signOut))
	h("GET /{$}", s.authed(s.home))
	h("GET /report", s.tenantPage(s.reportPage))
	h("GET /setup", s.tenantPage(s.setupPage))
	h("GET /live", s.tenantPage(s.livePage))
	h("GET /live/stream", s.tenantPage(s.liveStream))
	h("GET /leads", s.tenantPage(s.leadsPage))
	h("GET /leads/{id}", s.tenantPage(s.leadPage))
	h("GET /campaigns", s.tenantPage(s.campaignsPage))
	h("GET /campaigns/new", s.tenantPage(s.campaignEditor))
	h("POST /campaigns/new", s.tenantPage(s.saveCampaign))
	h("GET /campaigns/{id}", s.tenantPage(s.campaignPage))
	h("GET /campaigns/{id}/edit", s.tenantPage(s.campaignEditor))
	h("POST /campaigns/{id}/edit", s.tenantPage(s.saveCampaign))
	h("POST /campaigns/{id}/{action}", s.tenantPage(s.campaignAction))
	h("GET /campaigns/{id}/runs/{run}", s.tenantPage(s.runPage))
	h("GET /tenants", s.adminPage(s.tenantsPage))
	h("POST /tenants", s.adminPage(s.createTenant))
	h("POST /tenants/{id}/open", s.adminPage(s.openTenant))
	h("POST /tenants/{id}/pause", s.adminPage(s.pauseTenant(true)))
	h("POST /tenants/{id}/resume", s.adminPage(s.pauseTenant(false)))
	h("POST /tenants/{id}/keys", s.adminPage(s.createKey))
}

// request is one signed-in request.
type request struct {
	*http.Request
	sess session
	// tenant is the tenant shown; nil for an admin who has not picked one.
	tenant *tenant.Tenant
	csrf   string
}

// handlerFunc is a signed-in page.
type handlerFunc func(w http.ResponseWriter, rq *request)

// authed opens the session, checks its credential is still good, and on
// a POST checks the CSRF token; else it sends the browser to sign in
// (or answers 403 for a bad token).
func (s *Server) authed(next handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq, ok := s.session(r)
		if !ok {
			clearCookie(w, r, sessionCookie)
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "signed out: sign in again", http.StatusUnauthorized)
				return
			}
			if r.Header.Get("X-Contrail-Partial") != "" || r.URL.Path == "/live/stream" {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			next := r.URL.RequestURI()
			if next == "/" {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			got := r.Header.Get(csrfHeader)
			if got == "" {
				got = r.PostFormValue(csrfField)
			}
			if !s.seal.checkToken("session", rq.sess.Nonce, got) {
				s.deps.Logger.Warn("request refused: CSRF token missing or wrong", "path", r.URL.Path)
				http.Error(w, "missing or invalid CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		next(w, rq)
	})
}

// session returns the request's session when its cookie opens and its
// credential still signs in.
func (s *Server) session(r *http.Request) (*request, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	sess, err := s.seal.open(c.Value, s.deps.Now())
	if err != nil {
		return nil, false
	}
	rq := &request{Request: r, sess: sess, csrf: s.seal.token("session", sess.Nonce)}
	if sess.Admin {
		if subtle.ConstantTimeCompare([]byte(sess.Key), []byte(s.deps.AdminToken)) != 1 {
			return nil, false
		}
		if sess.Tenant != "" {
			rq.tenant, _ = s.deps.Tenants.ByID(sess.Tenant)
		}
		return rq, true
	}
	t, ok := s.deps.Tenants.ByAPIKey(sess.Key)
	if !ok || t.ID != sess.Tenant {
		return nil, false // the key was revoked
	}
	rq.tenant = t
	return rq, true
}

// tenantPage is a page of one tenant's data; an admin who has not picked
// a tenant is sent to pick one.
func (s *Server) tenantPage(next handlerFunc) http.Handler {
	return s.authed(func(w http.ResponseWriter, rq *request) {
		if rq.tenant == nil {
			if rq.Method == http.MethodGet {
				http.Redirect(w, rq.Request, "/tenants", http.StatusSeeOther)
				return
			}
			http.Error(w, "pick a tenant first", http.StatusConflict)
			return
		}
		next(w, rq)
	})
}

// adminPage is a page only the admin sees.
func (s *Server) adminPage(next handlerFunc) http.Handler {
	return s.authed(func(w http.ResponseWriter, rq *request) {
		if !rq.sess.Admin {
			s.renderError(w, rq, http.StatusForbidden, "Only the admin sees tenants.")
			return
		}
		next(w, rq)
	})
}

// home sends the browser to its first page.
func (s *Server) home(w http.ResponseWriter, rq *request) {
	if rq.tenant == nil {
		http.Redirect(w, rq.Request, "/tenants", http.StatusSeeOther)
		return
	}
	http.Redirect(w, rq.Request, "/report", http.StatusSeeOther)
}

// secureHeaders sets the headers every dashboard answer carries: no
// framing, no inline script, no caching of signed-in pages.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/assets/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// safeNext returns next when it is a path of this site, else "/".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

// subFS is fs.Sub that cannot fail on our embedded trees.
func subFS(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(fmt.Sprintf("embedded %s: %v", dir, err))
	}
	return sub
}
