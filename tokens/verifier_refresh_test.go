package tokens

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TestJWKSRefreshFollowsMaxAgeWithinBounds looks inside the jwk.Cache resource: the next
// background fetch is due when the JWKS's Cache-Control says, clamped to [30s, 1h] (httprc's
// own defaults are 15m and 30 days).
func TestJWKSRefreshFollowsMaxAgeWithinBounds(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, "k")
	k.Set(jwk.AlgorithmKey, jwa.ES256())
	kb, _ := json.Marshal(k)
	body := []byte(`{"keys":[` + string(kb) + `]}`)

	for cacheControl, want := range map[string]time.Duration{
		"public, max-age=300":      300 * time.Second,
		"public, max-age=5":        jwksMinRefresh,
		"public, max-age=31536000": jwksMaxRefresh,
		"no-store":                 jwksMinRefresh,
		"":                         jwksMinRefresh,
	} {
		t.Run(cacheControl, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if cacheControl != "" {
					w.Header().Set("Cache-Control", cacheControl)
				}
				w.Write(body)
			}))
			defer srv.Close()
			v, err := NewVerifier(t.Context(), VerifierOptions{JWKSURL: srv.URL, Issuer: "https://i.test", Audience: "a"})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !v.Ready() {
				if time.Now().After(deadline) {
					t.Fatal("no keys within 10s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got := time.Until(v.res.Next()); got > want || got < want-10*time.Second {
				t.Fatalf("next fetch in %v, want about %v", got, want)
			}
		})
	}
}
