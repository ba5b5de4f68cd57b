package shard

import (
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
type Tx struct {
	// Stream and Partition name the shard.
	Stream    string
	Partition int
	// Seq is the stream sequence of the log message; Index the event's
	// position in it.
	Seq   uint64
	Index int

	batch   *pebble.Batch
	overlay map[string]entry
	ranges  [][2][]byte
	outputs []Output
	// frames holds the event's EmitEvent frames, back to back; emitted
	// names the subject of each.
	frames  []byte
	emitted []emitted
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

func (tx *Tx) reset(seq uint64, index int) {
	tx.Seq, tx.Index = seq, index
	clear(tx.overlay)
	tx.ranges = tx.ranges[:0]
	tx.outputs = tx.outputs[:0]
	tx.frames = tx.frames[:0]
	tx.emitted = tx.emitted[:0]
}

// Get returns the value of key, or nil when it is absent.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	if e, ok := tx.overlay[string(key)]; ok {
		if e.deleted {
			return nil, nil
		}
		return e.value, nil
	}
	return store.Get(tx.batch, key)
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

// Scan calls fn with the keys and values in [lower, upper) of the shard's
// state as it was before this event: the committed state and the writes of
// the earlier events of the log message, not this event's own writes. fn's
// slices are valid only during the call; it returns false to stop.
func (tx *Tx) Scan(lower, upper []byte, fn func(key, value []byte) bool) error {
	it, err := tx.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scanning %q..%q: %w", lower, upper, err)
	}
	for it.First(); it.Valid(); it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scanning %q..%q: %w", lower, upper, err)
	}
	return nil
}

// apply moves the event's writes into the message's batch.
func (tx *Tx) apply() error {
	for _, r := range tx.ranges {
		if err := tx.batch.DeleteRange(r[0], r[1], nil); err != nil {
			return fmt.Errorf("deleting range %q..%q: %w", r[0], r[1], err)
		}
	}
	for k, e := range tx.overlay {
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
