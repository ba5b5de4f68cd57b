// Package visitor is the processor of the visitor shards, which read the
// EVENTS stream. This first version deduplicates events by (tenant,
// messageId) over a window of at least 24 hours, in shard state, and counts
// what it processed; enrichment, identity, sessions and anonymous history
// build on it (DESIGN.md §3, §6, §7).
//
// Processing is deterministic: the dedup window is measured on the event's
// receivedAt, never on the wall clock.
package visitor
