// Package loadgen is the load generator behind `contrail bench ingest`: a
// realistic, deterministic model of Segment-style browser traffic, and a
// driver that posts it to a collector's /v1/batch and measures what comes
// back.
//
// The Model derives every visitor's identity from a seed instead of storing
// it, and writes events by appending bytes, without reflection, so that the
// generator spends little of the CPU the measured server needs. The same
// ModelConfig always produces the same bytes; models that share a Seed but
// not a Stream share the visitor pool but never a messageId.
//
// Run sends either open-loop at a target rate, where each request has a due
// time and its latency counts from that due time (a slow server cannot slow
// the schedule down and hide its own latency: "coordinated omission"), or
// closed-loop as fast as its workers can. It counts events from the
// collector's "accepted" and "rejected" answer fields, failed requests by
// status, and transport errors; with a metrics URL it also reports the
// server's CPU seconds per million accepted events. Run stops at its
// Duration or when its context is cancelled, and always waits for the
// requests in flight, so that Accepted matches what the server stored.
//
// With a metrics URL, Run also follows what the node's visitor shards do
// with the events (Processing): it reads the shards' counters, lag gauges
// and ingest-to-processed histogram before the load, every second during
// it, and, with a Drain, every 100ms after it until the shards have
// processed as many events as the collector accepted. That wait is the
// time back to real time: processing kept up if it took at most
// KeptUpWithin. Latency quantiles come from the server's histogram
// buckets, interpolated, so they are only as fine as the buckets. A node
// without shard series (a collector-only node) is reported as such.
//
// The same scrapes tell what the node's trigger campaigns did (Campaigns):
// runs entered, steps taken (actions/s), webhooks delivered, outbox writes
// per minute, and the ingest-to-trigger and ingest-to-delivered quantiles
// from the differences of those histograms' buckets. When the server
// counted no campaign work during the run, the report says nothing of
// campaigns. When it did, Run waits after processing has caught up, within
// the same Drain, until the campaigns settle: the lead shards' lag gauges
// at zero and their counters still for 300ms, and nothing left in the
// senders. A Receiver is a webhook endpoint for such runs that answers at
// once and counts what it was sent.
//
// A Model is not safe for concurrent use; Run gives each worker its own.
// Run may be called concurrently.
package loadgen
