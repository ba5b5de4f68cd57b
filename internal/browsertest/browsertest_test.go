package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/browsertest"
)

const page = `<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title></head>
<body><h1 id="h">Hello</h1>
<script>console.log("ready", 42); setTimeout(() => { throw new Error("boom") });</script>
</body></html>`

// TestBrowser runs the two screens one after the other: t.Setenv forbids
// t.Parallel, and two browsers at once only compete for the CPU.
func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name  string
		opts  []browsertest.Option
		width int
	}{
		{"desktop", nil, browsertest.DesktopWidth},
		{"phone", []browsertest.Option{browsertest.Phone()}, browsertest.PhoneWidth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			artifacts := t.TempDir()
			t.Setenv(browsertest.EnvArtifacts, artifacts)
			ctx := browsertest.New(t, tc.opts...)
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("#h"))))
			text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#h")))
			require.NoError(t, err)
			require.Equal(t, "Hello", text)
			width, err := chromedp.Run(ctx, chromedp.Evaluate[int]("window.innerWidth"))
			require.NoError(t, err)
			require.Equal(t, tc.width, width)
			ua, err := chromedp.Run(ctx, chromedp.Evaluate[string]("navigator.userAgent"))
			require.NoError(t, err)
			require.NotContains(t, ua, "Headless")

			// The exception is thrown from a timer, after the load.
			require.Eventually(t, func() bool {
				return slices.ContainsFunc(browsertest.Console(ctx), func(s string) bool { return strings.Contains(s, "Error: boom") })
			}, 10*time.Second, 10*time.Millisecond, "the exception is recorded")
			require.Contains(t, browsertest.Console(ctx), "console.log: ready 42")

			browsertest.Screenshot(t, ctx, "hello")
			require.FileExists(t, filepath.Join(artifacts, "TestBrowser_"+tc.name+"-hello.png"))
			png, err := os.ReadFile(filepath.Join(artifacts, "TestBrowser_"+tc.name+"-hello.png"))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(png), "\x89PNG"))
		})
	}
}
