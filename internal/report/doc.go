// Package report keeps web-reporting rollups and answers queries over them.
//
// A visitor shard counts each event into per-tenant time buckets of its own
// partition (minute buckets, compacted into hours, days and weeks once
// those have closed) in the same Pebble batch as the event's other
// effects, so the rollups are exactly once like the rest of its state. An
// event's hit is first written to a hit log with the rest of its log
// message, and folded into bucket records in batches (hitlog.go). A query
// merges the buckets and the unfolded hits of a tenant across all
// partitions. Unique visitors are
// HyperLogLog sketches (github.com/axiomhq/hyperloglog), which merge
// exactly across buckets and partitions.
//
// Every event is counted in the bucket of its own time. A session is
// counted once, in the bucket where it started; what happens later in it
// (a second page view that makes it no longer a bounce, the time it adds,
// the exit page moving on) is counted as a change in the bucket of the
// event that caused it. A report over a range that holds whole sessions is
// therefore exact, and a session that straddles the range's edges is
// counted once, in the range where it started.
package report
