package tokens_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	keysql "github.com/portaria/portaria/keys/sqlstore"
	"github.com/portaria/portaria/tokens"
)

const (
	vtIssuer   = "https://auth.portaria.test"
	vtAudience = "https://api.portaria.test"
	vtTTL      = 15 * time.Minute
	// Test keys the JWKS publishes beside the ring's, so that tests can sign arbitrary headers
	// with a key the verifier trusts.
	vtECKID  = "test-ec"
	vtRSAKID = "test-rsa"
)

// vtClock is a fake clock moved by hand.
type vtClock struct {
	mu sync.Mutex
	t  time.Time
}

func newVTClock() *vtClock { return &vtClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *vtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vtClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vtTestKeys are generated once per test binary: RSA generation is slow.
var vtTestKeys = sync.OnceValues(func() (*ecdsa.PrivateKey, *rsa.PrivateKey) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return ec, rk
})

// vtPublicJWK renders pub as a JWK with kid, alg and use=sig.
func vtPublicJWK(t testing.TB, pub any, kid string, alg jwa.SignatureAlgorithm) json.RawMessage {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := k.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// JWKS server behaviours.
const (
	vtServe    int32 = iota // the ring's keys plus the test keys, max-age=300
	vtFail500               // HTTP 500
	vtGarbage               // 200 with HTML
	vtHang                  // never answers (until the client gives up)
	vtEmpty                 // a valid, empty key set
	vtHuge                  // a valid key set padded beyond 64 KiB, with an extra key
	vtUnusable              // a valid set whose only key is symmetric
)

// vtJWKS is the issuer's JWKS endpoint as a resource server sees it; it counts fetches.
type vtJWKS struct {
	srv   *httptest.Server
	hits  atomic.Int64
	mode  atomic.Int32
	delay atomic.Int64 // nanoseconds to wait before answering
	body  func() []byte
	extra json.RawMessage // the key only the vtHuge body carries
}

func newVTJWKS(t testing.TB, body func() []byte) *vtJWKS {
	j := &vtJWKS{body: body}
	ec, _ := vtTestKeys()
	j.extra = vtPublicJWK(t, &ec.PublicKey, "huge-only", jwa.ES256())
	j.srv = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *vtJWKS) URL() string { return j.srv.URL + "/.well-known/jwks.json" }

func (j *vtJWKS) serve(w http.ResponseWriter, r *http.Request) {
	j.hits.Add(1)
	if d := time.Duration(j.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json")
	switch j.mode.Load() {
	case vtFail500:
		http.Error(w, "internal error", http.StatusInternalServerError)
	case vtGarbage:
		w.Write([]byte("<html><body>maintenance</body></html>"))
	case vtHang:
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	case vtEmpty:
		w.Write([]byte(`{"keys":[]}`))
	case vtHuge:
		b := strings.TrimSuffix(string(j.body()), "]}") + "," + string(j.extra) + "]}"
		w.Write([]byte(b + strings.Repeat(" ", 70<<10)))
	case vtUnusable:
		w.Write([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"oct","alg":"HS256"}]}`))
	default:
		w.Write(j.body())
	}
}

// vtEnv is an issuer (a real key ring) and a resource server's Verifier over its JWKS.
type vtEnv struct {
	t      testing.TB
	ctx    context.Context
	clock  *vtClock
	ring   *keys.Ring
	issuer *tokens.Issuer
	jwks   *vtJWKS
	v      *tokens.Verifier
	opts   tokens.VerifierOptions
}

type vtConfig struct {
	alg      keys.Alg
	ring     func(*keys.Options)
	verifier func(*tokens.VerifierOptions)
	mode     int32 // the JWKS server's behaviour when the verifier starts
	noWait   bool  // do not wait for the verifier to load keys
}

func newVTEnv(t testing.TB, cfg vtConfig) *vtEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &vtEnv{t: t, ctx: ctx, clock: newVTClock()}
	e.ring = vtRing(t, cfg.alg, e.clock, cfg.ring)
	e.issuer = tokens.NewIssuer(e.ring, vtIssuer, vtAudience, e.clock.Now)

	ec, rk := vtTestKeys()
	testKeys := []json.RawMessage{
		vtPublicJWK(t, &ec.PublicKey, vtECKID, jwa.ES256()),
		vtPublicJWK(t, &rk.PublicKey, vtRSAKID, jwa.RS256()),
		// A P-256 key that claims ES384: a mismatch no verifier may accept.
		vtPublicJWK(t, &ec.PublicKey, "p256-claims-es384", jwa.ES384()),
	}
	e.jwks = newVTJWKS(t, func() []byte {
		body, err := e.ring.JWKS(context.Background())
		if err != nil {
			return []byte(`{"keys":[]}`)
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(body, &set); err != nil {
			panic(err)
		}
		set.Keys = append(set.Keys, testKeys...)
		out, _ := json.Marshal(set)
		return out
	})
	e.jwks.mode.Store(cfg.mode)

	e.opts = tokens.VerifierOptions{
		JWKSURL:  e.jwks.URL(),
		Issuer:   vtIssuer,
		Audience: vtAudience,
		Now:      e.clock.Now,
	}
	if cfg.verifier != nil {
		cfg.verifier(&e.opts)
	}
	v, err := tokens.NewVerifier(ctx, e.opts)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	e.v = v
	if !cfg.noWait {
		e.waitReady()
	}
	return e
}

func (e *vtEnv) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.v.Ready() {
		if time.Now().After(deadline) {
			e.t.Fatal("the verifier loaded no keys within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func vtRing(t testing.TB, alg keys.Alg, clock *vtClock, tweak func(*keys.Options)) *keys.Ring {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, keysql.Migrations); err != nil {
		t.Fatal(err)
	}
	master := make([]byte, 32)
	rand.Read(master)
	sealer, err := keys.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	opts := keys.Options{Alg: alg, Retain: time.Hour, Now: clock.Now}
	if tweak != nil {
		tweak(&opts)
	}
	ring, err := keys.NewRing(keysql.New(db), sealer, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	return ring
}

// mint issues a real access token.
func (e *vtEnv) mint() (string, tokens.AccessClaims) {
	e.t.Helper()
	tok, c, err := e.issuer.Access(e.ctx, tokens.AccessRequest{
		Subject:   "user-1",
		ClientID:  "app",
		Scope:     []string{"openid", "results:read"},
		TTL:       vtTTL,
		Org:       "org-1",
		Perms:     []string{"results:read", "tests:take"},
		SessionID: "sess-1",
		AMR:       []string{"pwd", "otp"},
		AuthTime:  e.clock.Now().Add(-time.Minute),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, c
}

// claims returns the claims of a valid token, to be mutated.
func (e *vtEnv) claims() map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"iss":       vtIssuer,
		"sub":       "user-1",
		"aud":       vtAudience,
		"exp":       now + int64(vtTTL/time.Second),
		"iat":       now,
		"jti":       tokens.RandomID(),
		"client_id": "app",
		"scope":     "openid",
	}
}

// signRing signs payload (a map or raw JSON) with the ring's active key under typ.
func (e *vtEnv) signRing(typ string, payload any) string {
	e.t.Helper()
	tok, err := e.ring.Sign(e.ctx, typ, vtJSON(e.t, payload))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// ringKID is the kid of the ring's active key.
func (e *vtEnv) ringKID() string {
	e.t.Helper()
	tok := e.signRing(tokens.TypeAccessToken, e.claims())
	return vtHeader(e.t, tok)["kid"].(string)
}

// ringPublicJWK returns the published JWK of the ring key kid.
func (e *vtEnv) ringPublicJWK(kid string) json.RawMessage {
	e.t.Helper()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(e.jwks.body(), &set); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range set.Keys {
		var m struct {
			KID string `json:"kid"`
		}
		json.Unmarshal(k, &m)
		if m.KID == kid {
			return k
		}
	}
	e.t.Fatalf("kid %s not in the JWKS", kid)
	return nil
}

func (e *vtEnv) mustVerify(tok string) tokens.AccessClaims {
	e.t.Helper()
	c, err := e.v.Verify(e.ctx, tok)
	if err != nil {
		e.t.Fatalf("Verify refused a valid token: %v", err)
	}
	return c
}

func (e *vtEnv) mustRefuse(tok string) error {
	e.t.Helper()
	c, err := e.v.Verify(e.ctx, tok)
	if err == nil {
		e.t.Fatalf("Verify accepted %.120q", tok)
	}
	if !errors.Is(err, tokens.ErrInvalidToken) {
		e.t.Fatalf("error %v does not wrap ErrInvalidToken", err)
	}
	if c.Subject != "" || c.Issuer != "" || c.ID != "" {
		e.t.Fatalf("Verify returned claims with its error: %+v", c)
	}
	return err
}

var vtB64 = base64.RawURLEncoding

// vtJSON marshals v, or returns it as is when it is already JSON text.
func vtJSON(t testing.TB, v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vtInput is the JWS signing input of header and payload (maps or raw JSON).
func vtInput(t testing.TB, header, payload any) string {
	return vtB64.EncodeToString(vtJSON(t, header)) + "." + vtB64.EncodeToString(vtJSON(t, payload))
}

// vtSignEC signs with an ECDSA key and any hash, as r‖s of the key's size.
func vtSignEC(t testing.TB, priv *ecdsa.PrivateKey, h crypto.Hash, header, payload any) string {
	in := vtInput(t, header, payload)
	hh := h.New()
	hh.Write([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, priv, hh.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	size := (priv.Curve.Params().BitSize + 7) / 8
	sig := make([]byte, 2*size)
	r.FillBytes(sig[:size])
	s.FillBytes(sig[size:])
	return in + "." + vtB64.EncodeToString(sig)
}

// vtSignECInput signs a signing input given verbatim, however it is encoded, with ES256.
func vtSignECInput(t testing.TB, priv *ecdsa.PrivateKey, in string) string {
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + vtB64.EncodeToString(sig)
}

func vtSignRSA(t testing.TB, priv *rsa.PrivateKey, header, payload any) string {
	in := vtInput(t, header, payload)
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + vtB64.EncodeToString(sig)
}

func vtSignHS256(t testing.TB, key []byte, header, payload any) string {
	in := vtInput(t, header, payload)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return in + "." + vtB64.EncodeToString(m.Sum(nil))
}

// vtHeader decodes a token's protected header.
func vtHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := vtB64.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// vtSegments splits a compact token (test side only: inputs here are small and well formed).
func vtSegments(tok string) (header, payload, sig string) {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0], parts[1], parts[2]
}
