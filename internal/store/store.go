// Package store is Contrail's local state: a Pebble database per node,
// shared by its shards. Each shard writes its state and its input position in
// one atomic batch (see package shard), which is what makes processing
// exactly once.
//
// Key layout: keys starting with 0x00 are the store's own (positions,
// high-water marks); every other key belongs to a processor, which prefixes
// its keys with its stream and partition so that shards never overlap.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Store is a Pebble database. It is safe for concurrent use.
type Store struct {
	db *pebble.DB
}

// DefaultCacheBytes is the block cache Open gives a store: 512 MiB. Pebble
// fills it only with blocks that are read, so a small store costs less.
const DefaultCacheBytes = 512 << 20

// Options tune a store.
type Options struct {
	// Logger receives Pebble's messages (nil: discarded).
	Logger *slog.Logger
	// CacheBytes is the block cache's size (0: DefaultCacheBytes).
	CacheBytes int64
}

// Open opens (creating if needed) the database in dir with the default
// options and logger.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	return OpenOptions(dir, Options{Logger: logger})
}

// OpenOptions opens (creating if needed) the database in dir.
//
// Most reads of a visitor shard are point lookups of keys that do not exist
// (a messageId never seen, a visitor's first event), so every level has a
// Bloom filter: a miss costs a filter probe per table instead of reading
// its index and data blocks.
//
// Memtables are 32 MiB.
func OpenOptions(dir string, o Options) (*Store, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	logger := o.Logger
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Logger: pebbleLogger{logger}, Cache: cache, MemTableSize: 32 << 20,
		// Most of what a visitor shard writes is short-lived (dedup ids for
		// a day or two, anonymous history until promotion or expiry): let
		// more of it settle in L0 and a larger base level before rewriting
		// it, trading a little read cost for much less compaction.
		L0CompactionThreshold: 8, L0StopWritesThreshold: 32, LBaseMaxBytes: 512 << 20,
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening pebble store in %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing pebble store: %w", err)
	}
	return nil
}

// Flush writes the memtables out as sstables.
func (s *Store) Flush() error {
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("flushing pebble store: %w", err)
	}
	return nil
}

// NewBatch returns a write-only batch; reads go to the database (the shard
// keeps its own overlay of the batch's writes, cheaper than an indexed batch).
func (s *Store) NewBatch() *pebble.Batch { return s.db.NewBatch() }

// Commit applies b atomically. It does not sync: Pebble keeps the batch in
// the process's memory until a WAL block fills or a later commit syncs, so
// a crash of the process (not only of the OS) may lose a suffix of
// batches, never part of one, and the shard then replays from the older
// position. What must survive a crash needs a synced commit after it (the
// shards' settle).
func (s *Store) Commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("committing batch: %w", err)
	}
	return nil
}

// Reader is what Get reads from: the database or a batch.
type Reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// Get returns a copy of the value of key, or nil when it is absent.
func Get(r Reader, key []byte) ([]byte, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	out := append([]byte(nil), v...)
	_ = c.Close()
	return out, nil
}

// NewIter iterates over the committed keys in [lower, upper).
func (s *Store) NewIter(lower, upper []byte) (*pebble.Iterator, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("iterating %q..%q: %w", lower, upper, err)
	}
	return it, nil
}

// NewSnapshot returns a consistent view of the committed state; close it
// after use.
func (s *Store) NewSnapshot() *pebble.Snapshot { return s.db.NewSnapshot() }

// DB returns the database, for reads outside a batch.
func (s *Store) DB() Reader { return s.db }

// GroupKey is where a shard of stream's partition p marks the last message
// of the commit group it is applying while parking decisions are in play.
func GroupKey(stream string, p int) []byte {
	return []byte("\x00group/" + stream + "/" + strconv.Itoa(p))
}

// PositionKey is where a shard of stream's partition p keeps the last
// stream sequence it applied.
func PositionKey(stream string, p int) []byte {
	return []byte("\x00pos/" + stream + "/" + strconv.Itoa(p))
}

// HWMKey is where a shard keeps its high-water mark for one upstream
// (an output stage and partition, e.g. "vis.3").
func HWMKey(stream string, p int, upstream string) []byte {
	return []byte("\x00hwm/" + stream + "/" + strconv.Itoa(p) + "/" + upstream)
}

// PrefixEnd returns the first key after every key that starts with p (nil
// when there is none), the upper bound of a prefix scan.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// OutboxPrefix starts every outbox key.
const OutboxPrefix = "\x00out/"

// OutboxKey is where a shard of stream's partition p keeps an external
// effect that its sender has not finished, under the effect's key.
func OutboxKey(stream string, p int, key string) []byte {
	return []byte(OutboxPrefix + stream + "/" + strconv.Itoa(p) + "/" + key)
}

// GetUint64 reads a big-endian uint64 (0 when absent).
func GetUint64(r Reader, key []byte) (uint64, error) {
	v, err := Get(r, key)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("value of %q is %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// PutUint64 writes a big-endian uint64 into b.
func PutUint64(b *pebble.Batch, key []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	if err := b.Set(key, buf[:], nil); err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	return nil
}

// pebbleLogger sends Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
	panic(fmt.Sprintf(format, args...))
}
