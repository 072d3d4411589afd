package tokenstest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// RunRevocationLog runs the conformance suite of tokens.RevocationLog. newLog returns an empty
// log whose clock is real time: entries are made expired or live relative to time.Now.
func RunRevocationLog(t *testing.T, newLog func(t *testing.T) tokens.RevocationLog) {
	tests := []struct {
		name string
		test func(t *testing.T, l tokens.RevocationLog)
	}{
		{"an empty log has no entries", emptyLog},
		{"entries come back in order with their fields and increasing seqs", entriesInOrder},
		{"since returns only entries after the cursor", sinceCursor},
		{"pages of limit entries, each continuing after the last seq, cover the log", pages},
		{"expired entries are skipped", expiredSkipped},
		{"concurrent appends all get distinct seqs and are all returned", concurrentAppends},
		{"an entry without a kind or subject is refused", invalidEntries},
		{"a limit that is not positive is an error", nonPositiveLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newLog(t))
		})
	}
}

func emptyLog(t *testing.T, l tokens.RevocationLog) {
	if got := since(t, l, 0, 100); len(got) != 0 {
		t.Fatalf("Since(0): got %d entries, want none", len(got))
	}
}

func entriesInOrder(t *testing.T, l tokens.RevocationLog) {
	now := time.Now()
	want := []tokens.Revocation{
		{Kind: tokens.RevokedSession, Subject: "sid-1", NotBefore: now, ExpiresAt: now.Add(time.Hour)},
		{Kind: tokens.RevokedUser, Subject: "user-1", NotBefore: now.Add(time.Millisecond), ExpiresAt: now.Add(2 * time.Hour)},
		{Kind: tokens.RevokedSession, Subject: "sid-2", NotBefore: now.Add(2 * time.Millisecond), ExpiresAt: now.Add(time.Hour)},
	}
	for _, r := range want {
		mustAppend(t, l, r)
	}
	got := since(t, l, 0, 100)
	if len(got) != len(want) {
		t.Fatalf("Since(0): got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Subject != w.Subject ||
			!sameMilli(g.NotBefore, w.NotBefore) || !sameMilli(g.ExpiresAt, w.ExpiresAt) {
			t.Errorf("entry %d: got %+v, want %+v (to the millisecond)", i, g, w)
		}
		if i > 0 && g.Seq <= got[i-1].Seq {
			t.Errorf("entry %d: seq %d does not follow %d", i, g.Seq, got[i-1].Seq)
		}
	}
}

func sinceCursor(t *testing.T, l tokens.RevocationLog) {
	for i := range 5 {
		mustAppend(t, l, live(fmt.Sprintf("sid-%d", i)))
	}
	all := since(t, l, 0, 100)
	if len(all) != 5 {
		t.Fatalf("Since(0): got %d entries, want 5", len(all))
	}
	rest := since(t, l, all[1].Seq, 100)
	if got := subjects(rest); !slices.Equal(got, []string{"sid-2", "sid-3", "sid-4"}) {
		t.Fatalf("Since(second seq): got %v, want [sid-2 sid-3 sid-4]", got)
	}
	if got := since(t, l, all[4].Seq, 100); len(got) != 0 {
		t.Fatalf("Since(last seq): got %v, want none", subjects(got))
	}
}

func pages(t *testing.T, l tokens.RevocationLog) {
	var want []string
	for i := range 7 {
		s := fmt.Sprintf("sid-%d", i)
		want = append(want, s)
		mustAppend(t, l, live(s))
	}
	var got []string
	cursor := int64(0)
	for range 10 {
		page := since(t, l, cursor, 3)
		if len(page) > 3 {
			t.Fatalf("Since with limit 3 returned %d entries", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, subjects(page)...)
		cursor = page[len(page)-1].Seq
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages: got %v, want %v", got, want)
	}
}

func expiredSkipped(t *testing.T, l tokens.RevocationLog) {
	now := time.Now()
	mustAppend(t, l, live("before"))
	mustAppend(t, l, tokens.Revocation{
		Kind: tokens.RevokedSession, Subject: "expired",
		NotBefore: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour),
	})
	mustAppend(t, l, live("after"))
	if got := subjects(since(t, l, 0, 100)); !slices.Equal(got, []string{"before", "after"}) {
		t.Fatalf("Since(0): got %v, want [before after]", got)
	}
}

func concurrentAppends(t *testing.T, l tokens.RevocationLog) {
	var mu sync.Mutex
	want := make(map[string]bool)
	errs := race(func(i int) error {
		s := fmt.Sprintf("sid-%d", i)
		mu.Lock()
		want[s] = true
		mu.Unlock()
		return l.Append(t.Context(), live(s))
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	got := since(t, l, 0, 1000)
	if len(got) != goroutines {
		t.Fatalf("Since(0): got %d entries, want %d", len(got), goroutines)
	}
	for i, r := range got {
		if !want[r.Subject] {
			t.Errorf("unexpected or repeated entry %q", r.Subject)
		}
		delete(want, r.Subject)
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Errorf("entry %d: seq %d does not follow %d", i, r.Seq, got[i-1].Seq)
		}
	}
}

func invalidEntries(t *testing.T, l tokens.RevocationLog) {
	now := time.Now()
	for name, r := range map[string]tokens.Revocation{
		"no kind":      {Subject: "s", NotBefore: now, ExpiresAt: now.Add(time.Hour)},
		"unknown kind": {Kind: "everything", Subject: "s", NotBefore: now, ExpiresAt: now.Add(time.Hour)},
		"no subject":   {Kind: tokens.RevokedUser, NotBefore: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := l.Append(t.Context(), r); err == nil {
			t.Errorf("Append with %s: got no error", name)
		}
	}
	if got := since(t, l, 0, 100); len(got) != 0 {
		t.Fatalf("Since(0): got %v, want none", subjects(got))
	}
}

func nonPositiveLimit(t *testing.T, l tokens.RevocationLog) {
	mustAppend(t, l, live("sid"))
	for _, limit := range []int{0, -1} {
		if _, err := l.Since(t.Context(), 0, limit); err == nil {
			t.Errorf("Since with limit %d: got no error", limit)
		}
	}
}

// live returns a session revocation that stays in the feed for the length of a test.
func live(subject string) tokens.Revocation {
	now := time.Now()
	return tokens.Revocation{Kind: tokens.RevokedSession, Subject: subject, NotBefore: now, ExpiresAt: now.Add(time.Hour)}
}

func mustAppend(t *testing.T, l tokens.RevocationLog, r tokens.Revocation) {
	t.Helper()
	if err := l.Append(t.Context(), r); err != nil {
		t.Fatalf("Append %q: %v", r.Subject, err)
	}
}

func since(t *testing.T, l tokens.RevocationLog, cursor int64, limit int) []tokens.Revocation {
	t.Helper()
	got, err := l.Since(t.Context(), cursor, limit)
	if err != nil {
		t.Fatalf("Since(%d, %d): %v", cursor, limit, err)
	}
	return got
}

func subjects(rs []tokens.Revocation) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Subject
	}
	return out
}

// sameMilli reports whether a and b are the same instant to the millisecond: the feed keeps
// no finer precision.
func sameMilli(a, b time.Time) bool { return a.UnixMilli() == b.UnixMilli() }
