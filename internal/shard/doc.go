// Package shard runs stream processors exactly once.
//
// A shard owns one partition of a stream. It reads the partition in order
// with an ordered consumer, starting after the position stored in its Pebble
// state, and gives each event to a Processor inside a transaction. The
// effects of every event of a log message, the outputs' bookkeeping and the
// new position are committed in one Pebble batch. Outputs (to DEAD and other
// streams) are published before that commit, with deterministic message ids
// "<stage>.<partition>.<seq>.<i>", so a replay after a crash publishes the
// same ids: JetStream drops them inside its duplicate window, and a
// receiving shard drops anything at or below its per-upstream high-water
// mark (Tx.Duplicate) after it.
//
// An event whose processing fails is published to DEAD with the reason and
// its effects are discarded; the partition moves on. Shards of a node share
// a fixed pool of workers.
package shard
