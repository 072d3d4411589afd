package tokens_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
	"github.com/portaria/portaria/tokens/sqlstore"
)

// The session and one-time token tests run on every Store backend through tsBackends. The
// revocation log is always SQL (SQLite here), as in production.

// tsClock is a manual clock shared by the code under test and, for SQL, by the store.
type tsClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTSClock() *tsClock { return &tsClock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *tsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *tsClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tsEnv is one backend, freshly opened for one test.
type tsEnv struct {
	name  string
	store tokens.Store
	log   *sqlstore.RevocationLog
	clock *tsClock
	// entries returns every live key of the store with its value.
	entries func(t testing.TB) map[string][]byte
	// ttl returns the remaining lifetime of key as the backend sees it.
	ttl func(t testing.TB, key string) time.Duration
	// breakStore makes the store unreachable, as in an outage.
	breakStore func()
	// realExpiry: the backend expires keys on its own (real) clock, not on tsClock.
	realExpiry bool
}

type tsBackend struct {
	name string
	open func(t testing.TB) *tsEnv
}

var tsBackends = []tsBackend{
	{"sqlite", openSQLiteEnv},
	{"redis", openRedisEnv},
}

// forEachBackend runs test once per backend, each on a fresh store.
func forEachBackend(t *testing.T, test func(t *testing.T, env *tsEnv)) {
	for _, b := range tsBackends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open(t)) })
	}
}

func openSQLiteEnv(t testing.TB) *tsEnv {
	clock := newTSClock()
	db := openTSDB(t)
	env := &tsEnv{
		name:  "sqlite",
		store: sqlstore.New(db, clock.Now),
		log:   sqlstore.NewRevocationLog(db, clock.Now),
		clock: clock,
		entries: func(t testing.TB) map[string][]byte {
			t.Helper()
			rows, err := db.QueryContext(t.Context(),
				`SELECT key, value FROM token_state WHERE expires_at > ?`, clock.Now().UnixMilli())
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := make(map[string][]byte)
			for rows.Next() {
				var key string
				var value []byte
				if err := rows.Scan(&key, &value); err != nil {
					t.Fatal(err)
				}
				out[key] = value
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		},
		ttl: func(t testing.TB, key string) time.Duration {
			t.Helper()
			var expiresAt int64
			err := db.QueryRowContext(t.Context(),
				`SELECT expires_at FROM token_state WHERE key = ?`, key).Scan(&expiresAt)
			if err != nil {
				t.Fatalf("expiry of %q: %v", key, err)
			}
			return time.Duration(expiresAt-clock.Now().UnixMilli()) * time.Millisecond
		},
		breakStore: func() { db.Close() },
	}
	return env
}

func openRedisEnv(t testing.TB) *tsEnv {
	rawURL, prefix := testenv.RedisURL(t)
	client, err := redisstore.NewClient(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	clock := newTSClock()
	return &tsEnv{
		name:  "redis",
		store: redisstore.New(client, prefix),
		log:   sqlstore.NewRevocationLog(openTSDB(t), clock.Now),
		clock: clock,
		entries: func(t testing.TB) map[string][]byte {
			t.Helper()
			ctx := t.Context()
			var keys []string
			iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			cmds, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, key := range keys {
					p.Get(ctx, key)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			out := make(map[string][]byte, len(keys))
			for i, cmd := range cmds {
				value, err := cmd.(*redis.StringCmd).Bytes()
				if err != nil {
					continue // expired since the scan saw it
				}
				out[strings.TrimPrefix(keys[i], prefix)] = value
			}
			return out
		},
		ttl: func(t testing.TB, key string) time.Duration {
			t.Helper()
			ttl, err := client.PTTL(t.Context(), prefix+key).Result()
			if err != nil || ttl < 0 {
				t.Fatalf("ttl of %q: (%v, %v)", key, ttl, err)
			}
			return ttl
		},
		breakStore: func() { client.Close() },
		realExpiry: true,
	}
}

func openTSDB(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return db
}

// tsSuccessorKey is the refresh successor key of the tests.
var tsSuccessorKey = []byte("0123456789abcdef0123456789abcdef")

// reuseEvents records the OnReuse calls.
type reuseEvents struct {
	mu       sync.Mutex
	sessions []tokens.Session
}

func (r *reuseEvents) record(_ context.Context, s tokens.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions = append(r.sessions, s)
}

func (r *reuseEvents) all() []tokens.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tokens.Session(nil), r.sessions...)
}

func newTSSessions(env *tsEnv, grace time.Duration, events *reuseEvents) *tokens.Sessions {
	return newTSSessionsWith(env, grace, func(o *tokens.SessionOptions) {
		if events != nil {
			o.OnReuse = events.record
		}
	})
}

// newTSSessionsWith is newTSSessions with options set by set.
func newTSSessionsWith(env *tsEnv, grace time.Duration, set func(*tokens.SessionOptions)) *tokens.Sessions {
	opts := tokens.SessionOptions{
		Grace:        grace,
		SuccessorKey: tsSuccessorKey,
		Log:          env.log,
		MaxAccessTTL: 15 * time.Minute,
		MaxLifetime:  30 * 24 * time.Hour,
		Now:          env.clock.Now,
	}
	set(&opts)
	return tokens.NewSessions(env.store, opts)
}

func startSession(t testing.TB, s *tokens.Sessions, userID, clientID string, ttl time.Duration) (string, tokens.Session) {
	t.Helper()
	rt, sess, err := s.Start(t.Context(), tokens.Session{
		UserID: userID, ClientID: clientID, Org: "org-1",
		Scope: []string{"openid", "results:read"}, AMR: []string{"pwd", "otp"},
		AuthTime: time.Now(),
	}, ttl)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return rt, sess
}

func mustRefresh(t testing.TB, s *tokens.Sessions, rt, clientID string) (string, tokens.Session) {
	t.Helper()
	next, sess, err := s.Refresh(t.Context(), rt, clientID)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return next, sess
}

// storedHash is how the store names a token: SHA-256, base64url.
func storedHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// keysWithPrefix counts the live keys starting with prefix.
func keysWithPrefix(entries map[string][]byte, prefix string) int {
	n := 0
	for k := range entries {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// countingStore counts the calls that reach the store.
type countingStore struct {
	tokens.Store
	calls atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.calls.Add(1)
	return c.Store.Put(ctx, key, value, ttl)
}

func (c *countingStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.calls.Add(1)
	return c.Store.Set(ctx, key, value, ttl)
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.calls.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *countingStore) Take(ctx context.Context, key string) ([]byte, error) {
	c.calls.Add(1)
	return c.Store.Take(ctx, key)
}

func (c *countingStore) Delete(ctx context.Context, key string) (bool, error) {
	c.calls.Add(1)
	return c.Store.Delete(ctx, key)
}

func (c *countingStore) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	c.calls.Add(1)
	return c.Store.Incr(ctx, key, ttl)
}

func (c *countingStore) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	c.calls.Add(1)
	return c.Store.GetMany(ctx, keys...)
}

func (c *countingStore) SetMany(ctx context.Context, entries []tokens.Entry) error {
	c.calls.Add(1)
	return c.Store.SetMany(ctx, entries)
}

func (c *countingStore) Swap(ctx context.Context, sw tokens.Swap) (tokens.Swapped, error) {
	c.calls.Add(1)
	return c.Store.Swap(ctx, sw)
}
