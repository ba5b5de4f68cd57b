package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/store"
)

// Tx is the view a Processor has of its shard while it processes one event:
// reads see the committed state, the earlier events of the same log message
// and the event's own writes. Writes and outputs take effect only if Process
// returns nil.
//
// The writes of a message's applied events are kept in a map (the message
// overlay) and in a write-only Pebble batch; reads look in the event's
// overlay, then the message's, then the database. That is cheaper than an
// indexed batch, whose every read and write walks a skiplist.
type Tx struct {
	// Stream and Partition name the shard.
	Stream    string
	Partition int
	// Seq is the stream sequence of the log message; Index the event's
	// position in it.
	Seq   uint64
	Index int
	// Replayed says the event comes from PARKED: Seq and Index are those
	// it had in the message it was parked from, and the message's other
	// events were applied then. A processor that keys state by Seq alone
	// (per message, not per event) must tell the two apart.
	Replayed bool

	db      *store.Store
	batch   *pebble.Batch
	overlay map[string]entry // this event's writes
	msg     map[string]entry // the message's applied writes
	msgDel  [][2][]byte      // the message's applied range deletions
	ranges  [][2][]byte
	outputs []Output
	// frames holds the event's EmitEvent frames, back to back; emitted
	// names the subject of each.
	frames  []byte
	emitted []emitted
	// externals are the event's external effects.
	externals []External
}

type emitted struct {
	subject    string
	start, end int
}

type entry struct {
	value   []byte
	deleted bool
}

// Output is a message a processor emits to another stream.
type Output struct {
	Subject string
	Data    []byte
	Headers map[string]string
}

// begin starts a log message: a new batch and an empty message overlay.
func (tx *Tx) begin(db *store.Store, batch *pebble.Batch) {
	tx.db, tx.batch = db, batch
	clear(tx.msg)
	tx.msgDel = tx.msgDel[:0]
}

func (tx *Tx) reset(seq uint64, index int) {
	tx.Seq, tx.Index = seq, index
	clear(tx.overlay)
	tx.ranges = tx.ranges[:0]
	tx.outputs = tx.outputs[:0]
	tx.frames = tx.frames[:0]
	tx.emitted = tx.emitted[:0]
	tx.externals = tx.externals[:0]
}

// Get returns the value of key, or nil when it is absent.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	if e, ok := tx.overlay[string(key)]; ok {
		if e.deleted {
			return nil, nil
		}
		return e.value, nil
	}
	if e, ok := tx.msg[string(key)]; ok {
		if e.deleted {
			return nil, nil
		}
		return e.value, nil
	}
	if tx.inDeletedRange(key) {
		return nil, nil
	}
	return store.Get(tx.db.DB(), key)
}

// inDeletedRange reports whether an earlier event of the message deleted
// the range holding key (and no later one wrote it: that would be in msg).
func (tx *Tx) inDeletedRange(key []byte) bool {
	for _, r := range tx.msgDel {
		if bytes.Compare(key, r[0]) >= 0 && bytes.Compare(key, r[1]) < 0 {
			return true
		}
	}
	return false
}

// Set writes key. value is copied.
func (tx *Tx) Set(key, value []byte) {
	tx.overlay[string(key)] = entry{value: append([]byte(nil), value...)}
}

// Delete removes key.
func (tx *Tx) Delete(key []byte) { tx.overlay[string(key)] = entry{deleted: true} }

// DeleteRange removes the keys in [start, end) when the event commits.
// Reads in the same event do not see it; it is meant for expiring old state.
func (tx *Tx) DeleteRange(start, end []byte) {
	tx.ranges = append(tx.ranges, [2][]byte{append([]byte(nil), start...), append([]byte(nil), end...)})
}

// Emit queues an output, published before the commit with a deterministic id.
func (tx *Tx) Emit(o Output) { tx.outputs = append(tx.outputs, o) }

// EmitEvent queues e for subject. All the events that one log message's
// processing emits to a subject are published as one batch message, in the
// order they were emitted, before the raw outputs of Emit.
func (tx *Tx) EmitEvent(subject string, e *event.Event) {
	start := len(tx.frames)
	tx.frames = event.AppendFrame(tx.frames, e)
	tx.emitted = append(tx.emitted, emitted{subject: subject, start: start, end: len(tx.frames)})
}

// Scan calls fn with the committed keys in [lower, upper), minus those
// that earlier events of the log message deleted, with their latest
// values. Keys that the message's events created are not visited, nor are
// this event's own writes: Scan is meant for sweeping old state. fn's
// slices are valid only during the call; it returns false to stop.
func (tx *Tx) Scan(lower, upper []byte, fn func(key, value []byte) bool) error {
	it, err := tx.db.NewIter(lower, upper)
	if err != nil {
		return fmt.Errorf("scanning %q..%q: %w", lower, upper, err)
	}
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if e, ok := tx.msg[string(it.Key())]; ok {
			if e.deleted {
				continue
			}
			v = e.value
		} else if tx.inDeletedRange(it.Key()) {
			continue
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scanning %q..%q: %w", lower, upper, err)
	}
	return nil
}

// apply moves the event's writes into the message overlay. They reach the
// batch in flush, once per key however often the message's events wrote
// it: a visitor's record or a tenant's counter is inserted into the
// memtable once per message.
func (tx *Tx) apply() {
	for _, r := range tx.ranges {
		tx.msgDel = append(tx.msgDel, r)
		for k := range tx.msg {
			if k >= string(r[0]) && k < string(r[1]) {
				tx.msg[k] = entry{deleted: true}
			}
		}
	}
	for k, e := range tx.overlay {
		tx.msg[k] = e
	}
}

// flush writes the message's range deletions, then its keys, to the batch.
// A key written after a range deletion is in msg and lands after it; one
// written before is marked deleted in msg.
func (tx *Tx) flush() error {
	for _, r := range tx.msgDel {
		if err := tx.batch.DeleteRange(r[0], r[1], nil); err != nil {
			return fmt.Errorf("deleting range %q..%q: %w", r[0], r[1], err)
		}
	}
	for k, e := range tx.msg {
		var err error
		if e.deleted {
			err = tx.batch.Delete([]byte(k), nil)
		} else {
			err = tx.batch.Set([]byte(k), e.value, nil)
		}
		if err != nil {
			return fmt.Errorf("writing %q to batch: %w", k, err)
		}
	}
	return nil
}

// OutputID is the deterministic id of output i of message seq of a stage's
// partition p.
func OutputID(stage string, p int, seq uint64, i int) string {
	return stage + "." + strconv.Itoa(p) + "." + strconv.FormatUint(seq, 10) + "." + strconv.Itoa(i)
}

// ErrBadOutputID means a message id is not of the form OutputID makes.
var ErrBadOutputID = errors.New("not a shard output id")

// ParseOutputID splits an OutputID into its upstream ("stage.partition"),
// sequence and index.
func ParseOutputID(id string) (upstream string, seq uint64, i int, err error) {
	if strings.Count(id, ".") != 3 {
		return "", 0, 0, ErrBadOutputID // the common case, a collector's append: no allocation
	}
	parts := strings.Split(id, ".")
	if len(parts) != 4 {
		return "", 0, 0, fmt.Errorf("%q: %w", id, ErrBadOutputID)
	}
	if _, err := strconv.Atoi(parts[1]); err != nil {
		return "", 0, 0, fmt.Errorf("%q: %w", id, ErrBadOutputID)
	}
	if seq, err = strconv.ParseUint(parts[2], 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("%q: %w", id, ErrBadOutputID)
	}
	if i, err = strconv.Atoi(parts[3]); err != nil {
		return "", 0, 0, fmt.Errorf("%q: %w", id, ErrBadOutputID)
	}
	return parts[0] + "." + parts[1], seq, i, nil
}

// ScanPending calls fn with the keys in [lower, upper) that the message's
// earlier events or this event wrote and did not delete, in no particular
// order: what Scan does not visit. A processor rebuilding an in-memory
// index of its state mid-message needs both.
func (tx *Tx) ScanPending(lower, upper []byte, fn func(key []byte)) {
	for _, m := range [...]map[string]entry{tx.msg, tx.overlay} {
		for k, e := range m {
			if !e.deleted && k >= string(lower) && k < string(upper) {
				fn([]byte(k))
			}
		}
	}
}

// IsOutputID reports whether a log message's id is that of a shard output
// (as opposed to a collector append), e.g. an alias a visitor shard
// forwarded to another EVENTS partition.
func IsOutputID(id string) bool {
	_, _, _, err := ParseOutputID(id)
	return err == nil
}

// Duplicate reports whether the output with id was already applied by this
// shard, and records it as applied otherwise. Outputs of one upstream arrive
// in (seq, i) order, so one high-water mark per upstream is enough; it lives
// in the shard's state and commits with the effects of the output.
func (tx *Tx) Duplicate(id string) (bool, error) {
	upstream, seq, i, err := ParseOutputID(id)
	if err != nil {
		return false, err
	}
	key := store.HWMKey(tx.Stream, tx.Partition, upstream)
	v, err := tx.Get(key)
	if err != nil {
		return false, err
	}
	if len(v) == 16 {
		hs, hi := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		if seq < hs || seq == hs && uint64(i) <= hi {
			return true, nil
		}
	}
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:], seq)
	binary.BigEndian.PutUint64(buf[8:], uint64(i))
	tx.Set(key, buf[:])
	return false, nil
}
