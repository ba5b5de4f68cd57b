// Package api serves Contrail's API under /api/v1: tenants, their keys,
// limits and settings, the DEAD stream, shard status and a live tail of a
// tenant's accepted events (admin token as a Bearer token), and the web
// reports (a tenant API key, or the admin token with tenant=). Errors are
// JSON with a stable code (see errors.go).
package api
