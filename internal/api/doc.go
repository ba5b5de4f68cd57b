// Package api serves Contrail's admin API under /api/v1: tenants, their keys
// and limits, and a live tail of a tenant's accepted events. Every endpoint
// needs the admin token as a Bearer token. Errors are JSON with a stable code
// (see errors.go).
package api
