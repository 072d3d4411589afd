package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/portaria/portaria/keys"
)

// The sign path is hot: every access token goes through it. It must work from memory only.
func BenchmarkSignES256(b *testing.B) { benchmarkSign(b, keys.ES256) }
func BenchmarkSignEdDSA(b *testing.B) { benchmarkSign(b, keys.EdDSA) }
func BenchmarkSignRS256(b *testing.B) { benchmarkSign(b, keys.RS256) }

func benchmarkSign(b *testing.B, alg keys.Alg) {
	ctx := context.Background()
	store, _ := newStore(b)
	opts := testOptions(newClock())
	opts.Alg = alg
	r := newRing(b, store, newSealer(b), opts)
	maintain(b, r)
	payload := []byte(`{"iss":"https://auth.example.com","sub":"9b2f6c1e-4c1d-4a53-9d0c-2f1e8b7a6c5d","aud":"api","exp":1893456000,"iat":1893455100,"jti":"0f8e7d6c5b4a39281706f5e4d3c2b1a0","scope":"results:read","client_id":"portal"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Sign(ctx, "at+jwt", payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWKS(b *testing.B) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(b)
	r := newRing(b, store, newSealer(b), testOptions(c))
	maintain(b, r)
	c.Add(time.Minute)
	if _, err := r.Rotate(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.JWKS(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
