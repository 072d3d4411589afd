// Package redisstore keeps token state (tokens.Store) in Redis: a single node, Sentinel or Cluster,
// through redis.UniversalClient. Every operation is one Redis command (or one script), so Redis's
// single-threaded execution makes it atomic, and every key is written with its TTL. The batch
// operations are pipelines of such commands, each of them atomic.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/tokens"
)

// Store is a tokens.Store on Redis.
type Store struct {
	client redis.UniversalClient
	prefix string
	swaps  swapBatch
}

var _ tokens.Store = (*Store)(nil)

// New returns a Store that prefixes every key with prefix, so that several deployments or tests
// can share one Redis. The prefix is prepended as is and must not contain "{": Redis hashes only
// the first {…} of a key, so a brace in the prefix would hide the hash tag a key carries to keep
// a family's keys in one Cluster slot.
func New(client redis.UniversalClient, prefix string) *Store {
	if strings.Contains(prefix, "{") {
		panic("redisstore: the key prefix must not contain '{'")
	}
	return &Store{client: client, prefix: prefix}
}

// Put stores value with SET NX PX: the key and its TTL are written together or not at all.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	ok, err := s.client.SetNX(ctx, s.prefix+key, value, ttl).Result()
	if err != nil {
		return fail("put", err)
	}
	if !ok {
		return tokens.ErrExists
	}
	return nil
}

// Set stores value with SET PX, replacing any value and TTL under key.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.prefix+key, value, ttl).Err(); err != nil {
		return fail("set", err)
	}
	return nil
}

// Get returns the live value under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	value, err := s.client.Get(ctx, s.prefix+key).Bytes()
	if err != nil {
		return nil, fail("get", err)
	}
	return value, nil
}

// GetMany sends one GET per key in a pipeline: one round trip to each node that holds some of the
// keys (a Cluster client splits a pipeline by node), where MGET would require a single slot.
func (s *Store) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, key := range keys {
		cmds[i] = pipe.Get(ctx, s.prefix+key)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fail("get many", err)
	}
	values, err := readValues(cmds)
	if err != nil {
		return nil, fail("get many", err)
	}
	return values, nil
}

// readValues returns the values the GETs of a pipeline read: nil for a missing key, a non-nil
// empty slice for an empty value.
func readValues(cmds []*redis.StringCmd) ([][]byte, error) {
	values := make([][]byte, len(cmds))
	for i, cmd := range cmds {
		value, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if value == nil {
			value = []byte{}
		}
		values[i] = value
	}
	return values, nil
}

// SetMany sends one SET PX per entry in a pipeline, in order. It is not a MULTI transaction: the
// keys may live on different Cluster nodes, and each SET is atomic on its own.
func (s *Store) SetMany(ctx context.Context, entries []tokens.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if err := checkTTL(e.TTL); err != nil {
			return err
		}
	}
	pipe := s.client.Pipeline()
	for _, e := range entries {
		pipe.Set(ctx, s.prefix+e.Key, e.Value, e.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fail("set many", err)
	}
	return nil
}

// Take returns and deletes the value with GETDEL (Redis 6.2+): of concurrent callers exactly one
// receives it.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	value, err := s.client.GetDel(ctx, s.prefix+key).Bytes()
	if err != nil {
		return nil, fail("take", err)
	}
	return value, nil
}

// Delete removes key and reports whether it was there.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	n, err := s.client.Del(ctx, s.prefix+key).Result()
	if err != nil {
		return false, fail("delete", err)
	}
	return n > 0, nil
}

// incrScript sets the TTL in the same atomic step as the INCR that created the counter: with two
// commands, a crash or timeout in between would leave a counter that never expires. Later
// increments leave the TTL alone, so the window is fixed.
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Incr adds one to the counter under key; a new counter expires after ttl.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, err
	}
	ms := (ttl + time.Millisecond - 1) / time.Millisecond
	n, err := incrScript.Run(ctx, s.client, []string{s.prefix + key}, int64(ms)).Int64()
	if err != nil {
		return 0, fail("incr", err)
	}
	return n, nil
}

// decrScript decrements only a live, positive counter: DECR alone would create a counter of -1
// with no TTL for a key that expired meanwhile.
var decrScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n <= 0 then
	return 0
end
return redis.call('DECR', KEYS[1])
`)

// Decr takes one off the counter under key, never below zero; DECR keeps its TTL.
func (s *Store) Decr(ctx context.Context, key string) (int64, error) {
	n, err := decrScript.Run(ctx, s.client, []string{s.prefix + key}).Int64()
	if err != nil {
		return 0, fail("decr", err)
	}
	return n, nil
}

// Ping reports whether Redis is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fail("ping", err)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("token store: ttl must be positive, got %v", ttl)
	}
	return nil
}

// fail maps a client error to the Store's errors: a nil reply is a missing key, and anything
// that means Redis cannot serve us right now is ErrUnavailable, so callers fail closed.
func fail(op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return tokens.ErrNotFound
	}
	if unavailable(err) {
		return fmt.Errorf("token store %s: %w: %w", op, tokens.ErrUnavailable, err)
	}
	return fmt.Errorf("token store %s: %w", op, err)
}

func unavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	// Replies of a server that is up but cannot serve now: starting, failing over, out of
	// quorum, full (maxmemory under the noeviction policy docs/deploy.md requires), short of the
	// replicas min-replicas-to-write asks for, unable to persist (MISCONF: a failed AOF write or
	// RDB save), or busy with a script.
	return redis.IsLoadingError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) ||
		redis.IsReadOnlyError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) ||
		redis.HasErrorPrefix(err, "MISCONF ") || redis.HasErrorPrefix(err, "BUSY ")
}
