// Package app wires a Contrail node from its configuration: the log (embedded
// or external NATS), the tenant store, the collector, the admin API and the
// operational endpoints. It starts them in dependency order and stops them in
// reverse: stop taking requests, flush what was accepted, close the log.
package app
