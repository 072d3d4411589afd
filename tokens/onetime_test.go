package tokens_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

func issueOneTime(t *testing.T, o *tokens.OneTimeTokens, ot tokens.OneTime, ttl time.Duration) string {
	t.Helper()
	token, err := o.Issue(t.Context(), ot, ttl)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return token
}

func wantRejected(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, tokens.ErrInvalidOneTimeToken) {
		t.Fatalf("%s: got %v, want ErrInvalidOneTimeToken", what, err)
	}
}

// RT-07 / F2: of concurrent redemptions exactly one succeeds.
func TestOneTimeTokenIsRedeemedExactlyOnce(t *testing.T) {
	const goroutines = 50
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		for round := range 5 {
			token := issueOneTime(t, o, tokens.OneTime{
				Purpose: "password_reset", Subject: "user-1", Data: []byte("payload"),
			}, 30*time.Minute)
			var wins atomic.Int64
			var won tokens.OneTime
			errs := make([]error, goroutines)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range goroutines {
				wg.Go(func() {
					<-start
					ot, err := o.Redeem(t.Context(), "password_reset", token, "")
					if err == nil {
						wins.Add(1)
						won = ot
						return
					}
					if !errors.Is(err, tokens.ErrInvalidOneTimeToken) {
						errs[i] = err
					}
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if n := wins.Load(); n != 1 {
				t.Fatalf("round %d: %d redemptions succeeded, want exactly 1", round, n)
			}
			if won.Purpose != "password_reset" || won.Subject != "user-1" || !bytes.Equal(won.Data, []byte("payload")) ||
				!won.ExpiresAt.Equal(env.clock.Now().Add(30*time.Minute)) {
				t.Fatalf("round %d: redeemed %+v", round, won)
			}
		}
	})
}

func TestOneTimeTokenIsBoundToItsPurposeAndClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		mfa := issueOneTime(t, o, tokens.OneTime{Purpose: "mfa", Subject: "user-1", ClientID: "client-a"}, 5*time.Minute)

		_, err := o.Redeem(ctx, "password_reset", mfa, "client-a")
		wantRejected(t, "redeem for another purpose", err)
		_, err = o.Peek(ctx, "password_reset", mfa)
		wantRejected(t, "peek for another purpose", err)
		for _, client := range []string{"client-b", ""} {
			_, err = o.Redeem(ctx, "mfa", mfa, client)
			wantRejected(t, "redeem by client "+client, err)
		}
		if ot, err := o.Redeem(ctx, "mfa", mfa, "client-a"); err != nil || ot.ClientID != "client-a" {
			t.Fatalf("redeem by its own client after the refusals: got (%+v, %v)", ot, err)
		}

		// A token issued without a client may be redeemed by any.
		reset := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-1"}, time.Hour)
		if _, err := o.Redeem(ctx, "password_reset", reset, "client-b"); err != nil {
			t.Fatalf("redeem of an unbound token: %v", err)
		}
	})
}

func TestOneTimeTokenExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		token := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-1"}, 30*time.Minute)
		env.clock.Advance(30*time.Minute - time.Millisecond)
		if _, err := o.Peek(ctx, "password_reset", token); err != nil {
			t.Fatalf("peek just before expiry: %v", err)
		}
		env.clock.Advance(time.Millisecond)
		_, err := o.Peek(ctx, "password_reset", token)
		wantRejected(t, "peek at expiry", err)
		_, err = o.Redeem(ctx, "password_reset", token, "")
		wantRejected(t, "redeem at expiry", err)
		_, err = o.Fail(ctx, "password_reset", token, 5)
		wantRejected(t, "fail at expiry", err)
	})
}

// PR-02: a newer token, or a successful login, voids the older ones.
func TestOnlyTheNewestTokenOfASubjectIsValid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		first := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-1"}, time.Hour)
		second := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-1"}, time.Hour)
		otherUser := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-2"}, time.Hour)
		otherPurpose := issueOneTime(t, o, tokens.OneTime{Purpose: "email_verification", Subject: "user-1"}, time.Hour)

		_, err := o.Redeem(ctx, "password_reset", first, "")
		wantRejected(t, "the older token", err)
		if _, err := o.Peek(ctx, "password_reset", second); err != nil {
			t.Fatalf("the newest token: %v", err)
		}

		if err := o.VoidSubject(ctx, "password_reset", "user-1"); err != nil {
			t.Fatalf("VoidSubject: %v", err)
		}
		_, err = o.Redeem(ctx, "password_reset", second, "")
		wantRejected(t, "the newest token after VoidSubject", err)
		for name, tok := range map[string]string{"another user's": otherUser, "another purpose's": otherPurpose} {
			purpose := "password_reset"
			if tok == otherPurpose {
				purpose = "email_verification"
			}
			if _, err := o.Peek(ctx, purpose, tok); err != nil {
				t.Fatalf("%s token after VoidSubject: %v", name, err)
			}
		}
		third := issueOneTime(t, o, tokens.OneTime{Purpose: "password_reset", Subject: "user-1"}, time.Hour)
		if _, err := o.Redeem(ctx, "password_reset", third, ""); err != nil {
			t.Fatalf("a token issued after VoidSubject: %v", err)
		}
	})
}

// SPEC §3: an mfa_token allows 5 wrong tries, then dies.
func TestFailedAttemptsUseUpAToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		token := issueOneTime(t, o, tokens.OneTime{Purpose: "mfa", Subject: "user-1", ClientID: "app"}, 5*time.Minute)
		for want := 4; want >= 0; want-- {
			got, err := o.Fail(ctx, "mfa", token, 5)
			if err != nil || got != want {
				t.Fatalf("Fail: got (%d, %v), want (%d, nil)", got, err, want)
			}
			if want > 0 {
				if _, err := o.Peek(ctx, "mfa", token); err != nil {
					t.Fatalf("peek with %d tries left: %v", want, err)
				}
			}
		}
		_, err := o.Redeem(ctx, "mfa", token, "app")
		wantRejected(t, "redeem after the last try", err)
		_, err = o.Fail(ctx, "mfa", token, 5)
		wantRejected(t, "another failure after the last try", err)
	})
}

func TestConcurrentFailuresAreAllCounted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		token := issueOneTime(t, o, tokens.OneTime{Purpose: "mfa", Subject: "user-1"}, 5*time.Minute)
		var zero atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				<-start
				left, err := o.Fail(t.Context(), "mfa", token, 5)
				if err == nil && left == 0 {
					zero.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if zero.Load() < 1 {
			t.Fatal("no failure reported the last try")
		}
		_, err := o.Peek(t.Context(), "mfa", token)
		wantRejected(t, "peek after 20 concurrent failures", err)
	})
}

// Single-use access tokens: the first presentation wins.
func TestBurnAcceptsAnAccessTokenOnce(t *testing.T) {
	const goroutines = 50
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		jti := tokens.RandomID()
		exp := env.clock.Now().Add(15 * time.Minute)
		var firsts atomic.Int64
		errs := make([]error, goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range goroutines {
			wg.Go(func() {
				<-start
				first, err := o.Burn(ctx, jti, exp)
				errs[i] = err
				if first {
					firsts.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := firsts.Load(); n != 1 {
			t.Fatalf("%d burns were first, want exactly 1", n)
		}
		if first, err := o.Burn(ctx, tokens.RandomID(), exp); err != nil || !first {
			t.Fatalf("another jti: got (%v, %v), want (true, nil)", first, err)
		}
		if first, err := o.Burn(ctx, tokens.RandomID(), env.clock.Now()); err != nil || first {
			t.Fatalf("an expired token: got (%v, %v), want (false, nil)", first, err)
		}
	})
}

func TestOneTimeTokensAreStoredOnlyAsHashes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		o := tokens.NewOneTimeTokens(env.store, env.clock.Now)
		seen := make(map[string]bool)
		var issued []string
		for range 200 {
			token := issueOneTime(t, o, tokens.OneTime{Purpose: "invitation", Subject: tokens.RandomID(), ClientID: "app"}, time.Hour)
			if len(token) < 43 || seen[token] {
				t.Fatalf("token %q: short or repeated", token)
			}
			seen[token] = true
			issued = append(issued, token)
		}
		if _, err := o.Fail(t.Context(), "invitation", issued[0], 5); err != nil {
			t.Fatal(err)
		}
		entries := env.entries(t)
		if len(entries) < len(issued) {
			t.Fatalf("the store holds %d keys, want at least %d", len(entries), len(issued))
		}
		for _, token := range issued {
			for key, value := range entries {
				if strings.Contains(key, token) || strings.Contains(string(value), token) {
					t.Fatalf("key %q or its value holds a raw token", key)
				}
			}
		}
	})
}

func TestMalformedOneTimeTokensNeverReachTheStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, env *tsEnv) {
		ctx := t.Context()
		counting := &countingStore{Store: env.store}
		o := tokens.NewOneTimeTokens(counting, env.clock.Now)
		token := issueOneTime(t, o, tokens.OneTime{Purpose: "mfa", Subject: "user-1"}, time.Minute)
		calls := counting.calls.Load()
		for _, bad := range []string{"", token[:42], token + "A", token[:42] + "=", strings.Repeat("A", 10_000)} {
			_, err := o.Redeem(ctx, "mfa", bad, "")
			wantRejected(t, "redeem of a malformed token", err)
		}
		for _, purpose := range []string{"", "MFA", "mfa:x", "mfa x"} {
			_, err := o.Redeem(ctx, purpose, token, "")
			wantRejected(t, "redeem for purpose "+purpose, err)
		}
		if n := counting.calls.Load() - calls; n != 0 {
			t.Fatalf("malformed input made %d store calls, want none", n)
		}
		if _, err := o.Issue(ctx, tokens.OneTime{Purpose: "a:b"}, time.Minute); err == nil {
			t.Fatal("Issue with a purpose outside [a-z0-9_-]: got no error")
		}
		if _, err := o.Redeem(ctx, "mfa", token, ""); err != nil {
			t.Fatalf("the real token afterwards: %v", err)
		}
	})
}
