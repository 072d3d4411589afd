package tokens_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// rcLog is an in-memory RevocationLog: a slice, with injectable failures and a call count.
type rcLog struct {
	mu      sync.Mutex
	entries []tokens.Revocation
	fail    error
	calls   int
	limits  []int
}

func (l *rcLog) Append(_ context.Context, r tokens.Revocation) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Seq = int64(len(l.entries) + 1)
	l.entries = append(l.entries, r)
	return nil
}

func (l *rcLog) Since(_ context.Context, cursor int64, limit int) ([]tokens.Revocation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.limits = append(l.limits, limit)
	if l.fail != nil {
		return nil, l.fail
	}
	var out []tokens.Revocation
	for _, r := range l.entries {
		if r.Seq > cursor && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (l *rcLog) setFail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

type rcEnv struct {
	t     *testing.T
	clock *vtClock
	log   *rcLog
	cache *tokens.RevocationCache
}

func newRCEnv(t *testing.T) *rcEnv {
	c := newVTClock()
	l := &rcLog{}
	return &rcEnv{t: t, clock: c, log: l, cache: tokens.NewRevocationCache(l, 0, c.Now)}
}

func (e *rcEnv) revokeSession(sid string, ttl time.Duration) {
	now := e.clock.Now()
	e.log.Append(context.Background(), tokens.Revocation{Kind: tokens.RevokedSession, Subject: sid, NotBefore: now, ExpiresAt: now.Add(ttl)})
}

func (e *rcEnv) markUser(user string, notBefore time.Time, ttl time.Duration) {
	e.log.Append(context.Background(), tokens.Revocation{Kind: tokens.RevokedUser, Subject: user, NotBefore: notBefore, ExpiresAt: e.clock.Now().Add(ttl)})
}

func (e *rcEnv) refresh() {
	e.t.Helper()
	if err := e.cache.Refresh(context.Background()); err != nil {
		e.t.Fatalf("Refresh: %v", err)
	}
}

func (e *rcEnv) token(user, sid string, iat time.Time) tokens.AccessClaims {
	return tokens.AccessClaims{Subject: user, SessionID: sid, IssuedAt: iat.Unix(), ExpiresAt: iat.Add(15 * time.Minute).Unix()}
}

func TestRevocationCacheRevokesASession(t *testing.T) {
	e := newRCEnv(t)
	now := e.clock.Now()
	if e.cache.Loaded() {
		t.Fatal("Loaded before any refresh")
	}
	e.refresh()
	if !e.cache.Loaded() {
		t.Fatal("not Loaded after a refresh")
	}
	if e.cache.Revoked(e.token("u1", "s1", now)) {
		t.Fatal("revoked with an empty feed")
	}
	e.revokeSession("s1", 15*time.Minute)
	e.refresh()
	for name, c := range map[string]tokens.AccessClaims{
		"a token of the session":                   e.token("u1", "s1", now),
		"a later token of the session":             e.token("u1", "s1", now.Add(time.Minute)),
		"a token of the session from another user": e.token("u2", "s1", now),
	} {
		if !e.cache.Revoked(c) {
			t.Errorf("%s is not revoked", name)
		}
	}
	for name, c := range map[string]tokens.AccessClaims{
		"another session":     e.token("u1", "s2", now),
		"no session (client)": e.token("u1", "", now),
	} {
		if e.cache.Revoked(c) {
			t.Errorf("%s is revoked", name)
		}
	}
}

func TestRevocationCacheAppliesUserMarksToEarlierTokensOnly(t *testing.T) {
	e := newRCEnv(t)
	mark := e.clock.Now()
	e.markUser("u1", mark, 15*time.Minute)
	e.refresh()
	cases := []struct {
		name    string
		c       tokens.AccessClaims
		revoked bool
	}{
		{"issued before the mark", e.token("u1", "s1", mark.Add(-time.Minute)), true},
		{"issued at the mark", e.token("u1", "s1", mark), true},
		{"issued after the mark", e.token("u1", "s9", mark.Add(time.Second)), false},
		{"another user", e.token("u2", "s2", mark.Add(-time.Minute)), false},
		{"without iat", tokens.AccessClaims{Subject: "u1"}, true},
	}
	for _, tc := range cases {
		if got := e.cache.Revoked(tc.c); got != tc.revoked {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.revoked)
		}
	}

	// A later mark moves the line; an earlier one arriving afterwards does not move it back.
	e.markUser("u1", mark.Add(time.Minute), 15*time.Minute)
	e.markUser("u1", mark.Add(-time.Hour), 15*time.Minute)
	e.refresh()
	if !e.cache.Revoked(e.token("u1", "s9", mark.Add(time.Minute))) {
		t.Error("the later mark was not applied")
	}
	if e.cache.Revoked(e.token("u1", "s9", mark.Add(time.Minute+time.Second))) {
		t.Error("a token after the latest mark is revoked")
	}
}

func TestRevocationCacheDropsExpiredEntries(t *testing.T) {
	e := newRCEnv(t)
	now := e.clock.Now()
	e.revokeSession("short", time.Minute)
	e.revokeSession("long", time.Hour)
	e.markUser("u1", now, time.Minute)
	e.refresh()
	if !e.cache.Revoked(e.token("x", "short", now)) || !e.cache.Revoked(e.token("u1", "", now)) {
		t.Fatal("fresh entries are not applied")
	}
	e.clock.Add(time.Minute)
	e.refresh()
	if e.cache.Revoked(e.token("x", "short", now)) || e.cache.Revoked(e.token("u1", "", now)) {
		t.Fatal("expired entries are still held")
	}
	if !e.cache.Revoked(e.token("x", "long", now)) {
		t.Fatal("an unexpired entry was dropped")
	}

	// An entry that is already expired when it arrives is never held.
	e.revokeSession("stale", -time.Second)
	e.refresh()
	if e.cache.Revoked(e.token("x", "stale", now)) {
		t.Fatal("an entry expired on arrival is held")
	}
}

func TestRevocationCachePagesThroughTheLog(t *testing.T) {
	e := newRCEnv(t)
	const n = 1234
	for i := range n {
		e.revokeSession(rcSID(i), time.Hour)
	}
	e.refresh()
	for _, i := range []int{0, 499, 500, 999, 1000, n - 1} {
		if !e.cache.Revoked(e.token("u", rcSID(i), e.clock.Now())) {
			t.Fatalf("session %d of %d was not loaded", i, n)
		}
	}
	calls := e.log.calls
	if calls < 3 {
		t.Fatalf("%d entries read in %d calls: no paging", n, calls)
	}
	for _, l := range e.log.limits {
		if l <= 0 || l > 1000 {
			t.Fatalf("page limit %d", l)
		}
	}

	// The cursor moves on: the next refresh reads only what is new.
	e.revokeSession("new", time.Hour)
	e.log.calls = 0
	e.refresh()
	if !e.cache.Revoked(e.token("u", "new", e.clock.Now())) || !e.cache.Revoked(e.token("u", rcSID(0), e.clock.Now())) {
		t.Fatal("incremental refresh lost entries")
	}
	if e.log.calls > 2 {
		t.Fatalf("an incremental refresh took %d calls", e.log.calls)
	}
}

func rcSID(i int) string { return "sid-" + time.Duration(i).String() }

func TestRevocationCacheKeepsItsStateOnErrors(t *testing.T) {
	e := newRCEnv(t)
	e.revokeSession("s1", time.Hour)
	e.refresh()

	boom := errors.New("database is down")
	e.log.setFail(boom)
	e.revokeSession("s2", time.Hour)
	if err := e.cache.Refresh(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Refresh = %v, want the source's error", err)
	}
	if !e.cache.Revoked(e.token("u", "s1", e.clock.Now())) {
		t.Fatal("a failed refresh lost the state")
	}
	if !e.cache.Loaded() {
		t.Fatal("a failed refresh cleared Loaded")
	}

	e.log.setFail(nil)
	e.refresh()
	if !e.cache.Revoked(e.token("u", "s2", e.clock.Now())) {
		t.Fatal("the entry written during the outage was missed")
	}

	// A cache that never loaded stays not Loaded while the source fails.
	fresh := tokens.NewRevocationCache(&rcLog{fail: boom}, time.Second, e.clock.Now)
	if err := fresh.Refresh(context.Background()); err == nil || fresh.Loaded() {
		t.Fatalf("Refresh = %v, Loaded = %v on a failing source", err, fresh.Loaded())
	}
}

func TestRevocationCacheRunRefreshesAndReportsErrors(t *testing.T) {
	e := newRCEnv(t)
	cache := tokens.NewRevocationCache(e.log, 5*time.Millisecond, e.clock.Now)
	errs := make(chan error, 100)
	cache.OnError = func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cache.Run(ctx); close(done) }()

	e.revokeSession("s1", time.Hour)
	rcWaitFor(t, func() bool { return cache.Revoked(e.token("u", "s1", e.clock.Now())) })
	if !cache.Loaded() {
		t.Fatal("not Loaded while running")
	}
	e.log.setFail(errors.New("down"))
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("nil error reported")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run reported no error")
	}
	if !cache.Revoked(e.token("u", "s1", e.clock.Now())) {
		t.Fatal("Run lost the state on errors")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRevocationCacheReadsWhileRefreshing(t *testing.T) {
	e := newRCEnv(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					e.cache.Revoked(e.token("u", "s1", e.clock.Now()))
				}
			}
		}()
	}
	for i := range 50 {
		e.revokeSession(rcSID(i), time.Hour)
		if err := e.cache.Refresh(context.Background()); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func rcWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
