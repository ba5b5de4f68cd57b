package loadgen

import "errors"

// ErrInvalidOptions is wrapped by the error Run returns when its Options
// cannot describe a run (a missing URL, a negative rate, ...). Nothing was
// sent.
var ErrInvalidOptions = errors.New("invalid load options")

// errBodyClosed is returned by a read of a request body after the transport
// closed it.
var errBodyClosed = errors.New("request body read after close")

// errBodyReleased is returned when the transport asks for a fresh copy of a
// request body whose buffer was already recycled.
var errBodyReleased = errors.New("request body no longer available")
