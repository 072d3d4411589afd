package tokens_test

import (
	"crypto/ecdsa"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/portaria/portaria/keys"
)

// BenchmarkVerifyES256 is the whole of Verify on a valid token: shape checks, strict header
// and claims parsing, key lookup and the signature.
func BenchmarkVerifyES256(b *testing.B) {
	e := newVTEnv(b, vtConfig{alg: keys.ES256})
	tok, _ := e.mint()
	e.mustVerify(tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(e.ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineVerifyES256 is jws.Verify alone on the same token with the key in hand: the
// floor that BenchmarkVerifyES256 is compared against.
func BenchmarkBaselineVerifyES256(b *testing.B) {
	e := newVTEnv(b, vtConfig{alg: keys.ES256})
	tok, _ := e.mint()
	key, err := jwk.ParseKey(e.ringPublicJWK(vtHeader(b, tok)["kid"].(string)))
	if err != nil {
		b.Fatal(err)
	}
	var pub ecdsa.PublicKey
	if err := jwk.Export(key, &pub); err != nil {
		b.Fatal(err)
	}
	raw := []byte(tok)
	if _, err := jws.Verify(raw, jws.WithKey(jwa.ES256(), &pub)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jws.Verify(raw, jws.WithKey(jwa.ES256(), &pub)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectDots1MiB is the CVE-2025-30204 shape: 1 MiB of dots must cost next to nothing.
func BenchmarkRejectDots1MiB(b *testing.B) {
	e := newVTEnv(b, vtConfig{alg: keys.ES256})
	dots := strings.Repeat(".", 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(e.ctx, dots); err == nil {
			b.Fatal("accepted")
		}
	}
}
