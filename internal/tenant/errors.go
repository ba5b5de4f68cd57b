package tenant

import "errors"

// Sentinel errors of the tenant store.
var (
	// ErrNotFound means no tenant has that id or name.
	ErrNotFound = errors.New("tenant not found")
	// ErrNameTaken means another tenant already has that name.
	ErrNameTaken = errors.New("tenant name already taken")
	// ErrInvalidName means the name has characters or a length we refuse.
	ErrInvalidName = errors.New("invalid tenant name: 1-64 letters, digits, space, '_', '.', '-'")
	// ErrKeyNotFound means the tenant has no key with that id.
	ErrKeyNotFound = errors.New("key not found")
)
