package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/keys/sqlstore"
)

// clock is a fake clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newStore opens a migrated SQLite store and returns it with the database file's path.
func newStore(t testing.TB) (keys.Store, string) {
	t.Helper()
	ctx := context.Background()
	path := testenv.SQLiteURL(t)
	db, err := sqldb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return sqlstore.New(db), path
}

// testOptions are the rotation test's settings: Rotation 1h, JWKS max-age 5m, access tokens of
// 15m with 1m of clock skew.
func testOptions(c *clock) keys.Options {
	return keys.Options{
		Rotation:   time.Hour,
		JWKSMaxAge: 5 * time.Minute,
		Reload:     30 * time.Second,
		Retain:     accessTTL + time.Minute + 5*time.Minute,
		Now:        c.Now,
	}
}

const accessTTL = 15 * time.Minute

func newRing(t testing.TB, store keys.Store, sealer *keys.Sealer, opts keys.Options) *keys.Ring {
	t.Helper()
	r, err := keys.NewRing(store, sealer, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func maintain(t testing.TB, r *keys.Ring) {
	t.Helper()
	if err := r.Maintain(context.Background()); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
}

func jwks(t testing.TB, r *keys.Ring) jwk.Set {
	t.Helper()
	body, err := r.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	return set
}

func kidsOf(set jwk.Set) map[string]bool {
	out := make(map[string]bool)
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		out[kid] = true
	}
	return out
}

// verify checks token against set the way a resource server does: the kid picks the key.
func verify(set jwk.Set, token string) ([]byte, error) {
	return jws.Verify([]byte(token), jws.WithKeySet(set, jws.WithRequireKid(true)))
}

func headerOf(t testing.TB, token string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func kidOf(t testing.TB, token string) string {
	kid, _ := headerOf(t, token)["kid"].(string)
	return kid
}

var allAlgs = []keys.Alg{keys.ES256, keys.EdDSA, keys.RS256}

func TestSignedTokensVerifyAgainstTheJWKS(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(string(alg), func(t *testing.T) {
			c := newClock()
			store, _ := newStore(t)
			opts := testOptions(c)
			opts.Alg = alg
			r := newRing(t, store, newSealer(t), opts)
			maintain(t, r)

			payload := []byte(`{"sub":"alice"}`)
			token, err := r.Sign(context.Background(), "at+jwt", payload)
			if err != nil {
				t.Fatal(err)
			}
			got, err := verify(jwks(t, r), token)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("payload = %s, want %s", got, payload)
			}
			h := headerOf(t, token)
			infos, _ := r.List(context.Background())
			if h["alg"] != string(alg) || h["typ"] != "at+jwt" || h["kid"] != infos[0].KID || len(h) != 3 {
				t.Fatalf("protected header = %v, want exactly alg %s, typ at+jwt, kid %s", h, alg, infos[0].KID)
			}
		})
	}
}

func TestSignBeforeAnyKeyIsLoadedFails(t *testing.T) {
	store, _ := newStore(t)
	r := newRing(t, store, newSealer(t), testOptions(newClock()))
	if _, err := r.Sign(context.Background(), "at+jwt", []byte("{}")); !errors.Is(err, keys.ErrNoKey) {
		t.Fatalf("Sign = %v, want ErrNoKey", err)
	}
}

// privateScalar returns the private parameter d of a stored key, as the raw bytes and as it
// would appear in a JWK.
func privateScalar(t *testing.T, sealer *keys.Sealer, k keys.StoredKey) (raw []byte, jwkD string) {
	t.Helper()
	der, err := sealer.Open(k.PrivateSealed, []byte(k.KID))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		raw = p.D.FillBytes(make([]byte, 32))
	case ed25519.PrivateKey:
		raw = p.Seed()
	case *rsa.PrivateKey:
		raw = p.D.Bytes()
	}
	return raw, base64.RawURLEncoding.EncodeToString(raw)
}

func TestJWKSHoldsPublicKeysOnly(t *testing.T) {
	allowed := map[string]bool{"kty": true, "crv": true, "x": true, "y": true, "n": true, "e": true, "kid": true, "use": true, "alg": true}
	for _, alg := range allAlgs {
		t.Run(string(alg), func(t *testing.T) {
			ctx := context.Background()
			c := newClock()
			store, dbPath := newStore(t)
			sealer := newSealer(t)
			opts := testOptions(c)
			opts.Alg = alg
			r := newRing(t, store, sealer, opts)
			maintain(t, r)
			if _, err := r.Rotate(ctx); err != nil { // an active and a pending key
				t.Fatal(err)
			}
			body, err := r.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2 (active and pending)", len(doc.Keys))
			}
			seen := map[string]bool{}
			for _, k := range doc.Keys {
				for field := range k {
					if !allowed[field] {
						t.Errorf("JWKS key has field %q outside the public allowlist", field)
					}
				}
				kid, _ := k["kid"].(string)
				if kid == "" || seen[kid] {
					t.Errorf("kid %q is empty or repeated", kid)
				}
				seen[kid] = true
				if k["use"] != "sig" || k["alg"] != string(alg) {
					t.Errorf("key %s: use %v, alg %v; want sig, %s", kid, k["use"], k["alg"], alg)
				}
				switch alg {
				case keys.ES256:
					if k["kty"] != "EC" || k["crv"] != "P-256" {
						t.Errorf("key %s: kty %v crv %v, want EC P-256", kid, k["kty"], k["crv"])
					}
				case keys.EdDSA:
					if k["kty"] != "OKP" || k["crv"] != "Ed25519" {
						t.Errorf("key %s: kty %v crv %v, want OKP Ed25519", kid, k["kty"], k["crv"])
					}
				case keys.RS256:
					n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
					if bits := new(big.Int).SetBytes(n).BitLen(); k["kty"] != "RSA" || bits < 3072 {
						t.Errorf("key %s: kty %v with %d bits, want RSA ≥ 3072", kid, k["kty"], bits)
					}
				}
			}

			// The private scalar appears neither in the JWKS nor, in clear, in the database.
			stored, err := store.ListKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var dbBytes []byte
			for _, suffix := range []string{"", "-wal"} {
				b, _ := os.ReadFile(dbPath + suffix)
				dbBytes = append(dbBytes, b...)
			}
			for _, k := range stored {
				raw, d := privateScalar(t, sealer, k)
				if bytes.Contains(body, []byte(d)) {
					t.Errorf("JWKS contains the private d of %s", k.KID)
				}
				if bytes.Contains(k.PrivateSealed, raw) || bytes.Contains(k.PrivateSealed, []byte(d)) ||
					bytes.Contains(k.PublicJWK, []byte(d)) {
					t.Errorf("stored key %s holds its private d in clear", k.KID)
				}
				if len(dbBytes) == 0 || bytes.Contains(dbBytes, raw) || bytes.Contains(dbBytes, []byte(d)) {
					t.Errorf("database file holds the private d of %s in clear (or could not be read)", k.KID)
				}
			}
		})
	}
}

func TestRotateIsPublishedAtOnceAndSignsOnlyAfterPublishAhead(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(t)
	opts := testOptions(c)
	r := newRing(t, store, newSealer(t), opts)
	maintain(t, r)
	before, _ := r.List(ctx)

	c.Add(time.Minute)
	info, err := r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publishAhead := 2*opts.JWKSMaxAge + opts.Reload // the default
	if info.State != keys.StatePending || info.Generation != 2 || !info.ActivatesAt.Equal(c.Now().Add(publishAhead)) {
		t.Fatalf("Rotate = %+v, want generation 2 pending until now + %v", info, publishAhead)
	}
	again, err := r.Rotate(ctx)
	if err != nil || again.KID != info.KID {
		t.Fatalf("a second Rotate = %+v, %v; want the pending key %s again", again, err, info.KID)
	}
	if !kidsOf(jwks(t, r))[info.KID] {
		t.Fatal("the rotated key is not published at once")
	}
	sign := func() string {
		tok, err := r.Sign(ctx, "at+jwt", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		return kidOf(t, tok)
	}
	c.Add(publishAhead - time.Microsecond)
	if kid := sign(); kid != before[0].KID {
		t.Fatalf("just before activation Sign used %s, want the old key %s", kid, before[0].KID)
	}
	c.Add(time.Microsecond)
	if kid := sign(); kid != info.KID {
		t.Fatalf("at activation Sign used %s, want the new key %s", kid, info.KID)
	}

	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].State != keys.StateRetired || list[1].State != keys.StateActive ||
		list[0].RetiresAt == nil || !list[0].RetiresAt.Equal(info.ActivatesAt) ||
		list[0].RemovedAt == nil || !list[0].RemovedAt.Equal(info.ActivatesAt.Add(opts.Retain)) {
		t.Fatalf("List = %+v, want the old key retired at the new key's activation, removed Retain later", list)
	}
	out, _ := json.Marshal(list[0])
	for _, field := range []string{`"kid"`, `"generation"`, `"state":"retired"`, `"created_at"`, `"activates_at"`, `"retires_at"`, `"removed_at"`} {
		if !bytes.Contains(out, []byte(field)) {
			t.Errorf("KeyInfo JSON %s lacks %s", out, field)
		}
	}
}

func TestChangingTheAlgorithmRotatesAfterPublishAhead(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(t)
	sealer := newSealer(t)
	opts := testOptions(c)
	maintain(t, newRing(t, store, sealer, opts))

	c.Add(time.Minute)
	opts.Alg = keys.EdDSA
	r := newRing(t, store, sealer, opts)
	maintain(t, r)
	list, _ := r.List(ctx)
	if len(list) != 2 || list[1].Alg != keys.EdDSA || list[1].State != keys.StatePending ||
		!list[1].ActivatesAt.Equal(c.Now().Add(2*opts.JWKSMaxAge+opts.Reload)) {
		t.Fatalf("List = %+v, want an EdDSA key pending for PublishAhead", list)
	}
	c.Add(time.Hour)
	tok, err := r.Sign(ctx, "at+jwt", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if alg := headerOf(t, tok)["alg"]; alg != "EdDSA" {
		t.Fatalf("after activation the token's alg is %v, want EdDSA", alg)
	}
}

func TestNewRingRejectsUnsafeOptions(t *testing.T) {
	store, _ := newStore(t)
	sealer := newSealer(t)
	base := testOptions(newClock())
	tests := []struct {
		name   string
		change func(*keys.Options)
	}{
		{"no Retain", func(o *keys.Options) { o.Retain = 0 }},
		{"an unknown algorithm", func(o *keys.Options) { o.Alg = "HS256" }},
		{"PublishAhead shorter than the JWKS max-age plus the reload interval", func(o *keys.Options) { o.PublishAhead = 5 * time.Minute }},
		{"Rotation not longer than PublishAhead", func(o *keys.Options) { o.Rotation = 10 * time.Minute }},
		{"a negative duration", func(o *keys.Options) { o.Reload = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			tc.change(&opts)
			if _, err := keys.NewRing(store, sealer, opts); err == nil {
				t.Fatal("NewRing accepted the options")
			}
		})
	}
}

func TestAWrongMasterKeyFailsMaintainLoudly(t *testing.T) {
	store, _ := newStore(t)
	opts := testOptions(newClock())
	maintain(t, newRing(t, store, newSealer(t), opts))
	err := newRing(t, store, newSealer(t), opts).Maintain(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("Maintain under another master key = %v, want a decryption error", err)
	}
}

// signalStore reports each ListKeys on a channel, waiting for the test to receive it, and
// fails it with err.
type signalStore struct {
	keys.Store
	listed chan struct{}
	err    error
}

func (s *signalStore) ListKeys(ctx context.Context) ([]keys.StoredKey, error) {
	select {
	case s.listed <- struct{}{}:
	case <-ctx.Done():
	}
	if s.err != nil {
		return nil, s.err
	}
	return s.Store.ListKeys(ctx)
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunMaintainsUntilCancelledAndLogsFailures(t *testing.T) {
	inner, _ := newStore(t)
	store := &signalStore{Store: inner, listed: make(chan struct{}), err: errors.New("database down")}
	var logs logBuffer
	opts := testOptions(newClock())
	opts.Reload = time.Millisecond // Run's ticker runs on real time
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := newRing(t, store, newSealer(t), opts)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	<-store.listed
	<-store.listed // the first step has failed and been logged
	cancel()
	<-done
	if !strings.Contains(logs.String(), "database down") {
		t.Fatalf("logs = %q, want the store error", logs.String())
	}
}

func TestJWKSIsRebuiltOnlyWhenTheKeySetChanges(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(t)
	opts := testOptions(c)
	r := newRing(t, store, newSealer(t), opts)
	maintain(t, r)
	first, _ := r.JWKS(ctx)
	maintain(t, r) // reloads an unchanged store
	second, _ := r.JWKS(ctx)
	if &first[0] != &second[0] {
		t.Fatal("the JWKS was rebuilt although the key set did not change")
	}

	// After a rotation the old key leaves the JWKS at its removal time, between reloads too.
	old := kidOf(t, mustSign(t, r))
	info, err := r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(info.ActivatesAt.Sub(c.Now()) + opts.Retain - time.Microsecond)
	if !kidsOf(jwks(t, r))[old] {
		t.Fatal("the retired key left the JWKS before Retain had passed")
	}
	c.Add(time.Microsecond)
	if kids := kidsOf(jwks(t, r)); kids[old] || !kids[info.KID] || len(kids) != 1 {
		t.Fatalf("at its removal time the JWKS holds %v, want only %s", kids, info.KID)
	}
}

func mustSign(t *testing.T, r *keys.Ring) string {
	t.Helper()
	tok, err := r.Sign(context.Background(), "at+jwt", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMaintainReportsEachKeyThatBecomesActive(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(t)
	opts := testOptions(c)
	var activated []string
	opts.OnActivate = func(kid string) { activated = append(activated, kid) }
	r := newRing(t, store, newSealer(t), opts)
	maintain(t, r)
	if len(activated) != 0 {
		t.Fatalf("the first key loaded is not a rotation: %v", activated)
	}
	info, err := r.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	maintain(t, r)
	if len(activated) != 0 {
		t.Fatalf("a pending key is not active yet: %v", activated)
	}
	c.Add(info.ActivatesAt.Sub(c.Now()))
	maintain(t, r)
	maintain(t, r)
	if len(activated) != 1 || activated[0] != info.KID {
		t.Fatalf("activations %v, want exactly %s", activated, info.KID)
	}
}
