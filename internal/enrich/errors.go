package enrich

import "errors"

// ErrInvalidIPPolicy is returned by [IPPolicy.Validate] for a policy other
// than keep, anonymize or drop.
var ErrInvalidIPPolicy = errors.New("invalid IP policy")
