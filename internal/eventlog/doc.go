// Package eventlog is Contrail's durable log on NATS JetStream.
//
// It creates the streams idempotently (EVENTS with subjects ev.<p>, DEAD with
// subjects dead.<tenant>), appends batch messages with a Nats-Msg-Id so that a
// retried append is stored once, and reads partitions in order with ordered,
// ephemeral consumers. Append returns only after JetStream acknowledged the
// message, which is what lets the collector acknowledge a client.
//
// The log can run on an embedded nats-server (see StartEmbedded) or on an
// external NATS deployment; the Log type does not know which.
package eventlog
