package snippet_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/snippet"
)

func serve(t *testing.T, method string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, snippet.Path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	snippet.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesTheEmbeddedScript(t *testing.T) {
	t.Parallel()
	resp := serve(t, http.MethodGet, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	onDisk, err := os.ReadFile("contrail.js")
	require.NoError(t, err)
	require.Equal(t, string(onDisk), string(body))
	require.Equal(t, snippet.Source(), string(body))

	h := resp.Header
	require.Equal(t, "application/javascript; charset=utf-8", h.Get("Content-Type"))
	require.Equal(t, "public, max-age=300", h.Get("Cache-Control"))
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	require.Equal(t, "cross-origin", h.Get("Cross-Origin-Resource-Policy"))
	etag := h.Get("ETag")
	require.Equal(t, snippet.ETag(), etag)
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag, "a strong ETag")
}

func TestHandlerConditional(t *testing.T) {
	t.Parallel()
	etag := snippet.ETag()
	f := func(ifNoneMatch string, want int) {
		t.Helper()
		resp := serve(t, http.MethodGet, map[string]string{"If-None-Match": ifNoneMatch})
		require.Equal(t, want, resp.StatusCode, "If-None-Match: %s", ifNoneMatch)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		if want == http.StatusNotModified {
			require.Empty(t, body)
			require.Equal(t, etag, resp.Header.Get("ETag"))
		}
	}
	f(etag, http.StatusNotModified)
	f(`"other", `+etag, http.StatusNotModified)
	f("W/"+etag, http.StatusNotModified) // If-None-Match compares weakly
	f("*", http.StatusNotModified)
	f(`"other"`, http.StatusOK)
}

func TestHandlerMethods(t *testing.T) {
	t.Parallel()
	resp := serve(t, http.MethodHead, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, snippet.ETag(), resp.Header.Get("ETag"))

	resp = serve(t, http.MethodPost, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
}

// The snippet must stay small and must not lose the names the server
// relies on.
func TestScriptContract(t *testing.T) {
	t.Parallel()
	src := snippet.Source()
	require.Less(t, len(src), 10<<10, "the snippet stays small")
	for _, s := range []string{
		`"Link Clicked"`,      // internal/lead maps it to the click_link activity
		`name: "contrail.js"`, // enrich.IsBrowserLibrary
		`"contrail_aid"`, `"ajs_anonymous_id"`,
		`"/v1/page"`, `"/v1/track"`, `"/v1/identify"`, `"/v1/form/"`,
		`type: "text/plain"`, `keepalive: true`,
	} {
		require.True(t, strings.Contains(src, s), "the snippet contains %s", s)
	}
}
