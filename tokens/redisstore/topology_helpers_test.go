package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	"github.com/portaria/portaria/tokens/tokenstest"
)

// Checks shared by the Cluster and Sentinel tests: the same Store contract and the same
// refresh-rotation guarantees must hold whatever Redis topology sits behind the client.

// runConformance runs the tokens.Store conformance suite on client, one fresh prefix per subtest,
// then checks that the suite left no key without a TTL (RT-05) on any node.
func runConformance(t *testing.T, client redis.UniversalClient, prefix string) {
	var n atomic.Int64
	tokenstest.Run(t, func(t *testing.T) tokens.Store {
		return redisstore.New(client, fmt.Sprintf("%s%d:", prefix, n.Add(1)))
	})
	t.Run("no key is left without a ttl", func(t *testing.T) {
		keys := scanKeys(t, client, prefix+"*")
		if len(keys) == 0 {
			t.Fatal("the suite left no key to check")
		}
		for _, key := range keys {
			// -2 (gone since the scan) is fine; -1 would be a key that never expires.
			if ttl, err := client.PTTL(t.Context(), key).Result(); err != nil || ttl == -1 {
				t.Errorf("key %q: ttl %v, err %v", key, ttl, err)
			}
		}
	})
}

// scanKeys returns the keys matching pattern on every master: a Cluster client's SCAN would ask
// one node only.
func scanKeys(t testing.TB, client redis.UniversalClient, pattern string) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cluster, ok := client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
			return scan(ctx, node)
		})
	} else {
		err = scan(t.Context(), client)
	}
	if err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	return keys
}

// manualClock is the sessions' clock; Redis expires keys on its own real clock, and every TTL
// here is long enough that moving this one forward by seconds never outruns it.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reuseCount counts the reuse events (OnReuse) the sessions report.
type reuseCount struct{ n atomic.Int64 }

func (r *reuseCount) record(context.Context, tokens.Session) { r.n.Add(1) }

// newSessions returns tokens.Sessions on a Redis store under prefix, with the revocation log in
// a SQLite file, as production keeps it in SQL.
func newSessions(t *testing.T, client redis.UniversalClient, prefix string, grace time.Duration) (*tokens.Sessions, *manualClock, *reuseCount) {
	t.Helper()
	clock := &manualClock{t: time.Now().UTC().Truncate(time.Millisecond)}
	db, err := sqldb.Open(t.Context(), testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	events := &reuseCount{}
	s := tokens.NewSessions(redisstore.New(client, prefix), tokens.SessionOptions{
		Grace:        grace,
		SuccessorKey: []byte("0123456789abcdef0123456789abcdef"),
		Log:          sqlstore.NewRevocationLog(db, clock.Now),
		MaxAccessTTL: 15 * time.Minute,
		MaxLifetime:  30 * 24 * time.Hour,
		Now:          clock.Now,
		OnReuse:      events.record,
	})
	return s, clock, events
}

func start(t *testing.T, s *tokens.Sessions, userID string) (string, tokens.Session) {
	t.Helper()
	rt, sess, err := s.Start(t.Context(), tokens.Session{
		UserID: userID, ClientID: "app", Org: "org-1",
		Scope: []string{"openid", "results:read"}, AMR: []string{"pwd"}, AuthTime: time.Now(),
	}, time.Hour)
	if err != nil {
		t.Fatalf("start a session: %v", err)
	}
	return rt, sess
}

// runConcurrentRefresh is the F1 / RT-03 check of tokens' TestConcurrentRefreshesOfOneTokenGetTheSameSuccessor
// through Sessions' public API: 50 goroutines released at once (0–20 ms jitter) refresh one
// token, 20 runs. Every caller gets the one successor (the grace window of C5), exactly one
// successor record is stored, and after the window every replay is refused and revokes the
// family once.
func runConcurrentRefresh(t *testing.T, client redis.UniversalClient, prefix string) {
	const (
		goroutines = 50
		runs       = 20
		grace      = 5 * time.Second
	)
	s, clock, events := newSessions(t, client, prefix, grace)
	for run := range runs {
		rt, started := start(t, s, fmt.Sprintf("user-%d", run))
		successor := refreshAtOnce(t, s, rt, started.ID, goroutines)
		records := scanKeys(t, client, prefix+"rt:{"+started.ID+"}:*")
		if len(records) != 1 {
			t.Fatalf("run %d: %d token records in the family, want exactly the successor's", run, len(records))
		}
		clock.Advance(grace + time.Millisecond)
		replays := refreshErrors(t, s, rt, 10)
		for i, err := range replays {
			if !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("run %d: replay %d after the window: got %v, want ErrInvalidGrant", run, i, err)
			}
		}
		if _, _, err := s.Refresh(t.Context(), successor, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("run %d: successor after reuse: got %v, want ErrInvalidGrant", run, err)
		}
		if n := events.n.Load(); n != int64(run+1) {
			t.Fatalf("run %d: %d reuse events in all, want %d (one per run)", run, n, run+1)
		}
	}
}

// refreshAtOnce releases n refreshes of rt together and returns the successor they all got.
func refreshAtOnce(t *testing.T, s *tokens.Sessions, rt, sid string, n int) string {
	t.Helper()
	type result struct {
		rt, sid string
		err     error
	}
	results := make([]result, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			time.Sleep(rand.N(21 * time.Millisecond))
			next, sess, err := s.Refresh(t.Context(), rt, "app")
			results[i] = result{next, sess.ID, err}
		})
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.rt != results[0].rt || r.sid != sid || !strings.HasPrefix(r.rt, sid+".") {
			t.Fatalf("caller %d: got (%q, %s), want (%q, %s)", i, r.rt, r.sid, results[0].rt, sid)
		}
	}
	return results[0].rt
}

// refreshErrors presents rt n times at once and returns each refresh's error.
func refreshErrors(t *testing.T, s *tokens.Sessions, rt string, n int) []error {
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			<-release
			_, _, errs[i] = s.Refresh(t.Context(), rt, "app")
		})
	}
	close(release)
	wg.Wait()
	return errs
}

// runSessionLifecycle drives every Sessions operation that writes or reads more than one key
// (rotation, a session's revocation, a user's revocation) so that an operation whose keys
// crossed Cluster slots would fail here with CROSSSLOT.
func runSessionLifecycle(t *testing.T, client redis.UniversalClient, prefix string) {
	s, _, _ := newSessions(t, client, prefix, 0)
	ctx := t.Context()
	rt, sess := start(t, s, "user-a")
	rt2, _, err := s.Refresh(ctx, rt, "app")
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if got, err := s.SessionOf(ctx, rt2); err != nil || got.ID != sess.ID {
		t.Fatalf("SessionOf: (%+v, %v)", got, err)
	}
	if err := s.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, _, err := s.Refresh(ctx, rt2, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("refresh after revoke: got %v, want ErrInvalidGrant", err)
	}
	other, _ := start(t, s, "user-b")
	if err := s.RevokeUser(ctx, "user-b"); err != nil {
		t.Fatalf("revoke user: %v", err)
	}
	if _, _, err := s.Refresh(ctx, other, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
		t.Fatalf("refresh after revoking the user: got %v, want ErrInvalidGrant", err)
	}
}
