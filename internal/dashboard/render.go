package dashboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav names the menu entry of the page.
	Nav    string
	Tenant string
	Admin  bool
	CSRF   string
	// Flash is a one-line notice; Error an error shown above the page.
	Flash, Error string
	// Refresh, when set, makes the page's main part refresh itself.
	Refresh int
	Data    any
	assets  *assets
}

// Asset returns the versioned path of an embedded asset.
func (p page) Asset(name string) string { return p.assets.path(name) }

// parseTemplates parses the layout with each page.
func (s *Server) parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"num":       formatNum,
		"full":      formatInt,
		"pct":       formatPct,
		"secs":      formatSeconds,
		"when":      formatTime,
		"ago":       func(t time.Time) string { return formatAgo(s.deps.Now(), t) },
		"share":     share,
		"query":     func(base string, kv ...string) string { return withQuery(base, kv...) },
		"deref":     func(f *float64) float64 { return *f },
		"derefTime": func(t *time.Time) time.Time { return *t },
		"int64":     func(f float64) int64 { return int64(math.Round(f)) },
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("parsing dashboard layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("listing dashboard templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, name := range names {
		n := path.Base(name)
		if n == "layout.html" || n == "parts.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, fmt.Errorf("parsing dashboard template %s: %w", n, err)
		}
		out[strings.TrimSuffix(n, ".html")] = t
	}
	return out, nil
}

// render writes a page: the whole document, or only its main part when
// the browser's refresh asks (X-Contrail-Partial).
func (s *Server) render(w http.ResponseWriter, rq *request, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		panic("no dashboard template " + name)
	}
	p.assets = s.assets
	if rq != nil {
		p.CSRF, p.Admin = rq.csrf, rq.sess.Admin
		if rq.tenant != nil {
			p.Tenant = rq.tenant.Name
		}
		if p.Flash == "" {
			p.Flash = rq.URL.Query().Get("flash")
		}
	}
	root := "layout.html"
	if rq != nil && rq.Header.Get("X-Contrail-Partial") != "" {
		root = "main"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, root, p); err != nil {
		s.deps.Logger.Error("rendering page", "page", name, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows an error page.
func (s *Server) renderError(w http.ResponseWriter, rq *request, status int, msg string) {
	s.render(w, rq, status, "error", page{Title: http.StatusText(status), Error: msg})
}

// fail shows an API error: a missing thing as 404, the rest as the API
// answered it.
func (s *Server) fail(w http.ResponseWriter, rq *request, err error) {
	if e, ok := err.(*apiError); ok {
		s.renderError(w, rq, e.Status, e.Message)
		return
	}
	s.deps.Logger.Error("dashboard request failed", "path", rq.URL.Path, "err", err)
	s.renderError(w, rq, http.StatusInternalServerError, "Something went wrong; the log says what.")
}

// assets serves the embedded CSS and JavaScript under content-hashed
// paths, cached for a year.
type assets struct {
	files map[string][]byte // by versioned path
	paths map[string]string // name → versioned path
}

func loadAssets() (*assets, error) {
	a := &assets{files: map[string][]byte{}, paths: map[string]string{}}
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assetFS, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "assets/")
		ext := path.Ext(name)
		v := "/assets/" + strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:5]) + ext
		a.files[v], a.paths[name] = b, v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading dashboard assets: %w", err)
	}
	return a, nil
}

func (a *assets) path(name string) string {
	if p, ok := a.paths[name]; ok {
		return p
	}
	panic("no dashboard asset " + name)
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := a.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(r.URL.Path)))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}

// formatNum writes a count short: 987, 12.3k, 4.5M.
func formatNum(n int64) string {
	f := float64(n)
	switch {
	case math.Abs(f) >= 1e9:
		return trimZero(strconv.FormatFloat(f/1e9, 'f', 1, 64)) + "B"
	case math.Abs(f) >= 1e6:
		return trimZero(strconv.FormatFloat(f/1e6, 'f', 1, 64)) + "M"
	case math.Abs(f) >= 1e4:
		return trimZero(strconv.FormatFloat(f/1e3, 'f', 1, 64)) + "k"
	}
	return formatInt(n)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

// formatInt writes a count in full, with thin separators: 1 234 567.
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatPct writes a rate in [0, 1] as a percentage.
func formatPct(f float64) string {
	return trimZero(strconv.FormatFloat(f*100, 'f', 1, 64)) + "%"
}

// formatSeconds writes a duration in seconds as 1m 05s.
func formatSeconds(f float64) string {
	d := time.Duration(f * float64(time.Second)).Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	if d < time.Hour {
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// formatTime writes a time for a table: to the second, in its own zone.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// formatAgo writes how long ago t was.
func formatAgo(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + formatSeconds(-d.Seconds())
	case d < 5*time.Second:
		return "just now"
	case d < 48*time.Hour:
		return formatSeconds(d.Seconds()) + " ago"
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// share is n's share of max in percent, for a bar's width.
func share(n, max int64) string {
	if max <= 0 {
		return "0"
	}
	return strconv.FormatFloat(100*float64(n)/float64(max), 'f', 1, 64)
}

// withQuery returns base with the key/value pairs set in its query; an
// empty value removes the key.
func withQuery(base string, kv ...string) string {
	path, raw, _ := strings.Cut(base, "?")
	q, _ := url.ParseQuery(raw)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
