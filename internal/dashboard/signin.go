package dashboard

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// signInView is the sign-in page's data.
type signInView struct {
	Next     string
	Token    string // the form's CSRF token
	Insecure bool   // the connection cannot carry a Secure cookie
}

// preTTL is how long a sign-in form stays good.
const preTTL = time.Hour

// signInPage shows the sign-in form. Its CSRF token is the MAC of a nonce
// in a short-lived cookie, so another site cannot sign a browser in.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.showSignIn(w, r, http.StatusOK, "")
}

func (s *Server) showSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	nonce := randomNonce()
	setCookie(w, r, preCookie, nonce, preTTL)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	v := signInView{Next: safeNext(next), Token: s.seal.token("signin", nonce), Insecure: !secureRequest(r)}
	s.render(w, &request{Request: r}, status, "signin", page{Title: "Sign in", Error: msg, Data: v})
}

// signIn checks the key and starts a session: a tenant's API key shows
// that tenant; the admin token shows every tenant.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	pre, err := r.Cookie(preCookie)
	if err != nil || !s.seal.checkToken("signin", pre.Value, r.PostFormValue(csrfField)) {
		http.Error(w, "missing or invalid CSRF token: reload the sign-in page and try again", http.StatusForbidden)
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	sess := session{Key: key, Nonce: randomNonce(), Expires: s.deps.Now().Add(s.cfg.SessionTTL).Unix()}
	switch {
	case key == "":
		s.showSignIn(w, r, http.StatusUnauthorized, "Paste an API key or the admin token.")
		return
	case subtle.ConstantTimeCompare([]byte(key), []byte(s.deps.AdminToken)) == 1:
		sess.Admin = true
	default:
		t, ok := s.deps.Tenants.ByAPIKey(key)
		if !ok {
			s.deps.Logger.Info("dashboard sign-in refused", "remote", r.RemoteAddr)
			s.showSignIn(w, r, http.StatusUnauthorized, "That key is not a tenant API key or the admin token. (A write key only sends events.)")
			return
		}
		sess.Tenant = t.ID
	}
	v, err := s.seal.seal(sess)
	if err != nil {
		s.deps.Logger.Error("sealing session", "err", err)
		http.Error(w, "signing in failed", http.StatusInternalServerError)
		return
	}
	clearCookie(w, r, preCookie)
	setCookie(w, r, sessionCookie, v, s.cfg.SessionTTL)
	s.deps.Logger.Info("dashboard sign-in", "admin", sess.Admin, "tenant", sess.Tenant)
	next := safeNext(r.PostFormValue("next"))
	if next == "/" && sess.Admin {
		next = "/tenants"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut ends the session.
func (s *Server) signOut(w http.ResponseWriter, rq *request) {
	clearCookie(w, rq.Request, sessionCookie)
	http.Redirect(w, rq.Request, "/signin", http.StatusSeeOther)
}

// reseal stores a changed session (an admin picking a tenant).
func (s *Server) reseal(w http.ResponseWriter, rq *request, sess session) bool {
	v, err := s.seal.seal(sess)
	if err != nil {
		s.fail(w, rq, err)
		return false
	}
	setCookie(w, rq.Request, sessionCookie, v, time.Until(time.Unix(sess.Expires, 0)))
	return true
}
