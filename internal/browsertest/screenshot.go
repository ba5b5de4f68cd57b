package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Screenshot saves a PNG of the whole page of ctx (a context from New) as
// name.png in the test's artifact directory (kept with go test -artifacts),
// and a copy as <TestName>-<name>.png in $CONTRAIL_ARTIFACTS when that is
// set. It logs where the files are.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking screenshot %q: %v", name, err)
	}
	name = fileName(name)
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("saving screenshot: %v", err)
	}
	t.Logf("screenshot %s", path)
	if dir := os.Getenv(EnvArtifacts); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("creating %s=%s: %v", EnvArtifacts, dir, err)
		}
		path = filepath.Join(dir, fileName(t.Name())+"-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatalf("saving screenshot: %v", err)
		}
		t.Logf("screenshot %s", path)
	}
}

// fileName makes s safe as a file name: subtests have slashes in their
// names.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
