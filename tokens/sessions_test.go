package tokens_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

const (
	hour = time.Hour
	day  = 24 * time.Hour
)

func TestRefreshRotatesAndKeepsTheSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s := newTSSessions(env, 5*time.Second, nil)
		rt1, started := startSession(t, s, "user-1", "app", day)
		if started.ID == "" || !started.CreatedAt.Equal(env.clock.Now()) || !started.ExpiresAt.Equal(env.clock.Now().Add(day)) {
			t.Fatalf("Start returned %+v", started)
		}
		env.clock.Advance(time.Minute)
		rt2, refreshed := mustRefresh(t, s, rt1, "app")
		if rt2 == rt1 || !strings.HasPrefix(rt2, started.ID+".") {
			t.Fatalf("successor %q of %q: want a new token of family %s", rt2, rt1, started.ID)
		}
		got, err := s.Get(t.Context(), started.ID)
		for _, sess := range []tokens.Session{refreshed, got} {
			if err != nil || sess.ID != started.ID || sess.UserID != "user-1" || sess.ClientID != "app" ||
				sess.Org != "org-1" || !slices.Equal(sess.Scope, started.Scope) || !slices.Equal(sess.AMR, started.AMR) ||
				!sess.AuthTime.Equal(started.AuthTime) || !sess.CreatedAt.Equal(started.CreatedAt) ||
				!sess.ExpiresAt.Equal(started.ExpiresAt) {
				t.Fatalf("session after refresh: got (%+v, %v), want %+v", sess, err, started)
			}
		}
		mustRefresh(t, s, rt2, "app")
	})
}

// RT-03 / F1: concurrent uses of one token all get the one successor; only one is ever stored.
func TestConcurrentRefreshesOfOneTokenGetTheSameSuccessor(t *testing.T) {
	const (
		goroutines = 50
		runs       = 20
		grace      = 5 * time.Second
	)
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		events := &reuseEvents{}
		s := newTSSessions(env, grace, events)
		for run := range runs {
			rt, started := startSession(t, s, fmt.Sprintf("user-%d", run), "app", hour)
			type result struct {
				rt  string
				sid string
				err error
			}
			results := make([]result, goroutines)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range goroutines {
				wg.Go(func() {
					<-start
					time.Sleep(rand.N(21 * time.Millisecond))
					next, sess, err := s.Refresh(t.Context(), rt, "app")
					results[i] = result{next, sess.ID, err}
				})
			}
			close(start)
			wg.Wait()

			successor := results[0].rt
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("run %d, caller %d: %v", run, i, r.err)
				}
				if r.rt != successor || r.sid != started.ID {
					t.Fatalf("run %d, caller %d: got (%q, %s), want (%q, %s)", run, i, r.rt, r.sid, successor, started.ID)
				}
			}
			entries := env.entries(t)
			if n := keysWithPrefix(entries, "rt:{"+started.ID+"}:"); n != 1 {
				t.Fatalf("run %d: %d token records in the family, want exactly the successor's", run, n)
			}
			if _, ok := entries["rt:{"+started.ID+"}:"+storedHash(successor)]; !ok {
				t.Fatalf("run %d: the successor's record is missing", run)
			}

			// After the grace window the old token is reuse, however many present it at once.
			env.clock.Advance(grace + time.Millisecond)
			var reuse sync.WaitGroup
			reuseStart := make(chan struct{})
			errs := make([]error, 10)
			for i := range errs {
				reuse.Go(func() {
					<-reuseStart
					_, _, errs[i] = s.Refresh(t.Context(), rt, "app")
				})
			}
			close(reuseStart)
			reuse.Wait()
			for i, err := range errs {
				if !errors.Is(err, tokens.ErrInvalidGrant) {
					t.Fatalf("run %d: replay %d after the window: got %v, want ErrInvalidGrant", run, i, err)
				}
			}
			if _, _, err := s.Refresh(t.Context(), successor, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("run %d: successor after reuse: got %v, want ErrInvalidGrant", run, err)
			}
			if n := len(events.all()); n != run+1 {
				t.Fatalf("run %d: %d reuse events in all, want %d (one per run)", run, n, run+1)
			}
		}
	})
}

// RT-04: grace covers only the immediately previous token.
func TestGraceCoversOnlyTheImmediatelyPreviousToken(t *testing.T) {
	const grace = 30 * time.Second
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, grace, nil)

		t.Run("a grandparent within the window revokes the family", func(t *testing.T) {
			rt1, sess := startSession(t, s, "user-1", "app", day)
			rt2, _ := mustRefresh(t, s, rt1, "app")
			env.clock.Advance(time.Second)
			rt3, _ := mustRefresh(t, s, rt2, "app")
			env.clock.Advance(time.Second)
			if _, _, err := s.Refresh(ctx, rt1, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("replay of rt1: got %v, want ErrInvalidGrant", err)
			}
			if _, _, err := s.Refresh(ctx, rt3, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("rt3 after the replay: got %v, want ErrInvalidGrant", err)
			}
			if _, err := s.Get(ctx, sess.ID); !errors.Is(err, tokens.ErrSessionNotFound) {
				t.Fatalf("Get after the replay: got %v, want ErrSessionNotFound", err)
			}
		})

		t.Run("the previous token gets the same successor within the window and revokes after it", func(t *testing.T) {
			rt1, sess := startSession(t, s, "user-2", "app", day)
			rt2, _ := mustRefresh(t, s, rt1, "app")
			env.clock.Advance(10 * time.Second)
			again, againSess, err := s.Refresh(ctx, rt1, "app")
			if err != nil || again != rt2 || againSess.ID != sess.ID {
				t.Fatalf("replay at +10s: got (%q, %s, %v), want (%q, %s, nil)", again, againSess.ID, err, rt2, sess.ID)
			}
			env.clock.Advance(21 * time.Second) // +31 s
			if _, _, err := s.Refresh(ctx, rt1, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("replay at +31s: got %v, want ErrInvalidGrant", err)
			}
			if _, _, err := s.Refresh(ctx, rt2, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("rt2 after the replay: got %v, want ErrInvalidGrant", err)
			}
		})

		t.Run("without grace any second use revokes the family", func(t *testing.T) {
			strict := newTSSessions(env, 0, nil)
			rt1, _ := startSession(t, strict, "user-3", "app", day)
			rt2, _ := mustRefresh(t, strict, rt1, "app")
			if _, _, err := strict.Refresh(ctx, rt1, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("second use: got %v, want ErrInvalidGrant", err)
			}
			if _, _, err := strict.Refresh(ctx, rt2, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("successor after the second use: got %v, want ErrInvalidGrant", err)
			}
		})
	})
}

// RT-02: reuse after the window revokes the family, reports one event and publishes one entry.
func TestReuseRevokesTheFamilyOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		rt1, sess := startSession(t, s, "user-1", "app", day)
		other, otherSess := startSession(t, s, "user-1", "app", day)
		rt2, _ := mustRefresh(t, s, rt1, "app")
		env.clock.Advance(6 * time.Second)

		if _, _, err := s.Refresh(ctx, rt1, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("replay of rt1: got %v, want ErrInvalidGrant", err)
		}
		if _, _, err := s.Refresh(ctx, rt2, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("rt2 after the replay: got %v, want ErrInvalidGrant", err)
		}
		if _, _, err := s.Refresh(ctx, rt1, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("second replay of rt1: got %v, want ErrInvalidGrant", err)
		}
		got := events.all()
		if len(got) != 1 || got[0].ID != sess.ID || got[0].UserID != "user-1" {
			t.Fatalf("reuse events: got %+v, want one for session %s", got, sess.ID)
		}
		entries, err := env.log.Since(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Kind != tokens.RevokedSession || entries[0].Subject != sess.ID ||
			!entries[0].ExpiresAt.Equal(env.clock.Now().Add(15*time.Minute)) {
			t.Fatalf("revocation feed: got %+v, want one session entry for %s expiring after the longest access token", entries, sess.ID)
		}
		if _, s2 := mustRefresh(t, s, other, "app"); s2.ID != otherSess.ID {
			t.Fatalf("the user's other session: got %s, want %s", s2.ID, otherSess.ID)
		}
	})
}

// F3: every replay of a used token is reported once: the one that ends the family to OnReuse,
// each later one (on this instance or another that never saw the family, after a reuse or a
// logout) to OnReplay. A token never used, refused because its family ended, is no replay.
func TestEveryReplayOfAUsedTokenIsReported(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		reuses, replays := &reuseEvents{}, &reuseEvents{}
		opts := func(o *tokens.SessionOptions) { o.OnReuse, o.OnReplay = reuses.record, replays.record }
		s := newTSSessionsWith(env, 5*time.Second, opts)
		other := newTSSessionsWith(env, 5*time.Second, opts) // an instance that never saw the families
		rt1, sess := startSession(t, s, "user-1", "app", day)
		rt2, _ := mustRefresh(t, s, rt1, "app")
		env.clock.Advance(6 * time.Second)
		refuse := func(s *tokens.Sessions, rt string) {
			t.Helper()
			if _, _, err := s.Refresh(ctx, rt, "app"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("refresh: got %v, want ErrInvalidGrant", err)
			}
		}
		refuse(s, rt1)     // reuse: ends the family
		refuse(s, rt2)     // never used: no replay
		refuse(s, rt1)     // replay, this instance
		refuse(other, rt1) // replay, another instance
		if got := reuses.all(); len(got) != 1 || got[0].ID != sess.ID {
			t.Fatalf("OnReuse: got %+v, want one call for %s", got, sess.ID)
		}
		got := replays.all()
		if len(got) != 2 || got[0].ID != sess.ID || got[0].UserID != "user-1" || got[1].ID != sess.ID {
			t.Fatalf("OnReplay: got %+v, want two calls for %s (the first naming user-1)", got, sess.ID)
		}

		// A logout, then a used token of that session shown again.
		rt3, sess2 := startSession(t, s, "user-1", "app", day)
		rt4, _ := mustRefresh(t, s, rt3, "app")
		if err := s.Revoke(ctx, sess2.ID); err != nil {
			t.Fatal(err)
		}
		refuse(other, rt4) // the current token of a logged-out session: no replay
		refuse(other, rt3)
		if got := replays.all(); len(got) != 3 || got[2].ID != sess2.ID {
			t.Fatalf("OnReplay after a logout: got %+v, want a third call for %s", got, sess2.ID)
		}
		if len(reuses.all()) != 1 {
			t.Fatalf("OnReuse after a logout: %+v", reuses.all())
		}
	})
}

// RT-01: a token is bound to its client.
func TestRefreshTokenOfAnotherClientIsRefusedAndStaysValid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		rt1, _ := startSession(t, s, "user-1", "client-a", day)
		for _, client := range []string{"client-b", "", "CLIENT-A"} {
			if _, _, err := s.Refresh(ctx, rt1, client); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("refresh by %q: got %v, want ErrInvalidGrant", client, err)
			}
		}
		rt2, _ := mustRefresh(t, s, rt1, "client-a")
		if _, _, err := s.Refresh(ctx, rt2, "client-b"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("successor refreshed by client-b: got %v, want ErrInvalidGrant", err)
		}
		mustRefresh(t, s, rt2, "client-a")
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

// RT-01: tokens are unique, long, and never stored as they are.
func TestRefreshTokensAreUniqueAndStoredOnlyAsHashes(t *testing.T) {
	const rotated = 100
	shape := regexp.MustCompile(`^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$`)
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		// SQLite, one writer at a time, takes about a millisecond a row under the race
		// detector: 10⁴ families there would take most of the package's time budget. The
		// tokens come from the same generator whatever the store.
		families, workers := 10_000, 16
		if env.name == "sqlite" {
			families, workers = 1_000, 1
		}
		s := newTSSessions(env, 5*time.Second, nil)
		issued := make([]string, families)
		var wg sync.WaitGroup
		var failed sync.Once
		for w := range workers {
			wg.Go(func() {
				for i := w; i < families; i += workers {
					rt, _, err := s.Start(t.Context(), tokens.Session{UserID: "user", ClientID: "app"}, hour)
					if err != nil {
						failed.Do(func() { t.Errorf("Start: %v", err) })
						return
					}
					issued[i] = rt
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for i := range rotated {
			next, _ := mustRefresh(t, s, issued[i], "app")
			issued = append(issued, next)
		}

		raw := make(map[string]bool, 2*len(issued))
		for _, rt := range issued {
			if raw[rt] {
				t.Fatalf("token %q issued twice", rt)
			}
			if len(rt) < 43 || !shape.MatchString(rt) {
				t.Fatalf("token %q: want sid.secret, base64url, 22+1+43 characters", rt)
			}
			raw[rt] = true
			raw[rt[strings.IndexByte(rt, '.')+1:]] = true // the secret alone
		}
		entries := env.entries(t)
		if len(entries) < families {
			t.Fatalf("the store holds %d keys, fewer than the %d families", len(entries), families)
		}
		// Every base64url run in a key or value is checked against every token and secret;
		// tokens contain '.', which no key has.
		notBase64 := func(r rune) bool {
			return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
		}
		for key, value := range entries {
			if strings.Contains(key, ".") {
				t.Fatalf("key %q could hold a raw token", key)
			}
			for _, part := range append(strings.FieldsFunc(key, notBase64), strings.FieldsFunc(string(value), notBase64)...) {
				if raw[part] {
					t.Fatalf("key %q or its value holds a raw token", key)
				}
			}
		}
		// And a plain substring search for a sample, rotated tokens included.
		for _, rt := range append(issued[:10:10], issued[len(issued)-10:]...) {
			secret := rt[strings.IndexByte(rt, '.')+1:]
			for key, value := range entries {
				if strings.Contains(key, secret) || strings.Contains(string(value), secret) {
					t.Fatalf("key %q or its value holds a raw token", key)
				}
			}
		}
	})
}

// RT-05: the family's absolute lifetime bounds every token; rotation never extends it.
func TestRotationNeverExtendsTheAbsoluteLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		rt, started := startSession(t, s, "user-1", "app", 7*day)
		refreshes := 0
		for {
			env.clock.Advance(7 * hour)
			next, sess, err := s.Refresh(ctx, rt, "app")
			if errors.Is(err, tokens.ErrInvalidGrant) {
				break
			}
			if err != nil {
				t.Fatalf("refresh %d: %v", refreshes+1, err)
			}
			refreshes++
			if !sess.ExpiresAt.Equal(started.ExpiresAt) {
				t.Fatalf("refresh %d moved ExpiresAt from %v to %v", refreshes, started.ExpiresAt, sess.ExpiresAt)
			}
			remaining := started.ExpiresAt.Sub(env.clock.Now())
			for _, key := range []string{"rt:{" + sess.ID + "}:" + storedHash(next), "used:{" + sess.ID + "}:" + storedHash(rt)} {
				if ttl := env.ttl(t, key); ttl > remaining || ttl < remaining-5*time.Second {
					t.Fatalf("refresh %d: %s lives %v, want the family's remaining %v", refreshes, key[:4], ttl, remaining)
				}
			}
			rt = next
		}
		// Refreshes at 7 h, 14 h, … 161 h succeed; the one at 168 h = 7 days finds the family over.
		if refreshes != 23 {
			t.Fatalf("%d refreshes succeeded, want 23", refreshes)
		}
		if _, err := s.Get(ctx, started.ID); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("Get after the lifetime: got %v, want ErrSessionNotFound", err)
		}
	})
}

func TestStartShortensALifetimeBeyondTheMaximum(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s := newTSSessions(env, 5*time.Second, nil)
		_, sess := startSession(t, s, "user-1", "app", 365*day)
		if want := env.clock.Now().Add(30 * day); !sess.ExpiresAt.Equal(want) {
			t.Fatalf("ExpiresAt: got %v, want %v", sess.ExpiresAt, want)
		}
	})
}

// RT-06: revoking a user ends every session of the user, synchronously.
func TestRevokeUserEndsEverySessionOfTheUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		var devices []string
		for _, client := range []string{"web", "ios", "android"} {
			rt, _ := startSession(t, s, "user-1", client, day)
			devices = append(devices, rt)
		}
		devices[0], _ = mustRefresh(t, s, devices[0], "web")
		otherUser, _ := startSession(t, s, "user-2", "web", day)
		env.clock.Advance(time.Millisecond)

		if err := s.RevokeUser(ctx, "user-1"); err != nil {
			t.Fatalf("RevokeUser: %v", err)
		}
		for i, client := range []string{"web", "ios", "android"} {
			if _, _, err := s.Refresh(ctx, devices[i], client); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("device %s after RevokeUser: got %v, want ErrInvalidGrant", client, err)
			}
			sid := devices[i][:strings.IndexByte(devices[i], '.')]
			if _, err := s.Get(ctx, sid); !errors.Is(err, tokens.ErrSessionNotFound) {
				t.Fatalf("Get of device %s: got %v, want ErrSessionNotFound", client, err)
			}
			if _, err := s.SessionOf(ctx, devices[i]); !errors.Is(err, tokens.ErrSessionNotFound) {
				t.Fatalf("SessionOf device %s: got %v, want ErrSessionNotFound", client, err)
			}
		}
		mustRefresh(t, s, otherUser, "web")

		// The mark is compared with ≤ to the millisecond: a session started in the very
		// millisecond of the revocation dies too; one started later lives.
		sameMilli, _ := startSession(t, s, "user-1", "web", day)
		if _, _, err := s.Refresh(ctx, sameMilli, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("session started in the revocation's millisecond: got %v, want ErrInvalidGrant", err)
		}
		env.clock.Advance(time.Millisecond)
		later, _ := startSession(t, s, "user-1", "web", day)
		mustRefresh(t, s, later, "web")

		entries, err := env.log.Since(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Kind != tokens.RevokedUser || entries[0].Subject != "user-1" ||
			!entries[0].NotBefore.Equal(env.clock.Now().Add(-time.Millisecond)) {
			t.Fatalf("revocation feed: got %+v, want one user entry for user-1", entries)
		}
	})
}

func TestRevokeEndsOneSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		rt1, sess1 := startSession(t, s, "user-1", "web", day)
		rt2, _ := startSession(t, s, "user-1", "ios", day)
		if err := s.Revoke(ctx, sess1.ID); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if _, _, err := s.Refresh(ctx, rt1, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("revoked session: got %v, want ErrInvalidGrant", err)
		}
		mustRefresh(t, s, rt2, "ios")
		if err := s.Revoke(ctx, sess1.ID); err != nil {
			t.Fatalf("second Revoke: %v", err)
		}
		if err := s.Revoke(ctx, "not a sid"); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("Revoke of a malformed sid: got %v, want ErrSessionNotFound", err)
		}
		entries, err := env.log.Since(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Kind != tokens.RevokedSession || e.Subject != sess1.ID {
				t.Fatalf("revocation feed entry %+v, want only session %s", e, sess1.ID)
			}
		}
		if len(entries) != 2 {
			t.Fatalf("revocation feed: %d entries, want one per Revoke", len(entries))
		}
	})
}

// RT-06: an outage fails the revocation (and every refresh) instead of pretending.
func TestAStoreOutageFailsClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		rt, sess := startSession(t, s, "user-1", "web", day)
		env.breakStore()

		if err := s.RevokeUser(ctx, "user-1"); err == nil {
			t.Fatal("RevokeUser during an outage: got no error")
		}
		if err := s.Revoke(ctx, sess.ID); err == nil {
			t.Fatal("Revoke during an outage: got no error")
		}
		_, _, err := s.Refresh(ctx, rt, "web")
		if err == nil || errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("Refresh during an outage: got %v, want a store error", err)
		}
		if env.realExpiry && !errors.Is(err, tokens.ErrUnavailable) {
			t.Fatalf("Refresh during a Redis outage: got %v, want ErrUnavailable", err)
		}
		if _, _, err := s.Start(ctx, tokens.Session{UserID: "user-1", ClientID: "web"}, day); err == nil {
			t.Fatal("Start during an outage: got no error")
		}
	})
}

func TestSessionOfNamesTheSessionWithoutConsumingTheToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		rt1, sess := startSession(t, s, "user-1", "web", day)
		for range 2 {
			got, err := s.SessionOf(ctx, rt1)
			if err != nil || got.ID != sess.ID || got.ClientID != "web" {
				t.Fatalf("SessionOf: got (%+v, %v), want session %s", got, err, sess.ID)
			}
		}
		rt2, _ := mustRefresh(t, s, rt1, "web")
		for _, rt := range []string{rt1, rt2} {
			if got, err := s.SessionOf(ctx, rt); err != nil || got.ID != sess.ID {
				t.Fatalf("SessionOf after rotation: got (%+v, %v), want session %s", got, err, sess.ID)
			}
		}
		unknown := sess.ID + "." + tokens.RandomSecret()
		if _, err := s.SessionOf(ctx, unknown); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("SessionOf an unknown token: got %v, want ErrSessionNotFound", err)
		}
		if err := s.Revoke(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionOf(ctx, rt2); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("SessionOf after Revoke: got %v, want ErrSessionNotFound", err)
		}
	})
}

// UserOf names the family's user without consuming the token, on an instance that has seen the
// family and on one that has not; a token naming no family is ErrInvalidGrant.
func TestUserOfNamesTheUserWithoutConsumingTheToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		rt1, sess := startSession(t, s, "user-1", "web", day)
		other := newTSSessions(env, 5*time.Second, nil) // another instance: nothing remembered
		for _, instance := range []*tokens.Sessions{s, other, other} {
			if got, err := instance.UserOf(ctx, rt1); err != nil || got != "user-1" {
				t.Fatalf("UserOf: got (%q, %v), want user-1", got, err)
			}
		}
		if _, got := mustRefresh(t, other, rt1, "web"); got.ID != sess.ID {
			t.Fatalf("the token was consumed by UserOf: refresh gave session %s", got.ID)
		}
		for _, bad := range []string{"", "not-a-token", tokens.RandomSecret() + "." + tokens.RandomSecret()} {
			if _, err := s.UserOf(ctx, bad); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Errorf("UserOf(%q): %v, want ErrInvalidGrant", bad, err)
			}
		}
	})
}

func TestMalformedRefreshTokensNeverReachTheStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		counting := &countingStore{Store: env.store}
		env.store = counting
		s := newTSSessions(env, 5*time.Second, nil)
		rt, sess := startSession(t, s, "user-1", "web", day)
		calls := counting.calls.Load()
		secret := rt[strings.IndexByte(rt, '.')+1:]
		for _, bad := range []string{
			"",
			".",
			secret,
			sess.ID,
			sess.ID + ".",
			sess.ID + "." + secret + "A",
			sess.ID + "." + secret[:42],
			sess.ID + "." + secret[:42] + "=",
			sess.ID + "." + secret[:42] + "+",
			sess.ID + "x." + secret,
			sess.ID + "." + secret + ".x",
			rt + " ",
			strings.Repeat("A", 100_000),
			sess.ID[:21] + "B." + secret, // non-canonical base64 of the sid
		} {
			if _, _, err := s.Refresh(t.Context(), bad, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
				t.Fatalf("Refresh(%.40q): got %v, want ErrInvalidGrant", bad, err)
			}
			if _, err := s.SessionOf(t.Context(), bad); !errors.Is(err, tokens.ErrSessionNotFound) {
				t.Fatalf("SessionOf(%.40q): got %v, want ErrSessionNotFound", bad, err)
			}
		}
		if n := counting.calls.Load() - calls; n != 0 {
			t.Fatalf("malformed tokens made %d store calls, want none", n)
		}
		mustRefresh(t, s, rt, "web")
	})
}

func TestAnUnknownTokenOfALiveSessionDoesNotRevokeIt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		rt, sess := startSession(t, s, "user-1", "web", day)
		guessed := sess.ID + "." + tokens.RandomSecret()
		if _, _, err := s.Refresh(t.Context(), guessed, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("guessed token: got %v, want ErrInvalidGrant", err)
		}
		mustRefresh(t, s, rt, "web")
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

func TestSessionsOfUnknownOrExpiredFamilies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s := newTSSessions(env, 5*time.Second, nil)
		if _, err := s.Get(ctx, tokens.RandomID()); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("Get of an unknown sid: got %v, want ErrSessionNotFound", err)
		}
		if _, _, err := s.Refresh(ctx, tokens.RandomID()+"."+tokens.RandomSecret(), "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("Refresh of an unknown family: got %v, want ErrInvalidGrant", err)
		}
		rt, sess := startSession(t, s, "user-1", "web", time.Hour)
		env.clock.Advance(time.Hour)
		if _, err := s.Get(ctx, sess.ID); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("Get of an expired session: got %v, want ErrSessionNotFound", err)
		}
		if _, _, err := s.Refresh(ctx, rt, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("Refresh of an expired session: got %v, want ErrInvalidGrant", err)
		}
	})
}

func BenchmarkRefreshSQLite(b *testing.B) { benchmarkRefresh(b, openSQLiteEnv) }
func BenchmarkRefreshRedis(b *testing.B)  { benchmarkRefresh(b, openRedisEnv) }

// benchmarkRefresh measures one rotation per op along one family.
func benchmarkRefresh(b *testing.B, open func(testing.TB) *tsEnv) {
	env := open(b)
	s := newTSSessions(env, 5*time.Second, nil)
	rt, _ := startSession(b, s, "user-1", "web", 30*day)
	for b.Loop() {
		next, _, err := s.Refresh(b.Context(), rt, "web")
		if err != nil {
			b.Fatal(err)
		}
		rt = next
	}
}
