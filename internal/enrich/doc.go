// Package enrich holds the pure, deterministic functions that the visitor
// shard applies to every event before identity and sessions: user-agent
// parsing and bot detection, referrer and channel classification, URL path
// and UTM extraction, the IP policy and the country lookup.
//
// The functions run per event, up to ~100k events/s on two cores, so they are
// written to be cheap (tens to hundreds of nanoseconds; see
// enrich_bench_test.go) and, in the steady state, allocate at most once:
// for a new string that is the result (an anonymized IP, a URL-decoded UTM
// value, a lower-cased host, the copy of a campaign object), or for the
// public-suffix lookup of a referrer that the tables do not know.
//
// Guarantees:
//   - Every function is deterministic: the same input gives the same output,
//     on every node and after every restart. Nothing reads the clock or the
//     environment.
//   - There is no package-level mutable state. The only package-level values
//     are read-only tables, some compiled lazily once (the crawler patterns).
//   - The free functions and [Geo] are safe for concurrent use. A [UAParser]
//     is safe for concurrent use too (its cache is behind a mutex), though it
//     is meant to be owned by one shard.
//   - Strings returned by [Referrer], [Channel], [Path] and [UTMFromURL] may be
//     substrings of their arguments, as with strings.Cut: a caller that passes
//     strings built without copying over a reused buffer must copy the results
//     it keeps. [UAParser.Parse], [UTMFromCampaignJSON] and [Geo.Country]
//     never return memory owned by the caller.
package enrich
