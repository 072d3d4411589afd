package identity

import (
	"sync"
	"time"
)

// cache keeps records read recently in memory for a short time, so that the hot paths (client
// authentication at the token endpoint, the user and organization behind every refresh and every
// /api/auth/me) do not read the database on every request: each read costs as much as signing a
// token. Writes through this Service invalidate at once; a change made by another process (the
// CLI, another instance) is seen within the TTL. Misses are not cached, so a new record is
// visible at once everywhere.
type cache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cached[V]
}

type cached[V any] struct {
	v       V
	expires time.Time
}

// maxCached bounds the memory one cache can take; past it the cache starts over.
const maxCached = 10000

func newCache[V any](ttl time.Duration, now func() time.Time) *cache[V] {
	return &cache[V]{ttl: ttl, now: now, m: map[string]cached[V]{}}
}

func (c *cache[V]) get(id string) (V, bool) {
	var zero V
	if c.ttl <= 0 {
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return zero, false
	}
	return e.v, true
}

func (c *cache[V]) put(id string, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[id] = cached[V]{v: v, expires: c.now().Add(c.ttl)}
}

func (c *cache[V]) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
