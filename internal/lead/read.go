package lead

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/store"
)

// ErrNotFound means there is no such lead (or it was erased).
var ErrNotFound = errors.New("lead not found")

// ErrBadCursor means a page cursor was not made by this API.
var ErrBadCursor = errors.New("invalid cursor")

// Reader answers lead queries from the lead shards' state. Each query
// reads the partition that owns the lead (all of them are local on one
// node). It is safe for concurrent use.
type Reader struct {
	st *store.Store
	q  int
}

// NewReader returns a reader over the state of q LEADS partitions.
func NewReader(st *store.Store, q int) *Reader { return &Reader{st: st, q: q} }

// Partitions returns Q.
func (rd *Reader) Partitions() int { return rd.q }

// maxFollow bounds the merges a lookup follows.
const maxFollow = 8

// record returns a lead's record, following merges to the winner; nil
// when there is none or it was erased.
func (rd *Reader) record(tenantID, id string) (*record, error) {
	for range maxFollow {
		k := newKeys(Partition(tenantID, id, rd.q))
		v, err := store.Get(rd.st.DB(), k.profile(tenantID, id))
		if err != nil || v == nil {
			return nil, err
		}
		r, err := decodeRecord(v)
		if err != nil {
			return nil, err
		}
		switch {
		case r.Erased != 0:
			return nil, nil
		case r.MergedInto != "":
			id = r.MergedInto
			continue
		}
		return r, nil
	}
	return nil, fmt.Errorf("lead %s: merge chain longer than %d", id, maxFollow)
}

// Get returns a lead by id; a merged lead's id returns the winner.
func (rd *Reader) Get(_ context.Context, tenantID, id string) (*Lead, error) {
	r, err := rd.record(tenantID, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("lead %q: %w", id, ErrNotFound)
	}
	return r.view(), nil
}

// ByUserID returns the lead of a userId.
func (rd *Reader) ByUserID(ctx context.Context, tenantID, userID string) (*Lead, error) {
	l, err := rd.Get(ctx, tenantID, event.LeadID(tenantID, userID))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("user_id %q: %w", userID, ErrNotFound)
	}
	return l, err
}

// ByEmail returns the lead an email belongs to, through the email index.
func (rd *Reader) ByEmail(ctx context.Context, tenantID, email string) (*Lead, error) {
	norm := event.NormalizeEmail(email)
	if norm == "" {
		return nil, fmt.Errorf("email %q: %w", email, ErrNotFound)
	}
	k := newKeys(event.EmailPartition(tenantID, norm, rd.q))
	v, err := store.Get(rd.st.DB(), k.email(tenantID, norm))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("email %q: %w", email, ErrNotFound)
	}
	l, err := rd.Get(ctx, tenantID, string(v))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("email %q: %w", email, ErrNotFound)
	}
	return l, err
}

// ActivityQuery selects a page of a timeline: newest first, after Cursor
// (an activity id), of the given types (all when empty).
type ActivityQuery struct {
	Limit  int
	Cursor string
	Types  []string
}

// maxScan bounds the entries one timeline page reads when a type filter
// skips most of them; the page then ends early with a cursor to go on.
const maxScan = 20000

// Activities returns a page of the lead's timeline, newest first, and the
// cursor of the next page ("" at the end).
func (rd *Reader) Activities(_ context.Context, tenantID, id string, aq ActivityQuery) ([]Activity, string, error) {
	r, err := rd.record(tenantID, id)
	if err != nil {
		return nil, "", err
	}
	if r == nil {
		return nil, "", fmt.Errorf("lead %q: %w", id, ErrNotFound)
	}
	k := newKeys(Partition(tenantID, r.ID, rd.q))
	prefix := k.activities(tenantID, r.ID)
	upper := store.PrefixEnd(prefix)
	if aq.Cursor != "" {
		suffix, ok := parseActivityID(aq.Cursor)
		if !ok {
			return nil, "", fmt.Errorf("cursor %q: %w", aq.Cursor, ErrBadCursor)
		}
		upper = append(bytes.Clone(prefix), suffix...)
	}
	it, err := rd.st.NewIter(prefix, upper)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = it.Close() }()
	out := make([]Activity, 0, min(aq.Limit, 1000))
	scanned := 0
	var last []byte
	for ok := it.Last(); ok; ok = it.Prev() {
		scanned++
		last = append(last[:0], it.Key()[len(prefix):]...)
		if len(aq.Types) > 0 && !typeIn(it.Value(), aq.Types) {
			if scanned >= maxScan {
				return out, activityID(last), nil
			}
			continue
		}
		var a Activity
		if err := json.Unmarshal(it.Value(), &a); err != nil {
			return nil, "", fmt.Errorf("reading activity of lead %s: %w", r.ID, err)
		}
		a.ID = activityID(last)
		out = append(out, a)
		if len(out) == aq.Limit {
			if it.Prev() {
				return out, a.ID, nil
			}
			return out, "", it.Error()
		}
	}
	return out, "", it.Error()
}

// typeIn reports whether an encoded activity has one of the types,
// without decoding all of it.
func typeIn(v []byte, types []string) bool {
	var head struct {
		Type string `json:"type"`
	}
	i := bytes.Index(v, []byte(`"type":"`))
	if i < 0 {
		_ = json.Unmarshal(v, &head)
	} else {
		rest := v[i+8:]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			head.Type = string(rest[:j])
		}
	}
	for _, t := range types {
		if strings.EqualFold(t, head.Type) {
			return true
		}
	}
	return false
}

// ListMembers returns a page of a list's leads, by lead id, after cursor
// (a lead id), and the cursor of the next page ("" at the end). It merges
// the members of every partition.
func (rd *Reader) ListMembers(ctx context.Context, tenantID, list string, limit int, cursor string) ([]*Lead, string, error) {
	var ids []string
	for q := range rd.q {
		prefix := newKeys(q).members(tenantID, list)
		lower := prefix
		if cursor != "" {
			lower = append(append(bytes.Clone(prefix), cursor...), 0)
		}
		it, err := rd.st.NewIter(lower, store.PrefixEnd(prefix))
		if err != nil {
			return nil, "", err
		}
		n := 0
		for ok := it.First(); ok && n <= limit; ok = it.Next() {
			ids = append(ids, string(it.Key()[len(prefix):]))
			n++
		}
		if err := it.Close(); err != nil {
			return nil, "", err
		}
	}
	sort.Strings(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]*Lead, 0, len(ids))
	for _, id := range ids {
		l, err := rd.Get(ctx, tenantID, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, l)
	}
	return out, next, nil
}
