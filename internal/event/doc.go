// Package event defines the event model that flows through Contrail and its
// compact binary encoding in the log.
//
// A log message holds a batch of events for one partition. The encoding is
// versioned by the first byte of the message so that readers can refuse (or
// later convert) messages written by a newer or older format. This package is
// a leaf: it imports nothing from Contrail.
package event
