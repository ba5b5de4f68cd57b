package visitor

// stateCache keeps the encoded records of recently seen visitors, so that
// a returning visitor costs no store read: in a busy shard the store's
// blocks churn faster than its block cache can keep a visitor's record.
//
// It holds only committed state or state of the log message being applied:
// Process updates it last, after every step succeeded, and the shard
// calls Reset (dropping it) whenever it restarts after an error, so the
// effects of a message that failed to commit never outlive it. Deleting an
// entry is always safe.
//
// Two generations bound it: when the current one is full it becomes the
// old one and the previous old one is dropped; a hit in the old one moves
// the entry back.
type stateCache struct {
	cur, old map[string][]byte
	limit    int // entries per generation
}

func newStateCache(limit int) *stateCache {
	return &stateCache{cur: make(map[string][]byte), old: make(map[string][]byte), limit: max(limit/2, 1)}
}

// get returns the cached record of key, and whether there was one.
func (c *stateCache) get(key []byte) ([]byte, bool) {
	if v, ok := c.cur[string(key)]; ok {
		return v, true
	}
	if v, ok := c.old[string(key)]; ok {
		c.put(string(key), v)
		return v, true
	}
	return nil, false
}

// put stores a copy of the record of key; nil records an absent visitor.
func (c *stateCache) put(key string, v []byte) {
	if len(c.cur) >= c.limit {
		c.old, c.cur = c.cur, make(map[string][]byte, c.limit)
	}
	c.cur[key] = v
}

func (c *stateCache) delete(key []byte) {
	delete(c.cur, string(key))
	delete(c.old, string(key))
}

func (c *stateCache) reset() {
	clear(c.cur)
	clear(c.old)
}
