// Package snippet serves contrail.js, the tracking snippet that sites load
// with one script tag. The snippet records page views (single-page-app
// navigations included), link clicks and form fills, and sends them to the
// collector as Segment-spec events with navigator.sendBeacon; see
// docs/tracking-snippet.md.
//
// The script is embedded in the binary and never changes while it runs, so
// the handler answers with a strong ETag computed once, and conditional
// requests with 304. Handlers are safe for concurrent use.
package snippet
