package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Environment variables that configure the browser tests.
const (
	// EnvChromium names the browser binary; DefaultChromium when unset.
	EnvChromium = "CONTRAIL_CHROMIUM"
	// EnvBrowserTests set to "require" makes a missing browser fail the
	// test instead of skipping it.
	EnvBrowserTests = "CONTRAIL_BROWSER_TESTS"
	// EnvArtifacts names a directory that receives a copy of every
	// screenshot, as <TestName>-<name>.png.
	EnvArtifacts = "CONTRAIL_ARTIFACTS"
)

// DefaultChromium is Debian's Chromium.
const DefaultChromium = "/usr/bin/chromium"

// Screen sizes, in CSS pixels.
const (
	DesktopWidth, DesktopHeight = 1280, 900
	PhoneWidth, PhoneHeight     = 390, 844 // an iPhone 14
)

// DefaultTimeout bounds the life of a test's browser.
const DefaultTimeout = 60 * time.Second

// Option changes how New starts the browser.
type Option func(*options)

type options struct {
	phone   bool
	timeout time.Duration
}

// Phone emulates a phone: a 390x844 viewport at 3x, mobile layout and touch.
func Phone() Option { return func(o *options) { o.phone = true } }

// Timeout replaces DefaultTimeout: after d, the browser is stopped and every
// further action on its context fails.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// New starts a headless Chromium for the test and returns the context of its
// first tab, for chromedp.Run and chromedp.Do. The browser is stopped when
// the test ends. The viewport is a desktop's (1280x900) unless [Phone] is
// given.
//
// The user agent is the browser's own without "Headless": Contrail counts a
// headless browser as a bot, and a page seen by a bot triggers nothing.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	path := chromiumPath(t)
	rec := &recorder{}
	profile := t.TempDir() // before the cleanup below, so removed after the browser stops
	// Chromium keeps a socket in $TMPDIR. A socket's path is short (108
	// bytes), and t.TempDir's paths can be longer.
	tmp, err := os.MkdirTemp("", "chromium")
	if err != nil {
		t.Fatalf("creating the browser's TMPDIR: %v", err)
	}

	base, cancelBase := context.WithTimeout(context.Background(), o.timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, append(allocatorOptions(path, profile), chromedp.Env("TMPDIR="+tmp))...)
	ctx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(rec.logf), chromedp.WithErrorf(rec.logf))
	ctx = context.WithValue(ctx, recorderKey{}, rec)
	t.Cleanup(func() {
		if base.Err() == context.DeadlineExceeded {
			t.Errorf("the browser was stopped after %s: the test took too long (browsertest.Timeout)", o.timeout)
		}
		cancelTab()
		cancelAlloc() // waits until the browser has exited
		cancelBase()
		if err := os.RemoveAll(tmp); err != nil {
			t.Errorf("removing the browser's TMPDIR: %v", err)
		}
		rec.close()
		if t.Failed() {
			rec.dump(t)
		}
	})

	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	if err := chromedp.Listen(ctx, rec.event); err != nil {
		t.Fatalf("listening to the page's console: %v", err)
	}
	if err := setup(ctx, o); err != nil {
		t.Fatalf("setting up the browser: %v", err)
	}
	return ctx
}

// chromiumPath returns the browser binary, or skips the test (fails it when
// the browser is required) when there is none.
func chromiumPath(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvChromium)
	if path == "" {
		path = DefaultChromium
	}
	full, err := exec.LookPath(path)
	if err == nil {
		return full
	}
	msg := fmt.Sprintf("no browser for the browser tests: %v; install Chromium (apt-get install chromium) or set %s to its binary", err, EnvChromium)
	if os.Getenv(EnvBrowserTests) == "require" {
		t.Fatalf("%s (%s=require)", msg, EnvBrowserTests)
	}
	t.Skipf("%s; set %s=require to fail instead", msg, EnvBrowserTests)
	return ""
}

// allocatorOptions are the browser's flags: headless, and quiet on the
// network. Without the background-networking flags Chromium keeps trying to
// reach Google's services, which floods a closed network.
func allocatorOptions(path, profile string) []chromedp.ExecAllocatorOption {
	return append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(DesktopWidth, DesktopHeight),
	)
}

// setup sets the user agent and the viewport of the tab.
func setup(ctx context.Context, o options) error {
	v, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		return fmt.Errorf("reading the browser version: %w", err)
	}
	ua := strings.Replace(v.UserAgent, "HeadlessChrome/", "Chrome/", 1)
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		return fmt.Errorf("setting the user agent: %w", err)
	}
	w, h, scale := int64(DesktopWidth), int64(DesktopHeight), 1.0
	viewport := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if o.phone {
		w, h, scale = PhoneWidth, PhoneHeight, 3
		viewport = []chromedp.EmulateViewportOption{chromedp.EmulateScale(scale), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h, viewport...)); err != nil {
		return fmt.Errorf("setting the viewport to %dx%d: %w", w, h, err)
	}
	return nil
}

// recorder keeps what the page said: console messages, uncaught exceptions
// and chromedp's own complaints.
type recorder struct {
	mu         sync.Mutex
	closed     bool
	lines      []string
	exceptions []string
}

type recorderKey struct{}

func recorderOf(ctx context.Context) *recorder {
	rec, _ := ctx.Value(recorderKey{}).(*recorder)
	return rec
}

// event is the chromedp listener: it runs on the tab's reading goroutine
// and must return at once.
func (r *recorder) event(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		args := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			args = append(args, remoteText(a))
		}
		r.add(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")), false)
	case *runtime.EventExceptionThrown:
		r.add("uncaught exception: "+exceptionText(ev.ExceptionDetails), true)
	}
}

func (r *recorder) logf(format string, args ...any) {
	r.add("chromedp: "+fmt.Sprintf(format, args...), false)
}

func (r *recorder) add(line string, exception bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.lines = append(r.lines, line)
	if exception {
		r.exceptions = append(r.exceptions, line)
	}
}

// close stops recording: the browser's goroutines may outlive the test.
func (r *recorder) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

func (r *recorder) dump(t testing.TB) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == 0 {
		t.Log("browser console: empty")
		return
	}
	t.Logf("browser console (%d messages):\n\t%s", len(r.lines), strings.Join(r.lines, "\n\t"))
}

// remoteText renders a console argument: a string as it is, another value
// as JSON or as the browser describes it.
func remoteText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return "null"
	case o.Type == runtime.RemoteObjectTypeString && len(o.Value) > 1:
		return strings.Trim(string(o.Value), `"`)
	case len(o.Value) > 0:
		return string(o.Value)
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Description != "":
		return o.Description
	}
	return string(o.Type)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text += " " + d.Exception.Description // the error and its stack
	}
	return fmt.Sprintf("%s (%s:%d:%d)", text, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// Console returns the console messages and exceptions of the browser of
// ctx (a context from New) so far.
func Console(ctx context.Context) []string {
	rec := recorderOf(ctx)
	if rec == nil {
		return nil
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.lines...)
}

// RequireNoExceptions fails the test if a page of the browser of ctx threw
// an exception that nothing caught, up to the last chromedp action that
// returned.
func RequireNoExceptions(t testing.TB, ctx context.Context) {
	t.Helper()
	rec := recorderOf(ctx)
	if rec == nil {
		t.Fatal("RequireNoExceptions needs a context from browsertest.New")
		return
	}
	rec.mu.Lock()
	exceptions := append([]string(nil), rec.exceptions...)
	rec.mu.Unlock()
	if len(exceptions) > 0 {
		t.Fatalf("the page threw %d uncaught exceptions:\n\t%s", len(exceptions), strings.Join(exceptions, "\n\t"))
	}
}
