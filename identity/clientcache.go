package identity

import (
	"sync"
	"time"
)

// clientCache keeps recently authenticated clients in memory for a short time, so that the token
// endpoint does not read the database on every request: the lookup costs as much as signing the
// token. Writes through this Service invalidate it at once; a change made by another process (the
// CLI, another instance) is seen within the TTL. Misses are not cached, so a new client works at
// once everywhere.
type clientCache struct {
	ttl time.Duration
	now func() time.Time

	mu sync.RWMutex
	m  map[string]cachedClient
}

type cachedClient struct {
	client  Client
	expires time.Time
}

// maxCachedClients bounds the memory the cache can take; past it the cache starts over.
const maxCachedClients = 10000

func newClientCache(ttl time.Duration, now func() time.Time) *clientCache {
	return &clientCache{ttl: ttl, now: now, m: map[string]cachedClient{}}
}

func (c *clientCache) get(id string) (Client, bool) {
	if c.ttl <= 0 {
		return Client{}, false
	}
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return Client{}, false
	}
	return e.client, true
}

func (c *clientCache) put(cl Client) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedClients {
		clear(c.m)
	}
	c.m[cl.ID] = cachedClient{client: cl, expires: c.now().Add(c.ttl)}
}

func (c *clientCache) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
