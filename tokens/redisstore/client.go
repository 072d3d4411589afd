package redisstore

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Query parameters of a Sentinel URL (see NewClient). go-redis's own Sentinel URL gives the
// userinfo to the Sentinels and the master's password as a query parameter; here the userinfo
// means what it means in every other Redis URL Portaria takes (the data nodes' credentials), so an
// operator moving from one node to Sentinel changes only the host and the query.
const (
	paramMaster           = "master_name"
	paramSentinelAddr     = "addr"
	paramSentinelUsername = "sentinel_username"
	paramSentinelPassword = "sentinel_password"
)

// NewClient returns a client for rawURL, which is one of:
//   - a redis:// or rediss:// URL, with user, password, database (path or db=N) and TLS
//     (redis.ParseURL);
//   - a host:port;
//   - a comma-separated list of either, naming the seed nodes of a Redis Cluster. URLs in a list
//     must agree on user, password, database and TLS;
//   - a Sentinel URL: a redis:// or rediss:// URL whose host is one Sentinel and whose query names
//     the monitored master with master_name=NAME and further Sentinels with repeated
//     addr=host:port parameters:
//     redis://[user:pass@]sentinel1:26379[/db]?master_name=NAME&addr=sentinel2:26379&addr=sentinel3:26379
//     The user and password authenticate to the master (and replicas), as in any other URL;
//     sentinel_username and sentinel_password, when the Sentinels require them, to the Sentinels.
//     The list carries no comma, so it passes the same configuration check as a single URL.
//
// Every token request waits on Redis, and when Redis is down the server must refuse the request
// (fail closed) rather than queue it. The library's defaults (5 s dial, 3 s reads, 3 retries)
// would hold each request for many seconds first, so the timeouts here are short: a healthy
// Redis on the same network answers in about a millisecond. One retry rides over a dropped
// pooled connection; more would only multiply the wait. For the same reason a dial is tried once
// (the library otherwise makes 5 attempts 100 ms apart, and then again on each retry). The same
// timeouts apply to the Sentinels, which are asked for the master's address.
//
// Those timeouts bound each step, not their sum: against a hung server a command can wait for a
// new connection's handshake and its own reply, twice (about 1.1 s measured), and against an
// unreachable host for two dials. So every command and pipeline also runs under a deadline of
// opBudget, retries and dials included, which keeps a token request failing within a second
// (SECURITY.md RL-01); a caller's shorter deadline still wins.
//
// Errors never contain rawURL: it may hold a password.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	opts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(opts)
	client.AddHook(budget(opBudget))
	return client, nil
}

// opBudget is the longest one Redis command or pipeline may take, from taking a connection to
// the last reply. A healthy Redis answers in about a millisecond; the budget leaves room for a
// dial (retried once: nothing was sent) and the rest of a token request's second.
const opBudget = 600 * time.Millisecond

// budget is a hook that runs every command and pipeline under a deadline of its own.
type budget time.Duration

func (b budget) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b budget) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(b))
		defer cancel()
		return next(ctx, cmd)
	}
}

func (b budget) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, cancel := context.WithTimeout(ctx, time.Duration(b))
		defer cancel()
		return next(ctx, cmds)
	}
}

// parseURL returns the options NewClient builds its client from.
func parseURL(rawURL string) (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{
		DialTimeout:  time.Second,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		PoolTimeout:  500 * time.Millisecond,
		// A command is sent once. go-redis would resend one whose reply came late or whose
		// connection broke, although Redis may have run it: a SET NX sent twice then finds its
		// own key (a login answered 500), an INCR counts twice, a rotation finds its own
		// tombstone. A failure is an ErrUnavailable instead, and the client's retry of the
		// request is what the token semantics are built for (the grace window).
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	}
	entries := strings.Split(rawURL, ",")
	var err error
	if len(entries) == 1 && isSentinelURL(entries[0]) {
		err = sentinelOptions(opts, strings.TrimSpace(entries[0]))
	} else {
		err = nodeOptions(opts, entries)
	}
	if err != nil {
		return nil, err
	}
	return opts, nil
}

// nodeOptions fills opts from a single node's address or URL, or from a Cluster's seed list.
func nodeOptions(opts *redis.UniversalOptions, entries []string) error {
	var settings *redis.Options // from the first URL entry
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		where := fmt.Sprintf("entry %d of %d", i+1, len(entries))
		if entry == "" {
			return fmt.Errorf("redis address: %s is empty", where)
		}
		if !strings.Contains(entry, "://") {
			opts.Addrs = append(opts.Addrs, entry)
			continue
		}
		if isSentinelURL(entry) {
			return fmt.Errorf("redis address: %s names a Sentinel master: list further Sentinels with addr= parameters, not commas", where)
		}
		o, err := redis.ParseURL(entry)
		if err != nil {
			// Not wrapped: the parser's message can quote the URL, password included.
			return fmt.Errorf("redis address: %s is not a valid redis:// or rediss:// URL", where)
		}
		if settings != nil && !sameSettings(settings, o) {
			return fmt.Errorf("redis address: %s disagrees with an earlier URL on user, password, database or TLS", where)
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
			return fmt.Errorf("redis address: a Redis Cluster has only database 0")
		}
		perNodeServerName(opts)
	}
	return nil
}

// isSentinelURL reports whether entry is a URL naming a Sentinel master. A URL that does not
// parse is not one: the caller's parser reports it.
func isSentinelURL(entry string) bool {
	u, err := url.Parse(strings.TrimSpace(entry))
	return err == nil && u.Query().Has(paramMaster)
}

// sentinelOptions fills opts for a master found through Sentinel: the parameters of Sentinel are
// taken out of the query, and the rest of the URL is read as any single-node URL is.
func sentinelOptions(opts *redis.UniversalOptions, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("redis address: not a valid Sentinel URL")
	}
	q := u.Query()
	master, extra := q.Get(paramMaster), q[paramSentinelAddr]
	if len(q[paramMaster]) != 1 || master == "" {
		return fmt.Errorf("redis address: %s must be given once, not empty", paramMaster)
	}
	opts.MasterName = master
	opts.SentinelUsername, opts.SentinelPassword = q.Get(paramSentinelUsername), q.Get(paramSentinelPassword)
	for _, p := range []string{paramMaster, paramSentinelAddr, paramSentinelUsername, paramSentinelPassword} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		// Not wrapped: the parser's message can quote the URL, password included.
		return fmt.Errorf("redis address: not a valid Sentinel URL (redis:// or rediss://, host:port of a Sentinel, %s=NAME)", paramMaster)
	}
	opts.Addrs = []string{o.Addr}
	for i, addr := range extra {
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			return fmt.Errorf("redis address: Sentinel %s parameter %d of %d is not host:port", paramSentinelAddr, i+1, len(extra))
		}
		opts.Addrs = append(opts.Addrs, addr)
	}
	opts.Username, opts.Password, opts.DB = o.Username, o.Password, o.DB
	opts.TLSConfig = o.TLSConfig
	perNodeServerName(opts)
	return nil
}

// perNodeServerName makes TLS check each node against its own name. ParseURL names the URL's
// host as the TLS server, but a Cluster client also dials the other nodes, and a Sentinel client
// dials the master it is told about; the TLS dialer takes the name from the address when
// ServerName is empty.
func perNodeServerName(opts *redis.UniversalOptions) {
	if opts.TLSConfig != nil {
		opts.TLSConfig = opts.TLSConfig.Clone()
		opts.TLSConfig.ServerName = ""
	}
}

func sameSettings(a, b *redis.Options) bool {
	return a.Username == b.Username && a.Password == b.Password && a.DB == b.DB &&
		(a.TLSConfig == nil) == (b.TLSConfig == nil)
}
