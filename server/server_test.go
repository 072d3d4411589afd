package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
	identitysql "github.com/portaria/portaria/identity/sqlstore"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	keysql "github.com/portaria/portaria/keys/sqlstore"
	"github.com/portaria/portaria/server"
	"github.com/portaria/portaria/tokens"
)

// fixture is a running token server on a fresh SQLite database.
type fixture struct {
	srv      *httptest.Server
	ids      *identity.Service
	ring     *keys.Ring
	issuer   string
	audience string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, identitysql.Migrations, keysql.Migrations); err != nil {
		t.Fatal(err)
	}
	master := make([]byte, 32)
	sealer, err := keys.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(keysql.New(db), sealer, keys.Options{Alg: keys.ES256, Retain: 25 * time.Hour, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	ids := identity.NewService(identitysql.New(db), identity.Options{Pepper: keys.DeriveKey(master, "test pepper"), Now: time.Now})

	f := &fixture{ids: ids, ring: ring}
	// The issuer is the test server's own URL, known only once it listens.
	var h http.Handler
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(f.srv.Close)
	f.issuer = f.srv.URL
	f.audience = f.srv.URL + "/api"
	h = server.NewServer(server.Deps{
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Role:             server.RoleAll,
		Issuer:           f.issuer,
		Clients:          ids,
		Tokens:           tokens.NewIssuer(ring, f.issuer, f.audience, time.Now),
		Keys:             ring,
		DefaultAccessTTL: 15 * time.Minute,
		MaxAccessTTL:     24 * time.Hour,
		SigningAlg:       "ES256",
		Checks:           []server.Check{{Name: "database", Check: func(ctx context.Context) error { return db.PingContext(ctx) }}},
	})
	return f
}

func (f *fixture) client(t *testing.T, nc identity.NewClient) (identity.Client, string) {
	t.Helper()
	c, secret, err := f.ids.CreateClient(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

// post sends a form to path with optional Basic credentials.
func (f *fixture) post(t *testing.T, path, body, user, pass string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func decode(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return m
}

// jwtParts decodes a compact JWT's header and claims without verifying it.
func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}
