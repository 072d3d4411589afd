package tokens_test

import (
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/tokens"
)

// unknownKIDToken returns a well-formed token under kid, signed by a key the verifier trusts
// but published under another kid.
func (e *vtEnv) unknownKIDToken(kid string) string {
	ec, _ := vtTestKeys()
	return vtSignEC(e.t, ec, crypto.SHA256, map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"}, e.claims())
}

// TestJWKSStormOfUnknownKidsFetchesAtMostTwice is F9 / JW-08: 10,000 tokens with random kids
// from 50 goroutines cost one refetch, while a valid token keeps verifying.
func TestJWKSStormOfUnknownKidsFetchesAtMostTwice(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256})
	valid, _ := e.mint()
	_, payload, sig := vtSegments(valid)
	// A slow JWKS keeps the refetch in flight while the storm piles up behind it.
	e.jwks.delay.Store(int64(100 * time.Millisecond))

	const goroutines, perGoroutine = 50, 200
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		latencies []time.Duration
	)
	start := make(chan struct{})
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			local := make([]time.Duration, 0, perGoroutine)
			for i := range perGoroutine {
				if i%10 == 0 {
					if _, err := e.v.Verify(e.ctx, valid); err != nil {
						t.Errorf("a valid token was refused during the storm: %v", err)
						return
					}
				}
				hdr := fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, tokens.RandomID())
				tok := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + payload + "." + sig
				began := time.Now()
				_, err := e.v.Verify(e.ctx, tok)
				local = append(local, time.Since(began))
				if !errors.Is(err, tokens.ErrInvalidToken) {
					t.Errorf("a token with an unknown kid: err = %v", err)
					return
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if n := e.jwks.hits.Load(); n > 2 {
		t.Fatalf("%d JWKS fetches for %d unknown kids, want at most 2", n, goroutines*perGoroutine)
	}
	e.mustVerify(valid)
	slices.Sort(latencies)
	if len(latencies) > 0 {
		t.Logf("unknown-kid refusals: %d, JWKS fetches %d, p50 %v, p99 %v, max %v", len(latencies), e.jwks.hits.Load(),
			latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])
	}
}

// TestJWKSOutageKeepsTheLastGoodKeys: whatever the JWKS answers on a refetch, tokens signed by
// the cached keys still verify.
func TestJWKSOutageKeepsTheLastGoodKeys(t *testing.T) {
	for name, mode := range map[string]int32{
		"HTTP 500":                     vtFail500,
		"garbage":                      vtGarbage,
		"a timeout":                    vtHang,
		"an empty key set":             vtEmpty,
		"a body over 64 KiB":           vtHuge,
		"a set without any usable key": vtUnusable,
	} {
		t.Run(name, func(t *testing.T) {
			e := newVTEnv(t, vtConfig{alg: keys.ES256, verifier: func(o *tokens.VerifierOptions) {
				o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
			}})
			valid, _ := e.mint()
			e.mustVerify(valid)

			e.jwks.mode.Store(mode)
			before := e.jwks.hits.Load()
			e.clock.Add(31 * time.Second)
			// "huge-only" is published only by the oversized body: were the cap missing, it
			// would verify.
			e.mustRefuse(e.unknownKIDToken("huge-only"))
			if e.jwks.hits.Load() == before {
				t.Fatal("an unknown kid after the cool-down caused no refetch")
			}
			e.mustVerify(valid)
			if !e.v.Ready() {
				t.Fatal("the verifier lost its keys")
			}

			// Once the JWKS recovers, the next refetch is adopted.
			e.jwks.mode.Store(vtServe)
			e.clock.Add(31 * time.Second)
			e.mustRefuse(e.unknownKIDToken("still-unknown"))
			e.mustVerify(valid)
		})
	}
}

// TestJWKSNewKeyVerifiesWithinOneCooldown: a key published by rotation is picked up by the first
// token carrying its kid, at most one cool-down after the previous on-demand fetch.
func TestJWKSNewKeyVerifiesWithinOneCooldown(t *testing.T) {
	fastRing := func(o *keys.Options) {
		o.JWKSMaxAge, o.Reload, o.PublishAhead = time.Second, time.Second, 3*time.Second
	}
	rotate := func(e *vtEnv) (string, string) {
		e.t.Helper()
		info, err := e.ring.Rotate(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		e.clock.Add(3 * time.Second)
		tok, _ := e.mint()
		if kid := vtHeader(e.t, tok)["kid"]; kid != info.KID {
			e.t.Fatalf("the ring signs with %v, want the new key %s", kid, info.KID)
		}
		return tok, info.KID
	}

	t.Run("right after another refetch", func(t *testing.T) {
		e := newVTEnv(t, vtConfig{alg: keys.ES256, ring: fastRing})
		old, _ := e.mint()
		e.mustRefuse(e.unknownKIDToken("nobody")) // spends the on-demand fetch
		fetches := e.jwks.hits.Load()

		fresh, _ := rotate(e)
		e.mustRefuse(fresh) // 3s after the last refetch: cooling down
		if n := e.jwks.hits.Load(); n != fetches {
			t.Fatalf("a refetch inside the cool-down (%d fetches, want %d)", n, fetches)
		}
		e.clock.Add(27 * time.Second) // one cool-down after the last refetch
		e.mustVerify(fresh)
		e.mustVerify(old) // the retired key stays published
		if n := e.jwks.hits.Load(); n != fetches+1 {
			t.Fatalf("%d fetches, want %d", n, fetches+1)
		}
	})
	t.Run("with no refetch pending", func(t *testing.T) {
		e := newVTEnv(t, vtConfig{alg: keys.ES256, ring: fastRing})
		fresh, _ := rotate(e)
		e.mustVerify(fresh)
	})
}

func TestVerifierStartsWithoutTheJWKS(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		url := closed.URL + "/jwks.json"
		closed.Close()
		v, err := tokens.NewVerifier(t.Context(), tokens.VerifierOptions{JWKSURL: url, Issuer: vtIssuer, Audience: vtAudience})
		if err != nil {
			t.Fatalf("NewVerifier failed on an unreachable JWKS: %v", err)
		}
		if v.Ready() {
			t.Fatal("Ready without keys")
		}
		if _, err := v.Verify(t.Context(), "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsiLCJ0eXAiOiJhdCtqd3QifQ.e30.AAAA"); !errors.Is(err, tokens.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("failing, then recovering", func(t *testing.T) {
		e := newVTEnv(t, vtConfig{alg: keys.ES256, mode: vtFail500, noWait: true})
		for e.jwks.hits.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		valid, _ := e.mint()
		e.mustRefuse(valid)
		if e.v.Ready() {
			t.Fatal("Ready without keys")
		}
		e.jwks.mode.Store(vtServe)
		e.clock.Add(30 * time.Second)
		e.mustVerify(valid)
		if !e.v.Ready() {
			t.Fatal("not Ready after loading keys")
		}
	})
}

// TestJWKSKeysAreNotTrustedForeverWhileFetchesFail: JW-08 serves stale keys for 24h at most.
func TestJWKSKeysAreNotTrustedForeverWhileFetchesFail(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256})
	c := e.claims()
	c["exp"] = e.clock.Now().Add(72 * time.Hour).Unix()
	long := e.signRing("at+jwt", c)
	e.mustVerify(long)

	e.jwks.mode.Store(vtFail500)
	e.clock.Add(23 * time.Hour)
	e.mustVerify(long)
	e.clock.Add(time.Hour + time.Second)
	e.mustRefuse(long)
	if e.v.Ready() {
		t.Fatal("Ready with keys older than 24h")
	}

	e.jwks.mode.Store(vtServe)
	e.clock.Add(31 * time.Second)
	e.mustVerify(long)
}
