// Package collect is the HTTP collector: the Segment-compatible Tracking API,
// the browser short paths, the pixel, the beacon and the form endpoint, which
// stores a web form's post as one event of type form (form.go).
//
// A request is authenticated by write key, read within the tenant's size
// limits, decoded and validated event by event, admitted against the tenant's
// rate and daily quota, framed in the log encoding and handed to the group
// committer of each partition it touches. The handler answers only after
// JetStream acknowledged every message holding its events: a 2xx means stored.
//
// Once the write key is known, the request is refused with 503 when the
// tenant is paused and refuses intake while paused (tenant_paused), or when
// the node's disk is below its floor (disk_low). Over the daily quota, a
// tenant whose over_quota setting is drop gets a 200 in which the events
// over the quota are rejected (quota_exceeded) and the others stored.
//
// Group commit: each partition has one publisher goroutine. While a publish is
// in flight, requests for that partition queue up; the next publish takes all
// of them, up to FlushBytes. Under load this turns thousands of requests into
// a few large appends; when idle, an event waits for nothing but its own ack.
package collect
