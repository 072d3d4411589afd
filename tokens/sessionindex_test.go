package tokens_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/sqlstore"
)

// The index is always SQL (SQLite here), on its own database, whatever the token store.

// indexedSessions returns Sessions on env with a SQL session index on env's clock.
func indexedSessions(t testing.TB, env *tsEnv) (*tokens.Sessions, *sqlstore.SessionIndex) {
	t.Helper()
	index := sqlstore.NewSessionIndex(openTSDB(t), env.clock.Now)
	return newIndexedSessions(env, index), index
}

func newIndexedSessions(env *tsEnv, index tokens.SessionIndex) *tokens.Sessions {
	return tokens.NewSessions(env.store, tokens.SessionOptions{
		Grace:        5 * time.Second,
		SuccessorKey: tsSuccessorKey,
		Log:          env.log,
		MaxAccessTTL: 15 * time.Minute,
		MaxLifetime:  30 * 24 * time.Hour,
		Now:          env.clock.Now,
		Index:        index,
	})
}

func mustList(t testing.TB, s *tokens.Sessions, userID string) []tokens.SessionInfo {
	t.Helper()
	got, err := s.List(t.Context(), userID)
	if err != nil {
		t.Fatalf("List(%s): %v", userID, err)
	}
	return got
}

func infoIDs(infos []tokens.SessionInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.ID
	}
	return out
}

func indexedIDs(t testing.TB, index tokens.SessionIndex, userID string) []string {
	t.Helper()
	got, err := index.List(t.Context(), userID)
	if err != nil {
		t.Fatalf("index List(%s): %v", userID, err)
	}
	out := make([]string, len(got))
	for i, s := range got {
		out[i] = s.ID
	}
	return out
}

func TestListShowsTheUsersSessionsNewestFirst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s, _ := indexedSessions(t, env)
		var want []tokens.Session
		for _, client := range []string{"web", "ios", "android"} {
			_, sess := startSession(t, s, "user-1", client, day)
			want = append([]tokens.Session{sess}, want...)
			env.clock.Advance(time.Second)
		}
		startSession(t, s, "user-2", "web", day)

		got := mustList(t, s, "user-1")
		if len(got) != len(want) {
			t.Fatalf("List: got %v, want the 3 sessions of user-1", infoIDs(got))
		}
		for i, w := range want {
			g := got[i]
			if g.ID != w.ID || g.ClientID != w.ClientID || !slices.Equal(g.AMR, []string{"pwd", "otp"}) ||
				!g.CreatedAt.Equal(w.CreatedAt) || !g.LastUsedAt.Equal(w.CreatedAt) ||
				!g.AuthTime.Equal(w.AuthTime) || !g.ExpiresAt.Equal(w.ExpiresAt) {
				t.Errorf("session %d: got %+v, want %+v, last used when created", i, g, w)
			}
		}
		if got := mustList(t, s, "user-2"); len(got) != 1 || got[0].ClientID != "web" {
			t.Fatalf("List(user-2): got %+v, want its one session", got)
		}
		if got := mustList(t, s, "user-3"); len(got) != 0 {
			t.Fatalf("List(user-3): got %+v, want none", got)
		}
	})
}

func TestARefreshUpdatesLastUsedAtWithoutTouchingTheIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		index := &countingIndex{SessionIndex: sqlstore.NewSessionIndex(openTSDB(t), env.clock.Now)}
		s := newIndexedSessions(env, index)
		rt, sess := startSession(t, s, "user-1", "web", day)
		writes := index.writes.Load()

		env.clock.Advance(time.Minute)
		rt, _ = mustRefresh(t, s, rt, "web")
		env.clock.Advance(time.Minute)
		mustRefresh(t, s, rt, "web")
		if n := index.writes.Load() - writes; n != 0 {
			t.Fatalf("two refreshes made %d index writes, want none", n)
		}
		got := mustList(t, s, "user-1")
		if len(got) != 1 || !got[0].LastUsedAt.Equal(env.clock.Now()) || !got[0].CreatedAt.Equal(sess.CreatedAt) {
			t.Fatalf("List after refreshes: got %+v, want last use at %v", got, env.clock.Now())
		}
		remaining := sess.ExpiresAt.Sub(env.clock.Now())
		if ttl := env.ttl(t, "lu:{"+sess.ID+"}"); ttl > remaining || ttl < remaining-5*time.Second {
			t.Fatalf("the last-use record lives %v, want the family's remaining %v", ttl, remaining)
		}
	})
}

func TestRevokeRemovesTheSessionFromTheList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s, index := indexedSessions(t, env)
		_, first := startSession(t, s, "user-1", "web", day)
		env.clock.Advance(time.Millisecond)
		_, second := startSession(t, s, "user-1", "ios", day)
		if err := s.Revoke(t.Context(), first.ID); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if got := infoIDs(mustList(t, s, "user-1")); !slices.Equal(got, []string{second.ID}) {
			t.Fatalf("List after Revoke: got %v, want [%s]", got, second.ID)
		}
		if got := indexedIDs(t, index, "user-1"); !slices.Equal(got, []string{second.ID}) {
			t.Fatalf("index after Revoke: got %v, want [%s]", got, second.ID)
		}
	})
}

func TestRevokeOwnEndsOnlyTheCallersOwnSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s, _ := indexedSessions(t, env)
		mine, own := startSession(t, s, "user-1", "web", day)
		theirs, other := startSession(t, s, "user-2", "web", day)

		for _, sid := range []string{other.ID, tokens.RandomID(), "not a sid"} {
			if err := s.RevokeOwn(ctx, "user-1", sid); !errors.Is(err, tokens.ErrSessionNotFound) {
				t.Fatalf("RevokeOwn(user-1, %q): got %v, want ErrSessionNotFound", sid, err)
			}
		}
		if got := infoIDs(mustList(t, s, "user-2")); !slices.Equal(got, []string{other.ID}) {
			t.Fatalf("List(user-2) after user-1 tried to end it: got %v, want [%s]", got, other.ID)
		}
		mustRefresh(t, s, theirs, "web")

		if err := s.RevokeOwn(ctx, "user-1", own.ID); err != nil {
			t.Fatalf("RevokeOwn of the caller's session: %v", err)
		}
		if _, _, err := s.Refresh(ctx, mine, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("Refresh after RevokeOwn: got %v, want ErrInvalidGrant", err)
		}
		if got := mustList(t, s, "user-1"); len(got) != 0 {
			t.Fatalf("List(user-1) after RevokeOwn: got %v, want none", infoIDs(got))
		}
		if err := s.RevokeOwn(ctx, "user-1", own.ID); !errors.Is(err, tokens.ErrSessionNotFound) {
			t.Fatalf("second RevokeOwn: got %v, want ErrSessionNotFound", err)
		}
	})
}

func TestRevokeUserEmptiesTheList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s, index := indexedSessions(t, env)
		for _, client := range []string{"web", "ios", "android"} {
			startSession(t, s, "user-1", client, day)
		}
		_, other := startSession(t, s, "user-2", "web", day)
		env.clock.Advance(time.Millisecond)
		if err := s.RevokeUser(ctx, "user-1"); err != nil {
			t.Fatalf("RevokeUser: %v", err)
		}
		if got := mustList(t, s, "user-1"); len(got) != 0 {
			t.Fatalf("List after RevokeUser: got %v, want none", infoIDs(got))
		}
		if got := indexedIDs(t, index, "user-1"); len(got) != 0 {
			t.Fatalf("index after RevokeUser: got %v, want none", got)
		}
		if got := infoIDs(mustList(t, s, "user-2")); !slices.Equal(got, []string{other.ID}) {
			t.Fatalf("List(user-2) after RevokeUser(user-1): got %v, want [%s]", got, other.ID)
		}
		env.clock.Advance(time.Millisecond)
		_, later := startSession(t, s, "user-1", "web", day)
		if got := infoIDs(mustList(t, s, "user-1")); !slices.Equal(got, []string{later.ID}) {
			t.Fatalf("List after a new login: got %v, want [%s]", got, later.ID)
		}
	})
}

func TestExpiredSessionsDisappearFromTheList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		s, _ := indexedSessions(t, env)
		startSession(t, s, "user-1", "web", time.Hour)
		_, long := startSession(t, s, "user-1", "ios", day)
		env.clock.Advance(time.Hour)
		if got := infoIDs(mustList(t, s, "user-1")); !slices.Equal(got, []string{long.ID}) {
			t.Fatalf("List after an hour: got %v, want [%s]", got, long.ID)
		}
		env.clock.Advance(day)
		if got := mustList(t, s, "user-1"); len(got) != 0 {
			t.Fatalf("List after a day: got %v, want none", infoIDs(got))
		}
	})
}

// A family ended without Revoke (reuse, or lost by the store) is dropped from the index by List.
func TestListDropsSessionsThatEndedWithoutRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		s, index := indexedSessions(t, env)
		rt, reused := startSession(t, s, "user-1", "web", day)
		_, lost := startSession(t, s, "user-1", "ios", day)
		env.clock.Advance(time.Millisecond)
		_, live := startSession(t, s, "user-1", "android", day)

		mustRefresh(t, s, rt, "web")
		env.clock.Advance(time.Minute)
		if _, _, err := s.Refresh(ctx, rt, "web"); !errors.Is(err, tokens.ErrInvalidGrant) {
			t.Fatalf("reuse: got %v, want ErrInvalidGrant", err)
		}
		if _, err := env.store.Delete(ctx, "fam:{"+lost.ID+"}"); err != nil {
			t.Fatal(err)
		}
		if got := indexedIDs(t, index, "user-1"); len(got) != 3 {
			t.Fatalf("index before List: got %v, want all 3 sessions (%s, %s, %s)", got, reused.ID, lost.ID, live.ID)
		}
		if got := infoIDs(mustList(t, s, "user-1")); !slices.Equal(got, []string{live.ID}) {
			t.Fatalf("List: got %v, want [%s]", got, live.ID)
		}
		if got := indexedIDs(t, index, "user-1"); !slices.Equal(got, []string{live.ID}) {
			t.Fatalf("index after List: got %v, want [%s]", got, live.ID)
		}
	})
}

func TestAnIndexFailureFailsTheLogin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		index := &countingIndex{SessionIndex: sqlstore.NewSessionIndex(openTSDB(t), env.clock.Now)}
		index.failAdd.Store(true)
		s := newIndexedSessions(env, index)
		rt, sess, err := s.Start(t.Context(), tokens.Session{UserID: "user-1", ClientID: "web"}, day)
		if err == nil || rt != "" || sess.ID != "" {
			t.Fatalf("Start with a failing index: got (%q, %+v, %v), want an error", rt, sess, err)
		}
		if n := keysWithPrefix(env.entries(t), "fam:"); n != 0 {
			t.Fatalf("%d families left behind by the failed login, want none", n)
		}
	})
}

func TestListWithoutAnIndexIsAnError(t *testing.T) {
	env := openSQLiteEnv(t)
	s := newTSSessions(env, 5*time.Second, nil)
	_, sess := startSession(t, s, "user-1", "web", day)
	if _, err := s.List(t.Context(), "user-1"); err == nil {
		t.Fatal("List without an index: got no error")
	}
	// RevokeOwn needs no index.
	if err := s.RevokeOwn(t.Context(), "user-2", sess.ID); !errors.Is(err, tokens.ErrSessionNotFound) {
		t.Fatalf("RevokeOwn of another user's session: got %v, want ErrSessionNotFound", err)
	}
	if err := s.RevokeOwn(t.Context(), "user-1", sess.ID); err != nil {
		t.Fatalf("RevokeOwn: %v", err)
	}
}

// countingIndex counts the writes that reach the index, and can make Add fail.
type countingIndex struct {
	tokens.SessionIndex
	writes  atomic.Int64
	failAdd atomic.Bool
}

func (c *countingIndex) Add(ctx context.Context, s tokens.Session) error {
	c.writes.Add(1)
	if c.failAdd.Load() {
		return errors.New("index down")
	}
	return c.SessionIndex.Add(ctx, s)
}

func (c *countingIndex) Remove(ctx context.Context, sid string) error {
	c.writes.Add(1)
	return c.SessionIndex.Remove(ctx, sid)
}

func (c *countingIndex) RemoveUser(ctx context.Context, userID string, before time.Time) error {
	c.writes.Add(1)
	return c.SessionIndex.RemoveUser(ctx, userID, before)
}
