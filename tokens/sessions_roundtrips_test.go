package tokens_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// The common refresh path is three store calls: Take, GetMany, SetMany.
func TestRefreshMakesThreeStoreCalls(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		counting := &countingStore{Store: env.store}
		env.store = counting
		s := newTSSessions(env, 5*time.Second, nil)
		rt, _ := startSession(t, s, "user-1", "web", day)
		for range 3 {
			before := counting.calls.Load()
			rt, _ = mustRefresh(t, s, rt, "web")
			if n := counting.calls.Load() - before; n != 3 {
				t.Fatalf("a refresh made %d store calls, want 3", n)
			}
		}
	})
}

// failingStore makes GetMany or SetMany fail, as a store outage or timeout would.
type failingStore struct {
	tokens.Store
	getMany, setMany atomic.Bool
}

var errInjected = errors.New("injected: " + tokens.ErrUnavailable.Error())

func (f *failingStore) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	if f.getMany.Load() {
		return nil, errInjected
	}
	return f.Store.GetMany(ctx, keys...)
}

func (f *failingStore) SetMany(ctx context.Context, entries []tokens.Entry) error {
	if f.setMany.Load() {
		return errInjected
	}
	return f.Store.SetMany(ctx, entries)
}

// A read that fails after the Take has consumed the token puts it back: the refresh fails, and
// the holder's retry succeeds.
func TestAFailedCheckAfterTheTakeKeepsTheToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		failing := &failingStore{Store: env.store}
		env.store = failing
		events := &reuseEvents{}
		s := newTSSessions(env, 0, events) // no grace: any confusion would revoke the family
		rt, sess := startSession(t, s, "user-1", "web", day)
		failing.getMany.Store(true)
		if _, _, err := s.Refresh(t.Context(), rt, "web"); !errors.Is(err, errInjected) {
			t.Fatalf("Refresh while GetMany fails: got %v, want the store error", err)
		}
		failing.getMany.Store(false)
		if ttl := env.ttl(t, "rt:{"+sess.ID+"}:"+storedHash(rt)); ttl > day || ttl < day-5*time.Second {
			t.Fatalf("the token was put back to live %v, want the family's remaining %v", ttl, day)
		}
		next, got := mustRefresh(t, s, rt, "web")
		if got.ID != sess.ID {
			t.Fatalf("retry: session %s, want %s", got.ID, sess.ID)
		}
		mustRefresh(t, s, next, "web")
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

// A write that fails after the Take is an error, never success; with grace the holder's retry
// gets the successor if it was written, and is refused (without revoking) if it was not.
func TestAFailedRotationWriteIsAnError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		failing := &failingStore{Store: env.store}
		env.store = failing
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		rt, _ := startSession(t, s, "user-1", "web", day)
		failing.setMany.Store(true)
		if next, _, err := s.Refresh(t.Context(), rt, "web"); err == nil || errors.Is(err, tokens.ErrInvalidGrant) || next != "" {
			t.Fatalf("Refresh while SetMany fails: got (%q, %v), want a store error", next, err)
		}
		failing.setMany.Store(false)
		if _, _, err := s.Refresh(t.Context(), rt, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("retry after nothing was written: got %v, want ErrInvalidGrant", err)
		}
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

// A token presented by another client while its own client refreshes it: the Take of the wrong
// client consumes it for a moment, puts it back, and the right client still rotates it.
func TestAnotherClientRacingTheHolderDoesNotLogItOut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		for range 20 {
			rt, sess := startSession(t, s, "user-1", "web", day)
			start := make(chan struct{})
			var wg sync.WaitGroup
			var holderErr, otherErr error
			var next string
			wg.Go(func() {
				<-start
				_, _, otherErr = s.Refresh(t.Context(), rt, "other")
			})
			wg.Go(func() {
				<-start
				next, _, holderErr = s.Refresh(t.Context(), rt, "web")
			})
			close(start)
			wg.Wait()
			if !errors.Is(otherErr, tokens.ErrInvalidGrant) {
				t.Fatalf("the other client: got %v, want ErrInvalidGrant", otherErr)
			}
			if holderErr != nil || !strings.HasPrefix(next, sess.ID+".") {
				t.Fatalf("the holder: got (%q, %v), want a successor", next, holderErr)
			}
			mustRefresh(t, s, next, "web")
		}
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

// Token records written before they named their user (a bare marker) still rotate, and their
// successor is written in the current form.
func TestARecordOfTheOlderFormStillRotates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s := newTSSessions(env, 5*time.Second, nil)
		rt, sess := startSession(t, s, "user-1", "web", day)
		key := "rt:{" + sess.ID + "}:" + storedHash(rt)
		if err := env.store.Set(t.Context(), key, []byte{1}, day); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Refresh(t.Context(), rt, "other"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("another client: got %v, want ErrInvalidGrant", err)
		}
		next, _ := mustRefresh(t, s, rt, "web")
		v, err := env.store.Get(t.Context(), "rt:{"+sess.ID+"}:"+storedHash(next))
		if err != nil || !strings.HasSuffix(string(v), ":user-1") {
			t.Fatalf("the successor's record: got (%q, %v), want one naming user-1", v, err)
		}
		mustRefresh(t, s, next, "web")
	})
}
