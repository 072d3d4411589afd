package tokenstest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// RunSessionIndex runs the conformance suite of tokens.SessionIndex. newIndex returns an empty
// index whose clock is real time: sessions are made expired or live relative to time.Now.
func RunSessionIndex(t *testing.T, newIndex func(t *testing.T) tokens.SessionIndex) {
	tests := []struct {
		name string
		test func(t *testing.T, x tokens.SessionIndex)
	}{
		{"a user without sessions lists none", noSessions},
		{"an added session comes back with its fields", sessionFields},
		{"a user's sessions are listed newest first, without other users' sessions", newestFirst},
		{"expired sessions are not listed", expiredNotListed},
		{"remove drops one session and ignores an unknown sid", removeOne},
		{"remove user drops the sessions created at or before the mark only", removeUser},
		{"adding a sid twice fails with ErrExists and keeps the first", addTwice},
		{"a session without id, user, client or times is refused", invalidSessions},
		{"list returns at most SessionListLimit sessions, the newest", listLimit},
		{"concurrent adds are all listed", concurrentAdds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newIndex(t))
		})
	}
}

func noSessions(t *testing.T, x tokens.SessionIndex) {
	mustAdd(t, x, indexed("sid-1", "user-2", 0))
	if got := list(t, x, "user-1"); len(got) != 0 {
		t.Fatalf("List(user-1): got %v, want none", sids(got))
	}
}

func sessionFields(t *testing.T, x tokens.SessionIndex) {
	now := time.Now()
	full := tokens.Session{
		ID: "sid-full", UserID: "user-1", ClientID: "web", Org: "org-1",
		Scope: []string{"openid", "results:read"}, AMR: []string{"pwd", "otp"},
		AuthTime: now.Add(-time.Minute), CreatedAt: now.Add(-time.Second), ExpiresAt: now.Add(time.Hour),
	}
	bare := tokens.Session{
		ID: "sid-bare", UserID: "user-1", ClientID: "cli",
		CreatedAt: now.Add(-2 * time.Second), ExpiresAt: now.Add(time.Hour),
	}
	mustAdd(t, x, full)
	mustAdd(t, x, bare)
	got := list(t, x, "user-1")
	if len(got) != 2 {
		t.Fatalf("List: got %v, want [sid-full sid-bare]", sids(got))
	}
	for i, want := range []tokens.Session{full, bare} {
		g := got[i]
		if g.ID != want.ID || g.UserID != want.UserID || g.ClientID != want.ClientID || g.Org != want.Org ||
			!slices.Equal(g.Scope, want.Scope) || !slices.Equal(g.AMR, want.AMR) ||
			!sameMilli(g.AuthTime, want.AuthTime) || !sameMilli(g.CreatedAt, want.CreatedAt) ||
			!sameMilli(g.ExpiresAt, want.ExpiresAt) {
			t.Errorf("session %d: got %+v, want %+v (to the millisecond)", i, g, want)
		}
	}
	if !got[1].AuthTime.IsZero() {
		t.Errorf("a session without auth time came back with %v", got[1].AuthTime)
	}
}

func newestFirst(t *testing.T, x tokens.SessionIndex) {
	mustAdd(t, x, indexed("sid-b", "user-1", 2*time.Minute))
	mustAdd(t, x, indexed("sid-a", "user-1", time.Minute))
	mustAdd(t, x, indexed("sid-other", "user-2", 0))
	mustAdd(t, x, indexed("sid-c", "user-1", 3*time.Minute))
	if got := sids(list(t, x, "user-1")); !slices.Equal(got, []string{"sid-a", "sid-b", "sid-c"}) {
		t.Fatalf("List(user-1): got %v, want [sid-a sid-b sid-c] (newest first)", got)
	}
	if got := sids(list(t, x, "user-2")); !slices.Equal(got, []string{"sid-other"}) {
		t.Fatalf("List(user-2): got %v, want [sid-other]", got)
	}
}

func expiredNotListed(t *testing.T, x tokens.SessionIndex) {
	now := time.Now()
	mustAdd(t, x, indexed("sid-live", "user-1", time.Minute))
	expired := indexed("sid-expired", "user-1", 0)
	expired.CreatedAt, expired.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Millisecond)
	mustAdd(t, x, expired)
	if got := sids(list(t, x, "user-1")); !slices.Equal(got, []string{"sid-live"}) {
		t.Fatalf("List: got %v, want [sid-live]", got)
	}
}

func removeOne(t *testing.T, x tokens.SessionIndex) {
	for i := range 3 {
		mustAdd(t, x, indexed(fmt.Sprintf("sid-%d", i), "user-1", time.Duration(i)*time.Minute))
	}
	for _, sid := range []string{"sid-1", "sid-1", "never-added"} {
		if err := x.Remove(t.Context(), sid); err != nil {
			t.Fatalf("Remove(%s): %v", sid, err)
		}
	}
	if got := sids(list(t, x, "user-1")); !slices.Equal(got, []string{"sid-0", "sid-2"}) {
		t.Fatalf("List after Remove: got %v, want [sid-0 sid-2]", got)
	}
}

func removeUser(t *testing.T, x tokens.SessionIndex) {
	mark := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	atMark := indexed("sid-at-mark", "user-1", 0)
	atMark.CreatedAt = mark
	after := indexed("sid-after", "user-1", 0)
	after.CreatedAt = mark.Add(time.Millisecond)
	mustAdd(t, x, indexed("sid-before", "user-1", 2*time.Minute))
	mustAdd(t, x, atMark)
	mustAdd(t, x, after)
	mustAdd(t, x, indexed("sid-other", "user-2", 2*time.Minute))
	if err := x.RemoveUser(t.Context(), "user-1", mark); err != nil {
		t.Fatalf("RemoveUser: %v", err)
	}
	if got := sids(list(t, x, "user-1")); !slices.Equal(got, []string{"sid-after"}) {
		t.Fatalf("List(user-1) after RemoveUser: got %v, want [sid-after]", got)
	}
	if got := sids(list(t, x, "user-2")); !slices.Equal(got, []string{"sid-other"}) {
		t.Fatalf("List(user-2) after RemoveUser of user-1: got %v, want [sid-other]", got)
	}
}

func addTwice(t *testing.T, x tokens.SessionIndex) {
	mustAdd(t, x, indexed("sid-1", "user-1", 0))
	again := indexed("sid-1", "user-2", 0)
	if err := x.Add(t.Context(), again); !errors.Is(err, tokens.ErrExists) {
		t.Fatalf("second Add: got %v, want ErrExists", err)
	}
	if got := sids(list(t, x, "user-1")); !slices.Equal(got, []string{"sid-1"}) {
		t.Fatalf("List(user-1): got %v, want [sid-1]", got)
	}
	if got := list(t, x, "user-2"); len(got) != 0 {
		t.Fatalf("List(user-2): got %v, want none", sids(got))
	}
}

func invalidSessions(t *testing.T, x tokens.SessionIndex) {
	for name, edit := range map[string]func(s *tokens.Session){
		"no id":         func(s *tokens.Session) { s.ID = "" },
		"no user":       func(s *tokens.Session) { s.UserID = "" },
		"no client":     func(s *tokens.Session) { s.ClientID = "" },
		"no created_at": func(s *tokens.Session) { s.CreatedAt = time.Time{} },
		"no expires_at": func(s *tokens.Session) { s.ExpiresAt = time.Time{} },
	} {
		s := indexed("sid-1", "user-1", 0)
		edit(&s)
		if err := x.Add(t.Context(), s); err == nil {
			t.Errorf("Add with %s: got no error", name)
		}
	}
	if got := list(t, x, "user-1"); len(got) != 0 {
		t.Fatalf("List: got %v, want none", sids(got))
	}
}

func listLimit(t *testing.T, x tokens.SessionIndex) {
	n := tokens.SessionListLimit + 5
	for i := range n {
		// sid-0000 is the oldest.
		mustAdd(t, x, indexed(fmt.Sprintf("sid-%04d", i), "user-1", time.Duration(n-i)*time.Second))
	}
	got := list(t, x, "user-1")
	if len(got) != tokens.SessionListLimit {
		t.Fatalf("List: got %d sessions, want %d", len(got), tokens.SessionListLimit)
	}
	if first, last := got[0].ID, got[len(got)-1].ID; first != fmt.Sprintf("sid-%04d", n-1) || last != "sid-0005" {
		t.Fatalf("List: got %s … %s, want the newest %d", first, last, tokens.SessionListLimit)
	}
}

func concurrentAdds(t *testing.T, x tokens.SessionIndex) {
	errs := race(func(i int) error {
		return x.Add(t.Context(), indexed(fmt.Sprintf("sid-%02d", i), "user-1", time.Duration(i)*time.Millisecond))
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	if got := list(t, x, "user-1"); len(got) != goroutines {
		t.Fatalf("List: got %d sessions, want %d", len(got), goroutines)
	}
}

// indexed returns a session of userID created age ago that lives for the length of a test.
func indexed(sid, userID string, age time.Duration) tokens.Session {
	now := time.Now()
	return tokens.Session{
		ID: sid, UserID: userID, ClientID: "web", AMR: []string{"pwd"},
		CreatedAt: now.Add(-age), ExpiresAt: now.Add(time.Hour),
	}
}

func mustAdd(t *testing.T, x tokens.SessionIndex, s tokens.Session) {
	t.Helper()
	if err := x.Add(t.Context(), s); err != nil {
		t.Fatalf("Add %s: %v", s.ID, err)
	}
}

func list(t *testing.T, x tokens.SessionIndex, userID string) []tokens.Session {
	t.Helper()
	got, err := x.List(t.Context(), userID)
	if err != nil {
		t.Fatalf("List(%s): %v", userID, err)
	}
	return got
}

func sids(ss []tokens.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}
