// Package tenant keeps tenants, their keys and their limits.
//
// Tenants live in a JetStream key-value bucket, so they are as durable as the
// log and shared by every node of a cluster. A Cache watches the bucket and
// serves lookups (write key → tenant) from an immutable in-memory snapshot, so
// a change made through any node's admin API reaches every collector within
// moments and without a restart.
package tenant
