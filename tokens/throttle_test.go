package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/sqlstore"
)

// The throttle tests run on every Store backend (forEachThrottleBackend). The SQL store expires
// keys on the test's clock, so there the tests use the real schedule and only move the clock.
// Redis expires keys on its own clock: where a test must see a lock expire, it runs there with
// cool-downs of milliseconds and sleeps through them (throttleElapse). Retry-After is computed
// from the lock's end on the test's clock, so its arithmetic is exact on both.

// forEachThrottleBackend runs test on the backends of forEachBackend and on PostgreSQL, whose
// store is SQLite's with other locking and types.
func forEachThrottleBackend(t *testing.T, test func(t *testing.T, env *tsEnv)) {
	forEachBackend(t, test)
	t.Run("postgres", func(t *testing.T) { test(t, openPostgresThrottleEnv(t)) })
}

// openPostgresThrottleEnv is a SQL store on a fresh PostgreSQL schema, with what the throttle
// tests use of a tsEnv.
func openPostgresThrottleEnv(t *testing.T) *tsEnv {
	db, err := sqldb.Open(t.Context(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	clock := newTSClock()
	return &tsEnv{
		name:  "postgres",
		store: sqlstore.New(db, clock.Now),
		clock: clock,
		entries: func(t testing.TB) map[string][]byte {
			t.Helper()
			var rows []struct {
				Key   string `bun:"key"`
				Value []byte `bun:"value"`
			}
			err := db.NewSelect().Table("token_state").Column("key", "value").
				Where("expires_at > ?", clock.Now().UnixMilli()).Scan(t.Context(), &rows)
			if err != nil {
				t.Fatal(err)
			}
			out := make(map[string][]byte, len(rows))
			for _, r := range rows {
				out[r.Key] = r.Value
			}
			return out
		},
		ttl: func(t testing.TB, key string) time.Duration {
			t.Helper()
			var end int64
			if err := db.QueryRowContext(t.Context(), `SELECT expires_at FROM token_state WHERE key = ?`, key).Scan(&end); err != nil {
				t.Fatalf("expiry of %q: %v", key, err)
			}
			return time.UnixMilli(end).Sub(clock.Now())
		},
		breakStore: func() { db.Close() },
	}
}

// throttleElapse lets d pass: on the test clock, which the Throttle and the SQL store read, and
// for Redis also in real time.
func throttleElapse(env *tsEnv, d time.Duration) {
	env.clock.Advance(d)
	if env.realExpiry {
		time.Sleep(d + 20*time.Millisecond)
	}
}

// sleepableThrottleOptions are the defaults where the store follows the test clock, and a
// schedule of milliseconds where it expires keys in real time.
func sleepableThrottleOptions(env *tsEnv) tokens.ThrottleOptions {
	if env.realExpiry {
		return tokens.ThrottleOptions{
			BaseCooldown: 50 * time.Millisecond, MaxCooldown: 400 * time.Millisecond,
			IPWindow: 2 * time.Second, Now: env.clock.Now,
		}
	}
	return tokens.ThrottleOptions{Now: env.clock.Now}
}

// sleepableFirstCooldown is the first lock of sleepableThrottleOptions.
func sleepableFirstCooldown(env *tsEnv) time.Duration {
	if env.realExpiry {
		return 50 * time.Millisecond
	}
	return 30 * time.Second
}

// throttleRetryAfter is the Retry-After of a lock with d left: whole seconds rounded up, at
// least one.
func throttleRetryAfter(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}

// throttleLockKey is where the Throttle keeps an account's lock.
func throttleLockKey(account string) string { return "thr:{" + storedHash(account) + "}:lock" }

func throttleAllow(t *testing.T, th *tokens.Throttle, account, ip string) (time.Duration, bool) {
	t.Helper()
	retry, ok, err := th.Allow(t.Context(), account, ip)
	if err != nil {
		t.Fatalf("Allow(%q, %q): %v", account, ip, err)
	}
	return retry, ok
}

func wantThrottleAllows(t *testing.T, th *tokens.Throttle, account, ip string) {
	t.Helper()
	if retry, ok := throttleAllow(t, th, account, ip); !ok {
		t.Fatalf("Allow(%q, %q): refused with Retry-After %v, want allowed", account, ip, retry)
	}
}

func wantThrottleRefuses(t *testing.T, th *tokens.Throttle, account, ip string, retryAfter time.Duration) {
	t.Helper()
	retry, ok := throttleAllow(t, th, account, ip)
	if ok {
		t.Fatalf("Allow(%q, %q): allowed, want refused with Retry-After %v", account, ip, retryAfter)
	}
	if retry != retryAfter {
		t.Fatalf("Allow(%q, %q): Retry-After %v, want %v", account, ip, retry, retryAfter)
	}
}

func throttleFail(t *testing.T, th *tokens.Throttle, account, ip string) {
	t.Helper()
	if err := th.Fail(t.Context(), account, ip); err != nil {
		t.Fatalf("Fail(%q, %q): %v", account, ip, err)
	}
}

// throttleFailAttempts makes n attempts that are allowed and fail.
func throttleFailAttempts(t *testing.T, th *tokens.Throttle, account, ip string, n int) {
	t.Helper()
	for i := range n {
		if retry, ok := throttleAllow(t, th, account, ip); !ok {
			t.Fatalf("attempt %d of %d: refused with Retry-After %v", i+1, n, retry)
		}
		throttleFail(t, th, account, ip)
	}
}

// wantThrottleLockTTL checks the lifetime the store gives the account's lock: exact on the SQL
// store, within the time the test has run since on Redis.
func wantThrottleLockTTL(t *testing.T, env *tsEnv, account string, want time.Duration) {
	t.Helper()
	got := env.ttl(t, throttleLockKey(account))
	if got == want || env.realExpiry && got <= want && got > want-200*time.Millisecond {
		return
	}
	t.Fatalf("lock of %q lives %v, want %v", account, got, want)
}

// alignThrottleClock moves the test clock to the start of the next window of length w, as the
// Throttle counts client failures in windows aligned to the Unix epoch.
func alignThrottleClock(env *tsEnv, w time.Duration) {
	ms := env.clock.Now().UnixMilli() % w.Milliseconds()
	env.clock.Advance(w - time.Duration(ms)*time.Millisecond)
}

func TestThrottleLocksAnAccountAfterFiveFailures(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		// The defaults: nothing here waits for a lock to expire.
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{Now: env.clock.Now})
		const account, ip = "alice@example.com", "203.0.113.7"

		throttleFailAttempts(t, th, account, ip, 5)
		wantThrottleRefuses(t, th, account, ip, 30*time.Second)
		wantThrottleLockTTL(t, env, account, 30*time.Second)
		// The lock is the account's, whichever address the attempts claim to come from.
		wantThrottleRefuses(t, th, account, "198.51.100.1", 30*time.Second)
		// Other accounts, even from the same client, are not affected.
		wantThrottleAllows(t, th, "bob@example.com", ip)

		env.clock.Advance(10*time.Second + 500*time.Millisecond)
		wantThrottleRefuses(t, th, account, ip, 20*time.Second)
		env.clock.Advance(19 * time.Second)
		wantThrottleRefuses(t, th, account, ip, time.Second)
		env.clock.Advance(400 * time.Millisecond)
		wantThrottleRefuses(t, th, account, ip, time.Second)
	})
}

// Attempts given back (never evaluated: the server was busy) never lock the account, however
// many; the failures still do.
func TestThrottleReleasedAttemptsNeverLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{Now: env.clock.Now})
		const account, ip = "alice@example.com", "203.0.113.7"
		ctx := t.Context()
		for range 20 {
			wantThrottleAllows(t, th, account, ip)
			if err := th.Release(ctx, account); err != nil {
				t.Fatal(err)
			}
		}
		throttleFailAttempts(t, th, account, ip, 5)
		wantThrottleRefuses(t, th, account, ip, 30*time.Second)
	})
}

func TestThrottleLockExpiresAndASuccessResetsTheAccount(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		th := tokens.NewThrottle(env.store, sleepableThrottleOptions(env))
		base := sleepableFirstCooldown(env)
		const account, ip = "alice@example.com", "203.0.113.7"

		throttleFailAttempts(t, th, account, ip, 5)
		wantThrottleRefuses(t, th, account, ip, throttleRetryAfter(base))
		throttleElapse(env, base)

		// The right password after the cool-down is evaluated, and the success resets the count:
		// five more attempts before the next lock, which is again the first cool-down.
		wantThrottleAllows(t, th, account, ip)
		if err := th.Succeed(t.Context(), account); err != nil {
			t.Fatalf("Succeed: %v", err)
		}
		throttleFailAttempts(t, th, account, ip, 5)
		wantThrottleRefuses(t, th, account, ip, throttleRetryAfter(base))
		wantThrottleLockTTL(t, env, account, base)

		// A success also ends a lock that is still running: the last allowed attempt locks the
		// account before it is evaluated, and it may be the right one.
		throttleElapse(env, base)
		wantThrottleAllows(t, th, account, ip)
		if err := th.Succeed(t.Context(), account); err != nil {
			t.Fatalf("Succeed: %v", err)
		}
		wantThrottleAllows(t, th, account, ip)
	})
}

func TestThrottleCooldownDoublesUpToTheCap(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		opts := sleepableThrottleOptions(env)
		want := []time.Duration{
			30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
			15 * time.Minute, 15 * time.Minute,
		}
		if env.realExpiry {
			ms := time.Millisecond
			want = []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms}
		}
		th := tokens.NewThrottle(env.store, opts)
		const account, ip = "alice@example.com", "203.0.113.7"

		throttleFailAttempts(t, th, account, ip, 5)
		for i, cooldown := range want {
			wantThrottleRefuses(t, th, account, ip, throttleRetryAfter(cooldown))
			wantThrottleLockTTL(t, env, account, cooldown)
			// Attempts refused during a lock neither count nor lengthen the next one.
			for range 3 {
				wantThrottleRefuses(t, th, account, ip, throttleRetryAfter(cooldown))
			}
			throttleElapse(env, cooldown)
			if i < len(want)-1 {
				throttleFailAttempts(t, th, account, ip, 1)
			}
		}
	})
}

func TestThrottleLimitsAClientIPAcrossAccounts(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		opts := sleepableThrottleOptions(env)
		th := tokens.NewThrottle(env.store, opts)
		window := 10 * time.Minute
		if env.realExpiry {
			window = opts.IPWindow
		}
		const attacker, other = "203.0.113.7", "198.51.100.1"
		alignThrottleClock(env, window)

		// Credential stuffing: one guess each at many accounts from one client.
		for i := range 100 {
			account := fmt.Sprintf("user%d@example.com", i)
			wantThrottleAllows(t, th, account, attacker)
			throttleFail(t, th, account, attacker)
			if i == 50 {
				// A success from the client does not reset its failures.
				wantThrottleAllows(t, th, "mallory@example.com", attacker)
				if err := th.Succeed(t.Context(), "mallory@example.com"); err != nil {
					t.Fatalf("Succeed: %v", err)
				}
			}
		}
		// Until the window ends, whichever account it names.
		wantThrottleRefuses(t, th, "user100@example.com", attacker, throttleRetryAfter(window))
		wantThrottleRefuses(t, th, "mallory@example.com", attacker, throttleRetryAfter(window))
		// Another client still passes, for those accounts too.
		wantThrottleAllows(t, th, "user100@example.com", other)
		wantThrottleAllows(t, th, "user0@example.com", other)

		throttleElapse(env, window/2)
		wantThrottleRefuses(t, th, "user100@example.com", attacker, throttleRetryAfter(window/2))
		throttleElapse(env, window/2)
		wantThrottleAllows(t, th, "user101@example.com", attacker)
	})
}

func TestThrottleCountsAnIPv6ClientByItsSlash64AndMappedIPv4AsIPv4(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{IPFailures: 10, Now: env.clock.Now})
		alignThrottleClock(env, 10*time.Minute)
		for i := range 10 {
			account := fmt.Sprintf("user%d@example.com", i)
			ip := fmt.Sprintf("2001:db8:1:2::%x", i+1)
			wantThrottleAllows(t, th, account, ip)
			throttleFail(t, th, account, ip)
		}
		wantThrottleRefuses(t, th, "x@example.com", "2001:db8:1:2:ffff:ffff:ffff:ffff", 10*time.Minute)
		wantThrottleAllows(t, th, "x@example.com", "2001:db8:1:3::1")

		for i := range 10 {
			ip := "192.0.2.1"
			if i%2 == 0 {
				ip = "::ffff:192.0.2.1"
			}
			throttleFail(t, th, fmt.Sprintf("user%d@example.com", i), ip)
		}
		wantThrottleRefuses(t, th, "x@example.com", "192.0.2.1", 10*time.Minute)
		wantThrottleAllows(t, th, "x@example.com", "192.0.2.2")
	})
}

func TestThrottleTreatsAnUnknownAccountLikeAKnownOne(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		base := 30 * time.Second
		if env.realExpiry {
			base = time.Second // the second lock must outlive the rest of the test
		}
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{BaseCooldown: base, Now: env.clock.Now})
		// The Throttle never learns whether an account exists: the caller reports a guess at an
		// address without an account as a failure, exactly like a wrong password. The two
		// accounts take turns, so that their keys are of the same age when the test looks.
		var known, unknown []string
		record := func(out *[]string, account, ip string) {
			retry, ok := throttleAllow(t, th, account, ip)
			*out = append(*out, fmt.Sprintf("%v/%v", ok, retry))
			if ok {
				throttleFail(t, th, account, ip)
			}
		}
		for step := range 10 {
			if step == 7 {
				throttleElapse(env, base)
			}
			record(&known, "alice@example.com", "203.0.113.7")
			record(&unknown, "nobody@example.com", "198.51.100.1")
		}
		if strings.Join(known, " ") != strings.Join(unknown, " ") {
			t.Fatalf("answers differ:\nknown   %v\nunknown %v", known, unknown)
		}

		// Both leave the same keys, and no key holds an e-mail or an IP address.
		shapes := map[string][]string{}
		for key := range env.entries(t) {
			if !strings.HasPrefix(key, "thr:") {
				t.Errorf("key %q is not a throttle key", key)
			}
			for _, secret := range []string{"alice", "nobody", "example.com", "203.0.113.7", "198.51.100.1"} {
				if strings.Contains(key, secret) {
					t.Errorf("key %q contains %q", key, secret)
				}
			}
			for _, a := range []string{"alice@example.com", "nobody@example.com"} {
				if tag := "{" + storedHash(a) + "}"; strings.Contains(key, tag) {
					shapes[a] = append(shapes[a], strings.Replace(key, tag, "{…}", 1))
				}
			}
		}
		for _, keys := range shapes {
			slices.Sort(keys)
		}
		if len(shapes["alice@example.com"]) != 3 ||
			!slices.Equal(shapes["alice@example.com"], shapes["nobody@example.com"]) {
			t.Fatalf("account keys differ: %v", shapes)
		}
	})
}

// Allow reserves each attempt atomically and the attempt that reaches the limit takes the lock
// before it is evaluated, so even requests that all pass the lock check together get exactly
// AccountFailures evaluations before the first lock and one per lock after it.
func TestThrottleEvaluatesAtMostTheLimitUnderConcurrency(t *testing.T) {
	const goroutines = 200
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		base := 30 * time.Second
		if env.realExpiry {
			// Long enough that the lock outlives a burst, short enough to sleep through.
			base = 2 * time.Second
		}
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{BaseCooldown: base, Now: env.clock.Now})
		const account = "alice@example.com"
		burst := func() int64 {
			var evaluated atomic.Int64
			errs := make([]error, goroutines)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range goroutines {
				wg.Go(func() {
					<-start
					ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
					_, ok, err := th.Allow(t.Context(), account, ip)
					if err != nil || !ok {
						errs[i] = err
						return
					}
					evaluated.Add(1)
					errs[i] = th.Fail(t.Context(), account, ip)
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			return evaluated.Load()
		}
		if n := burst(); n != 5 {
			t.Fatalf("first burst: %d attempts evaluated, want 5", n)
		}
		wantThrottleLockTTL(t, env, account, base)
		throttleElapse(env, base)
		if n := burst(); n != 1 {
			t.Fatalf("burst after the first lock: %d attempts evaluated, want 1", n)
		}
		wantThrottleLockTTL(t, env, account, 2*base)
	})
}

// PW-03: 1,000 guesses at one account from 100 addresses over an hour; at most 15 are evaluated.
// On Redis the hour is shrunk a thousandfold, the schedule with it.
func TestThrottleLetsAtMostFifteenGuessesAnHourThroughRotatingIPs(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		scale := time.Duration(1)
		if env.realExpiry {
			scale = 1000
		}
		th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{
			BaseCooldown: 30 * time.Second / scale, MaxCooldown: 15 * time.Minute / scale,
			FailureWindow: 24 * time.Hour / scale, IPWindow: 10 * time.Minute / scale,
			Now: env.clock.Now,
		})
		const account, guesses = "alice@example.com", 1000
		step := time.Hour / guesses / scale
		started := time.Now()
		evaluated := 0
		answers := map[string]int{}
		for i := range guesses {
			if env.realExpiry {
				time.Sleep(time.Until(started.Add(time.Duration(i) * step)))
			}
			ip := fmt.Sprintf("198.51.100.%d", i%100+1)
			retry, ok := throttleAllow(t, th, account, ip)
			if ok {
				evaluated++
				throttleFail(t, th, account, ip)
			} else {
				answers[fmt.Sprintf("ok=%v retry>0=%v", ok, retry > 0)]++
			}
			env.clock.Advance(step)
		}
		t.Logf("%d of %d guesses evaluated", evaluated, guesses)
		if evaluated > 15 || evaluated <= 5 {
			t.Fatalf("%d guesses evaluated, want more than 5 (the cool-downs end) and at most 15", evaluated)
		}
		if len(answers) != 1 {
			t.Fatalf("refusals differ: %v", answers)
		}

		// The owner's right password after the cool-down is evaluated and resets the count.
		throttleElapse(env, 15*time.Minute/scale)
		wantThrottleAllows(t, th, account, "192.0.2.10")
		if err := th.Succeed(t.Context(), account); err != nil {
			t.Fatalf("Succeed: %v", err)
		}
		throttleFailAttempts(t, th, account, "192.0.2.10", 4)
		wantThrottleAllows(t, th, account, "192.0.2.10")
	})
}

// throttleDeleteCounter counts the deletes made through it.
type throttleDeleteCounter struct {
	tokens.Store
	deletes atomic.Int64
}

func (s *throttleDeleteCounter) Delete(ctx context.Context, key string) (bool, error) {
	s.deletes.Add(1)
	return s.Store.Delete(ctx, key)
}

// A login that succeeds at once has only its attempt to clear, and Succeed deletes only that:
// each delete is a write transaction on SQL. For that Succeed reads first, which relies on every
// backend's GetMany seeing a live counter.
func TestThrottleSuccessDeletesOnlyWhatIsThere(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		store := &throttleDeleteCounter{Store: env.store}
		th := tokens.NewThrottle(store, tokens.ThrottleOptions{Now: env.clock.Now})
		const account, ip = "alice@example.com", "203.0.113.7"
		succeed := func(wantDeletes int64) {
			t.Helper()
			store.deletes.Store(0)
			if err := th.Succeed(t.Context(), account); err != nil {
				t.Fatalf("Succeed: %v", err)
			}
			if n := store.deletes.Load(); n != wantDeletes {
				t.Errorf("Succeed made %d deletes, want %d", n, wantDeletes)
			}
		}

		wantThrottleAllows(t, th, account, ip)
		succeed(1)
		// The fifth attempt locks the account as it is let through: its count, level and lock
		// are all there to clear.
		throttleFailAttempts(t, th, account, ip, 4)
		wantThrottleAllows(t, th, account, ip)
		succeed(3)
		// Cleared: five attempts again before the first cool-down.
		throttleFailAttempts(t, th, account, ip, 5)
		wantThrottleRefuses(t, th, account, ip, 30*time.Second)
		succeed(3)
		succeed(0)
	})
}

// throttleOutageStore makes one kind of Store operation fail as in an outage.
type throttleOutageStore struct {
	tokens.Store
	broken atomic.Value // the name of the failing operation, or ""
}

var errThrottleOutage = fmt.Errorf("test outage: %w", tokens.ErrUnavailable)

func (s *throttleOutageStore) down(op string) bool { return s.broken.Load() == op }

func (s *throttleOutageStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.down("put") {
		return errThrottleOutage
	}
	return s.Store.Put(ctx, key, value, ttl)
}

func (s *throttleOutageStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.down("set") {
		return errThrottleOutage
	}
	return s.Store.Set(ctx, key, value, ttl)
}

func (s *throttleOutageStore) Get(ctx context.Context, key string) ([]byte, error) {
	if s.down("get") {
		return nil, errThrottleOutage
	}
	return s.Store.Get(ctx, key)
}

func (s *throttleOutageStore) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if s.down("get") {
		return nil, errThrottleOutage
	}
	return s.Store.GetMany(ctx, keys...)
}

func (s *throttleOutageStore) Delete(ctx context.Context, key string) (bool, error) {
	if s.down("delete") {
		return false, errThrottleOutage
	}
	return s.Store.Delete(ctx, key)
}

func (s *throttleOutageStore) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if s.down("incr") {
		return 0, errThrottleOutage
	}
	return s.Store.Incr(ctx, key, ttl)
}

// A store error is never taken for "allowed": the caller answers 503.
func TestThrottleFailsClosed(t *testing.T) {
	forEachThrottleBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		store := &throttleOutageStore{Store: env.store}
		store.broken.Store("")
		th := tokens.NewThrottle(store, tokens.ThrottleOptions{Now: env.clock.Now})
		const account, ip = "alice@example.com", "203.0.113.7"
		wantOutage := func(what string, ok bool, err error) {
			t.Helper()
			if ok || !errors.Is(err, tokens.ErrUnavailable) {
				t.Fatalf("%s: got (ok %v, %v), want not ok and ErrUnavailable", what, ok, err)
			}
		}

		for _, op := range []string{"get", "incr"} {
			store.broken.Store(op)
			_, ok, err := th.Allow(ctx, account, ip)
			wantOutage("Allow with "+op+" down", ok, err)
		}
		store.broken.Store("incr")
		wantOutage("Fail with incr down", false, th.Fail(ctx, account, ip))
		// Succeed reads what there is to clear, then deletes it: an attempt to clear.
		store.broken.Store("")
		wantThrottleAllows(t, th, account, ip)
		for _, op := range []string{"get", "delete"} {
			store.broken.Store(op)
			wantOutage("Succeed with "+op+" down", false, th.Succeed(ctx, account))
		}
		// The attempt that would take the lock cannot take it: refused.
		store.broken.Store("")
		if err := th.Succeed(ctx, account); err != nil {
			t.Fatal(err)
		}
		throttleFailAttempts(t, th, account, ip, 4)
		store.broken.Store("put")
		_, ok, err := th.Allow(ctx, account, ip)
		wantOutage("Allow with put down", ok, err)
		// It took the lock but could not shorten it: the longest lock stays.
		store.broken.Store("set")
		_, ok, err = th.Allow(ctx, account, ip)
		wantOutage("Allow with set down", ok, err)
		store.broken.Store("")
		wantThrottleRefuses(t, th, account, ip, 15*time.Minute)

		env.breakStore()
		_, ok, err = th.Allow(ctx, "bob@example.com", ip)
		if ok || err == nil {
			t.Fatalf("Allow on a closed store: got (ok %v, %v), want not ok and an error", ok, err)
		}
		if err := th.Fail(ctx, "bob@example.com", ip); err == nil {
			t.Fatal("Fail on a closed store: no error")
		}
		if err := th.Succeed(ctx, "bob@example.com"); err == nil {
			t.Fatal("Succeed on a closed store: no error")
		}
	})
}

func TestThrottleRefusesEmptyIdentifiers(t *testing.T) {
	env := openSQLiteEnv(t)
	th := tokens.NewThrottle(env.store, tokens.ThrottleOptions{Now: env.clock.Now})
	ctx := t.Context()
	for _, c := range []struct{ account, ip string }{{"", "203.0.113.7"}, {"alice@example.com", ""}} {
		if _, ok, err := th.Allow(ctx, c.account, c.ip); ok || err == nil {
			t.Errorf("Allow(%q, %q): got (ok %v, %v), want an error", c.account, c.ip, ok, err)
		}
		if err := th.Fail(ctx, c.account, c.ip); err == nil {
			t.Errorf("Fail(%q, %q): no error", c.account, c.ip)
		}
	}
	if err := th.Succeed(ctx, ""); err == nil {
		t.Error("Succeed(\"\"): no error")
	}
}
