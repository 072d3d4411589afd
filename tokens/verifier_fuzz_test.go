package tokens_test

import (
	"crypto"
	"errors"
	"strings"
	"testing"

	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/tokens"
)

// FuzzVerify: no input panics, every refusal wraps ErrInvalidToken, and nothing but the one
// valid token verifies (the clock never moves, so it stays valid).
func FuzzVerify(f *testing.F) {
	e := newVTEnv(f, vtConfig{alg: keys.ES256})
	valid, _ := e.mint()
	ec, rk := vtTestKeys()
	h, p, s := vtSegments(valid)
	kid := vtHeader(f, valid)["kid"].(string)
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid, "typ": "at+jwt"} }

	for _, seed := range []string{
		valid,
		vtInput(f, hdr("none", kid), e.claims()) + ".",
		vtSignHS256(f, []byte(e.ringPublicJWK(kid)), hdr("HS256", kid), e.claims()),
		vtSignRSA(f, rk, hdr("RS256", kid), e.claims()),
		vtSignEC(f, ec, crypto.SHA384, hdr("ES384", vtECKID), e.claims()),
		vtSignEC(f, ec, crypto.SHA256, `{"alg":"ES256","kid":"test-ec","typ":"at+jwt","jku":"http://127.0.0.1:1/"}`, e.claims()),
		e.signRing("JWT", e.claims()),
		e.signRing("at+jwt", `{"iss":"`+vtIssuer+`","sub":"u","aud":["x","`+vtAudience+`"],"exp":"9999999999","jti":"j","client_id":"c"}`),
		h + "." + p + "." + strings.Repeat("A", 86),
		h + "." + p,
		valid + ".e30.e30",
		strings.Repeat(".", 64),
		"",
		"eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(seed)
	}
	f.Add(h + "." + p + "." + s + "=")

	f.Fuzz(func(t *testing.T, tok string) {
		var c tokens.AccessClaims
		var err error
		alloc := testenv.Allocated(func() { c, err = e.v.Verify(e.ctx, tok) })
		if len(tok) <= testenv.FuzzInputLimit && alloc > testenv.FuzzAllocLimit {
			t.Fatalf("verifying %d bytes allocated %d KiB, more than 1 MiB (IN-04)", len(tok), alloc>>10)
		}
		if err == nil {
			if tok != valid {
				t.Fatalf("a mutated token verified: %q → %+v", tok, c)
			}
			return
		}
		if !errors.Is(err, tokens.ErrInvalidToken) {
			t.Fatalf("error %v does not wrap ErrInvalidToken", err)
		}
	})
}
