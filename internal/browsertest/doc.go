// Package browsertest runs pages in a real, headless Chromium for tests:
// the tracking snippet end to end, and the dashboard on a desktop and a
// phone-sized screen. It is built on chromedp.
//
// [New] starts one browser per test and stops it when the test ends; every
// browser has its own profile directory, so tests may run in parallel. A
// test fails instead of hanging when the browser stops answering: the
// browser lives at most a fixed time (60s by default).
//
// The page's console messages and uncaught exceptions are kept and written
// to the test log when the test fails. [Screenshot] saves a PNG as a test
// artifact.
//
// Without a browser the tests are skipped, unless the environment variable
// CONTRAIL_BROWSER_TESTS=require is set (CI sets it): then they fail, so
// that CI never skips them silently. CONTRAIL_CHROMIUM names the browser
// binary (default /usr/bin/chromium).
package browsertest
