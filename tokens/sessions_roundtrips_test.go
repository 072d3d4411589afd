package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// The common refresh path is one store call, the Swap, on the instance that has seen the family;
// another instance reads the family record first, once.
func TestARefreshIsOneStoreCall(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		counting := &countingStore{Store: env.store}
		env.store = counting
		s := newTSSessions(env, 5*time.Second, nil)
		rt, _ := startSession(t, s, "user-1", "web", day)
		wantCalls := func(s *tokens.Sessions, want int64) {
			t.Helper()
			before := counting.calls.Load()
			rt, _ = mustRefresh(t, s, rt, "web")
			if n := counting.calls.Load() - before; n != want {
				t.Fatalf("a refresh made %d store calls, want %d", n, want)
			}
		}
		for range 3 {
			wantCalls(s, 1)
		}
		other := newTSSessions(env, 5*time.Second, nil)
		wantCalls(other, 2)
		wantCalls(other, 1)
	})
}

// failingStore makes Get or Swap fail, as a store outage or timeout would. A lost swap is done
// by the store, and its answer lost on the way back.
type failingStore struct {
	tokens.Store
	get, swap, lostSwap atomic.Bool
}

var errInjected = errors.New("injected: " + tokens.ErrUnavailable.Error())

func (f *failingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if f.get.Load() {
		return nil, errInjected
	}
	return f.Store.Get(ctx, key)
}

func (f *failingStore) Swap(ctx context.Context, sw tokens.Swap) (tokens.Swapped, error) {
	if f.swap.Load() {
		return tokens.Swapped{}, errInjected
	}
	got, err := f.Store.Swap(ctx, sw)
	if err == nil && f.lostSwap.Load() {
		return tokens.Swapped{}, errInjected
	}
	return got, err
}

// A refresh whose store calls fail before anything changed is an error, and the holder's retry
// succeeds: no grace needed, no revocation.
func TestAFailedRefreshKeepsTheToken(t *testing.T) {
	for _, step := range []string{"family read", "swap"} {
		t.Run(step, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, env *tsEnv) {
				failing := &failingStore{Store: env.store}
				env.store = failing
				events := &reuseEvents{}
				rt, sess := startSession(t, newTSSessions(env, 0, events), "user-1", "web", day)
				s := newTSSessions(env, 0, events) // another instance: it reads the family first
				broken := map[string]*atomic.Bool{"family read": &failing.get, "swap": &failing.swap}[step]
				broken.Store(true)
				if _, _, err := s.Refresh(t.Context(), rt, "web"); !errors.Is(err, errInjected) {
					t.Fatalf("Refresh while the %s fails: got %v, want the store error", step, err)
				}
				broken.Store(false)
				next, got := mustRefresh(t, s, rt, "web")
				if got.ID != sess.ID {
					t.Fatalf("retry: session %s, want %s", got.ID, sess.ID)
				}
				mustRefresh(t, s, next, "web")
				if n := len(events.all()); n != 0 {
					t.Fatalf("%d reuse events, want none", n)
				}
			})
		})
	}
}

// A swap whose answer is lost is an error, never success; the holder's retry within the grace
// window gets the successor the swap stored.
func TestALostSwapAnswerIsAnError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		failing := &failingStore{Store: env.store}
		env.store = failing
		events := &reuseEvents{}
		s := newTSSessions(env, 5*time.Second, events)
		rt, _ := startSession(t, s, "user-1", "web", day)
		failing.lostSwap.Store(true)
		if next, _, err := s.Refresh(t.Context(), rt, "web"); !errors.Is(err, errInjected) || next != "" {
			t.Fatalf("Refresh whose answer is lost: got (%q, %v), want the store error", next, err)
		}
		failing.lostSwap.Store(false)
		next, _ := mustRefresh(t, s, rt, "web")
		mustRefresh(t, s, next, "web")
		if n := len(events.all()); n != 0 {
			t.Fatalf("%d reuse events, want none", n)
		}
	})
}

// A token presented by another client while its own client refreshes it: the other client's swap
// does not match the record, so it consumes nothing, and the right client rotates the token.
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

// Token records of the older forms, which do not name their client, still rotate, for their own
// client only, and their successor's record is in the current form.
func TestARecordOfAnOlderFormStillRotates(t *testing.T) {
	older := map[string]func(tokens.Session) []byte{
		"marker": func(tokens.Session) []byte { return []byte{1} },
		"user and expiry": func(s tokens.Session) []byte {
			return []byte(fmt.Sprintf("t1:%d:%s", s.ExpiresAt.UnixMilli(), s.UserID))
		},
	}
	for name, record := range older {
		t.Run(name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, env *tsEnv) {
				s := newTSSessions(env, 5*time.Second, nil)
				rt, sess := startSession(t, s, "user-1", "web", day)
				key := "rt:{" + sess.ID + "}:" + storedHash(rt)
				if err := env.store.Set(t.Context(), key, record(sess), day); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.Refresh(t.Context(), rt, "other"); !errors.Is(err, tokens.ErrInvalidGrant) {
					t.Fatalf("another client: got %v, want ErrInvalidGrant", err)
				}
				next, _ := mustRefresh(t, s, rt, "web")
				v, err := env.store.Get(t.Context(), "rt:{"+sess.ID+"}:"+storedHash(next))
				if err != nil || string(v) != "t2:web" {
					t.Fatalf("the successor's record: got (%q, %v), want \"t2:web\"", v, err)
				}
				mustRefresh(t, s, next, "web")
			})
		})
	}
}
