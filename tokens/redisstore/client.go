package redisstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewClient returns a client for rawURL, which is one of:
//   - a redis:// or rediss:// URL, with user, password, database and TLS (redis.ParseURL);
//   - a host:port;
//   - a comma-separated list of either, naming the seed nodes of a Redis Cluster. URLs in a list
//     must agree on user, password, database and TLS.
//
// Every token request waits on Redis, and when Redis is down the server must refuse the request
// (fail closed) rather than queue it. The library's defaults (5 s dial, 3 s reads, 3 retries)
// would hold each request for many seconds first, so the timeouts here are short: a healthy
// Redis on the same network answers in about a millisecond. One retry rides over a dropped
// pooled connection; more would only multiply the wait. For the same reason a dial is tried once
// (the library otherwise makes 5 attempts 100 ms apart, and then again on each retry). Context
// deadlines also bound each call.
//
// Errors never contain rawURL: it may hold a password.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		DialTimeout:           time.Second,
		ReadTimeout:           250 * time.Millisecond,
		WriteTimeout:          250 * time.Millisecond,
		PoolTimeout:           500 * time.Millisecond,
		MaxRetries:            1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	}
	entries := strings.Split(rawURL, ",")
	var settings *redis.Options // from the first URL entry
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		where := fmt.Sprintf("entry %d of %d", i+1, len(entries))
		if entry == "" {
			return nil, fmt.Errorf("redis address: %s is empty", where)
		}
		if !strings.Contains(entry, "://") {
			opts.Addrs = append(opts.Addrs, entry)
			continue
		}
		o, err := redis.ParseURL(entry)
		if err != nil {
			// Not wrapped: the parser's message can quote the URL, password included.
			return nil, fmt.Errorf("redis address: %s is not a valid redis:// or rediss:// URL", where)
		}
		if settings != nil && !sameSettings(settings, o) {
			return nil, fmt.Errorf("redis address: %s disagrees with an earlier URL on user, password, database or TLS", where)
		}
		settings = o
		opts.Addrs = append(opts.Addrs, o.Addr)
	}
	if settings != nil {
		opts.Username, opts.Password, opts.DB = settings.Username, settings.Password, settings.DB
		opts.TLSConfig = settings.TLSConfig
	}
	if len(opts.Addrs) > 1 {
		if opts.DB != 0 {
			return nil, fmt.Errorf("redis address: a Redis Cluster has only database 0")
		}
		if opts.TLSConfig != nil {
			// ParseURL names the first host as the TLS server; each node must be checked against
			// its own name, which the TLS dialer takes from the address when ServerName is empty.
			opts.TLSConfig = opts.TLSConfig.Clone()
			opts.TLSConfig.ServerName = ""
		}
	}
	return redis.NewUniversalClient(opts), nil
}

func sameSettings(a, b *redis.Options) bool {
	return a.Username == b.Username && a.Password == b.Password && a.DB == b.DB &&
		(a.TLSConfig == nil) == (b.TLSConfig == nil)
}
