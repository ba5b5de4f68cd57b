package deliver

import "errors"

// ErrPrivateAddress means a URL's host is, or resolves to, an address that
// is not public (loopback, private, link-local, CGNAT, multicast,
// unspecified or reserved) while private networks are not allowed. A
// delivery refused for it fails at once.
var ErrPrivateAddress = errors.New("address is not public")

// ErrInvalidURL means a webhook URL is not an absolute http or https URL
// with a host.
var ErrInvalidURL = errors.New("invalid webhook url")

// ErrNoSMTP means an email was to be sent but no SMTP server is configured.
var ErrNoSMTP = errors.New("no smtp server configured")

// ErrInvalidJob means an effect's payload cannot be delivered as it is
// (unreadable JSON, unknown kind, a bad address or header). It fails at
// once: retrying cannot help.
var ErrInvalidJob = errors.New("invalid job")
