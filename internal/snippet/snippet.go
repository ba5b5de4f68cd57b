package snippet

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Path is where the node serves the snippet.
const Path = "/contrail.js"

// source is the snippet. A string, so that nobody can change it.
//
//go:embed contrail.js
var source string

// maxAge is how long browsers and CDNs may keep the snippet without asking
// again: a new release reaches visitors within minutes, and the ETag makes
// the check after that cheap.
const maxAge = "public, max-age=300"

// Source returns the snippet's JavaScript, as Handler serves it.
func Source() string { return source }

// ETag returns the snippet's strong entity tag, quoted as in the header.
func ETag() string {
	sum := sha256.Sum256([]byte(source))
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Handler returns the handler that serves the snippet to GET and HEAD
// requests, with a strong ETag and 304 answers to If-None-Match.
func Handler() http.Handler {
	return &handler{etag: ETag()}
}

type handler struct {
	etag string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/javascript; charset=utf-8")
	hd.Set("Cache-Control", maxAge)
	hd.Set("ETag", h.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	// Sites that isolate themselves (Cross-Origin-Embedder-Policy:
	// require-corp) may still load the script from the collector's origin.
	hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
	// ServeContent answers If-None-Match (304), HEAD and Range requests.
	http.ServeContent(w, r, "contrail.js", time.Time{}, strings.NewReader(source))
}
