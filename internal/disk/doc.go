// Package disk watches the free space of the file system that holds a
// directory, so that a node can stop taking writes before the disk is full
// rather than fail in the middle of one.
//
// A Monitor checks the space every Interval from the goroutine of Run and
// publishes the result; Low may be called from any goroutine, at the cost
// of an atomic load, so it is cheap enough to ask on every request.
package disk
