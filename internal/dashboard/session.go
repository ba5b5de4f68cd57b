package dashboard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Cookie names. The session cookie holds a sealed session; the pre-session
// cookie only carries the nonce of the sign-in form's CSRF token.
const (
	sessionCookie = "contrail_session"
	preCookie     = "contrail_pre"
	csrfField     = "_csrf"
	csrfHeader    = "X-CSRF-Token"
)

// session is what a signed-in browser holds, sealed (AES-GCM) in its
// cookie: the credential it signed in with, which every API call of its
// requests carries, so that the API decides what it may see, and revoking
// the key ends the session. The browser cannot read it; it never appears
// in a page or a URL.
type session struct {
	// Key is a tenant API key, or the admin token when Admin.
	Key   string `json:"k"`
	Admin bool   `json:"a,omitempty"`
	// Tenant is the tenant shown: the key's, or the one an admin picked.
	Tenant string `json:"t,omitempty"`
	// Nonce is random per sign-in; the CSRF token is its MAC.
	Nonce string `json:"n"`
	// Expires is when the session ends, in Unix seconds.
	Expires int64 `json:"e"`
}

// sealer seals and opens sessions and makes CSRF tokens, with keys derived
// from one secret.
type sealer struct {
	aead cipher.AEAD
	mac  []byte
}

// newSealer derives the session and CSRF keys from secret (the admin
// token): nodes sharing it accept each other's sessions, and rotating it
// signs everyone out.
func newSealer(secret string) (*sealer, error) {
	if secret == "" {
		return nil, errors.New("dashboard sessions need a secret (the admin token)")
	}
	enc, err := hkdf.Key(sha256.New, []byte(secret), []byte("contrail dashboard"), "session", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the session key: %w", err)
	}
	mac, err := hkdf.Key(sha256.New, []byte(secret), []byte("contrail dashboard"), "csrf", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the CSRF key: %w", err)
	}
	block, err := aes.NewCipher(enc)
	if err != nil {
		return nil, fmt.Errorf("creating the session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating the session cipher: %w", err)
	}
	return &sealer{aead: aead, mac: mac}, nil
}

// seal encrypts s into a cookie value.
func (k *sealer) seal(s session) (string, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encoding session: %w", err)
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("reading random nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, []byte(sessionCookie))), nil
}

// open decrypts a cookie value; it fails on anything it did not seal or
// that has expired.
func (k *sealer) open(v string, now time.Time) (session, error) {
	var s session
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < k.aead.NonceSize() {
		return s, errors.New("malformed session cookie")
	}
	plain, err := k.aead.Open(nil, b[:k.aead.NonceSize()], b[k.aead.NonceSize():], []byte(sessionCookie))
	if err != nil {
		return s, errors.New("session cookie not sealed by this deployment")
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, fmt.Errorf("decoding session: %w", err)
	}
	if now.Unix() >= s.Expires {
		return s, errors.New("session expired")
	}
	return s, nil
}

// token is the CSRF token of a nonce: a MAC the browser cannot forge
// without reading our page.
func (k *sealer) token(purpose, nonce string) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkToken reports whether got is the token of nonce.
func (k *sealer) checkToken(purpose, nonce, got string) bool {
	if nonce == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(k.token(purpose, nonce)), []byte(got)) == 1
}

// randomNonce returns 128 random bits, encoded.
func randomNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// secureRequest reports whether cookies set in answer to r may be Secure:
// the connection is TLS (here or at a proxy that says so), or the browser
// talks to a loopback host, which browsers treat as a secure context.
func secureRequest(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for the whole site,
// Secure whenever the browser will send it back so.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/",
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode,
	})
}

// clearCookie removes a cookie.
func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
}
