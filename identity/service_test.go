package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/sqlstore"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

var (
	pepper = bytes.Repeat([]byte("p"), identity.MinPepperSize)
	now    = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
)

// cheap are argon2id parameters that keep tests fast; only tests of the default format use more.
var cheap = identity.PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type env struct {
	svc    *identity.Service
	store  *sqlstore.Store
	db     *sqldb.DB
	hashes *atomic.Int64 // argon2id evaluations so far
}

// newEnv returns a Service on a fresh SQLite store, with cheap password hashing that counts its
// evaluations; edits change the options further.
func newEnv(t testing.TB, edits ...func(*identity.Options)) env {
	t.Helper()
	db, err := sqldb.Open(t.Context(), testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	store := sqlstore.New(db)
	hashes := new(atomic.Int64)
	opts := identity.Options{Pepper: pepper, Now: func() time.Time { return now }, Password: cheap, OnHash: func() { hashes.Add(1) }}
	for _, edit := range edits {
		edit(&opts)
	}
	return env{svc: identity.NewService(store, opts), store: store, db: db, hashes: hashes}
}

// countHashes returns how many argon2id evaluations f made.
func (e env) countHashes(f func()) int64 {
	before := e.hashes.Load()
	f()
	return e.hashes.Load() - before
}

func (e env) createOrg(t testing.TB) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	if err := e.store.CreateOrganization(t.Context(), identity.Organization{ID: id, Name: "Acme", Active: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e env) create(t testing.TB, n identity.NewClient) (identity.Client, string) {
	t.Helper()
	c, secret, err := e.svc.CreateClient(t.Context(), n)
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	return c, secret
}

func machine() identity.NewClient {
	return identity.NewClient{Name: "Reports exporter", Grants: []string{identity.GrantClientCredentials}, Scopes: []string{"results:read"}}
}

func app() identity.NewClient {
	return identity.NewClient{Name: "Mobile app", Public: true, Grants: []string{identity.GrantPassword, identity.GrantRefreshToken}}
}

func TestCreateClientValidation(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	tests := []struct {
		name       string
		edit       func(n *identity.NewClient)
		wantFields []string // nil: accepted
	}{
		{"a confidential machine client is accepted", func(n *identity.NewClient) {}, nil},
		{"an empty name is refused", func(n *identity.NewClient) { n.Name = "" }, []string{"name"}},
		{"a blank name is refused", func(n *identity.NewClient) { n.Name = " \t " }, []string{"name"}},
		{"a name of 200 multi-byte characters is accepted", func(n *identity.NewClient) { n.Name = strings.Repeat("é", 200) }, nil},
		{"a name of 201 characters is refused", func(n *identity.NewClient) { n.Name = strings.Repeat("a", 201) }, []string{"name"}},
		{"a name with a newline is refused", func(n *identity.NewClient) { n.Name = "evil\nname" }, []string{"name"}},
		{"a name with an escape character is refused", func(n *identity.NewClient) { n.Name = "evil\x1b[31m" }, []string{"name"}},
		{"a name that is not UTF-8 is refused", func(n *identity.NewClient) { n.Name = "bad \xff" }, []string{"name"}},
		{"a client without grants is refused", func(n *identity.NewClient) { n.Grants = nil }, []string{"grants"}},
		{"an unknown grant is refused", func(n *identity.NewClient) { n.Grants = []string{"authorization_code"} }, []string{"grants"}},
		{"grant names are case-sensitive", func(n *identity.NewClient) { n.Grants = []string{"Password"} }, []string{"grants"}},
		{"a grant listed twice is refused", func(n *identity.NewClient) { n.Grants = []string{"password", "refresh_token", "password"} }, []string{"grants"}},
		{"every known grant is accepted", func(n *identity.NewClient) {
			n.Grants = []string{identity.GrantClientCredentials, identity.GrantPassword, identity.GrantRefreshToken, identity.GrantMFA}
		}, nil},
		{"a public client may hold password and refresh_token", func(n *identity.NewClient) { *n = app() }, nil},
		{"a public client cannot hold client_credentials", func(n *identity.NewClient) { n.Public = true }, []string{"grants"}},
		{"no scopes at all are accepted", func(n *identity.NewClient) { n.Scopes = nil }, nil},
		{"scopes using every allowed character class are accepted", func(n *identity.NewClient) { n.Scopes = []string{"a:b/c.d-e_f", "!#[]~", "https://api.example/x?y=1"} }, nil},
		{"an empty scope is refused", func(n *identity.NewClient) { n.Scopes = []string{""} }, []string{"scopes"}},
		{"a scope with a space is refused", func(n *identity.NewClient) { n.Scopes = []string{"results:read results:write"} }, []string{"scopes"}},
		{"a scope with a double quote is refused", func(n *identity.NewClient) { n.Scopes = []string{`say"hi"`} }, []string{"scopes"}},
		{"a scope with a backslash is refused", func(n *identity.NewClient) { n.Scopes = []string{`a\b`} }, []string{"scopes"}},
		{"a non-ASCII scope is refused", func(n *identity.NewClient) { n.Scopes = []string{"café"} }, []string{"scopes"}},
		{"a scope listed twice is refused", func(n *identity.NewClient) { n.Scopes = []string{"a", "b", "a"} }, []string{"scopes"}},
		{"an access TTL of exactly 24 hours is accepted", func(n *identity.NewClient) { n.AccessTTL = 24 * time.Hour }, nil},
		{"an access TTL over 24 hours is refused", func(n *identity.NewClient) { n.AccessTTL = 24*time.Hour + time.Second }, []string{"access_ttl"}},
		{"a negative access TTL is refused", func(n *identity.NewClient) { n.AccessTTL = -time.Minute }, []string{"access_ttl"}},
		{"an access TTL with a fraction of a second is refused", func(n *identity.NewClient) { n.AccessTTL = 1500 * time.Millisecond }, []string{"access_ttl"}},
		{"a refresh TTL of a year is accepted", func(n *identity.NewClient) { n.RefreshTTL = 8760 * time.Hour }, nil},
		{"a refresh TTL over a year is refused", func(n *identity.NewClient) { n.RefreshTTL = 8761 * time.Hour }, []string{"refresh_ttl"}},
		{"a negative refresh TTL is refused", func(n *identity.NewClient) { n.RefreshTTL = -1 }, []string{"refresh_ttl"}},
		{"an existing organization is accepted", func(n *identity.NewClient) { n.OrgID = org }, nil},
		{"an existing organization written in upper case is accepted", func(n *identity.NewClient) { n.OrgID = strings.ToUpper(org) }, nil},
		{"an org_id that is not a UUID is refused", func(n *identity.NewClient) { n.OrgID = "acme" }, []string{"org_id"}},
		{"an org_id in braces is refused", func(n *identity.NewClient) { n.OrgID = "{" + org + "}" }, []string{"org_id"}},
		{"an org_id naming no organization is refused", func(n *identity.NewClient) { n.OrgID = uuid.Must(uuid.NewV7()).String() }, []string{"org_id"}},
		{"every broken rule is reported at once", func(n *identity.NewClient) {
			*n = identity.NewClient{Public: true, Grants: []string{"client_credentials", "nope"}, Scopes: []string{"a b"}, AccessTTL: -1, RefreshTTL: 1e18, OrgID: "x"}
		}, []string{"name", "grants", "grants", "scopes", "access_ttl", "refresh_ttl", "org_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := machine()
			tt.edit(&n)
			c, _, err := e.svc.CreateClient(t.Context(), n)
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if _, err := e.svc.Client(t.Context(), c.ID); err != nil {
					t.Errorf("accepted client not stored: %v", err)
				}
				return
			}
			var v *identity.ValidationError
			if !errors.Is(err, identity.ErrInvalid) || !errors.As(err, &v) {
				t.Fatalf("got %v, want a validation error", err)
			}
			var fields []string
			for _, f := range v.Fields {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			if !slices.Equal(fields, tt.wantFields) {
				t.Errorf("fields %v (%v), want %v", fields, err, tt.wantFields)
			}
		})
	}
}

func TestCreateClient(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	n := machine()
	n.OrgID = strings.ToUpper(org)
	n.AccessTTL, n.RefreshTTL = 5*time.Minute, 48*time.Hour
	c, secret, err := e.svc.CreateClient(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the id is a UUIDv7", func(t *testing.T) {
		id, err := uuid.Parse(c.ID)
		if err != nil || id.Version() != 7 || id.String() != c.ID {
			t.Errorf("id %q: version %d, %v", c.ID, id.Version(), err)
		}
	})
	t.Run("the secret is 256 random bits in base64url without padding", func(t *testing.T) {
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if len(secret) != 43 || err != nil || len(raw) != 32 {
			t.Errorf("secret %q: %d characters, %d bytes, %v", secret, len(secret), len(raw), err)
		}
		_, other := e.create(t, machine())
		if other == secret {
			t.Error("two clients got the same secret")
		}
	})
	t.Run("the stored client is what was asked for, without its hash", func(t *testing.T) {
		want := identity.Client{
			ID: c.ID, Name: n.Name, Grants: n.Grants, Scopes: n.Scopes, OrgID: org,
			AccessTTL: n.AccessTTL, RefreshTTL: n.RefreshTTL,
			CreatedAt: now.Truncate(time.Microsecond), UpdatedAt: now.Truncate(time.Microsecond),
		}
		got, err := e.svc.Client(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]identity.Client{"returned": c, "read back": got} {
			if !reflect.DeepEqual(c, want) {
				t.Errorf("%s client:\n got %+v\nwant %+v", name, c, want)
			}
		}
		all, err := e.svc.Clients(t.Context())
		if err != nil || len(all) == 0 {
			t.Fatal(all, err)
		}
		for _, c := range all {
			if c.SecretHash != nil {
				t.Errorf("Clients exposes the secret hash of %s", c.ID)
			}
		}
	})
	t.Run("a public client gets no secret", func(t *testing.T) {
		c, secret := e.create(t, app())
		if secret != "" || !c.Public {
			t.Errorf("public client: secret %q, public %v", secret, c.Public)
		}
	})
	t.Run("the database holds no plaintext secret", func(t *testing.T) {
		requireNoPlaintext(t, e.db, secret)
		rotated, err := e.svc.RotateClientSecret(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		requireNoPlaintext(t, e.db, rotated)
	})
}

// requireNoPlaintext scans every column of every client row for the secret, as text and as the
// random bytes it encodes.
func requireNoPlaintext(t *testing.T, db *sqldb.DB, secret string) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM clients")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	pattern := regexp.MustCompile(regexp.QuoteMeta(secret))
	n := 0
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			text := fmt.Sprint(v)
			if b, ok := v.([]byte); ok {
				text = string(b)
			}
			if pattern.MatchString(text) || strings.Contains(text, string(raw)) {
				t.Errorf("column %s holds the plaintext secret", cols[i])
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no client rows scanned")
	}
}

func TestAuthenticateClient(t *testing.T) {
	e := newEnv(t)
	conf, secret := e.create(t, machine())
	_, otherSecret := e.create(t, machine())
	pub, _ := e.create(t, app())
	gone, goneSecret := e.create(t, machine())
	if err := e.svc.DeleteClient(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	flipped := []byte(secret)
	flipped[20] ^= 1

	tests := []struct {
		name   string
		id     string
		secret string
		want   string // the client id that authenticates, "" for failure
	}{
		{"the right secret authenticates a confidential client", conf.ID, secret, conf.ID},
		{"a confidential client without a secret fails", conf.ID, "", ""},
		{"another client's secret fails", conf.ID, otherSecret, ""},
		{"a secret with one bit changed fails", conf.ID, string(flipped), ""},
		{"a prefix of the secret fails", conf.ID, secret[:42], ""},
		{"the secret with a character appended fails", conf.ID, secret + "A", ""},
		{"the secret in standard base64 fails", conf.ID, strings.NewReplacer("-", "+", "_", "/").Replace(secret) + "=", ""},
		{"a secret with + and %3A fails", conf.ID, "a+b%3Ac:d", ""},
		{"a secret with a NUL byte fails", conf.ID, "\x00" + secret, ""},
		{"a secret that is not UTF-8 fails", conf.ID, "\xff\xfe", ""},
		{"a secret of 64 KiB fails", conf.ID, strings.Repeat("x", 64<<10), ""},
		{"a public client authenticates without a secret", pub.ID, "", pub.ID},
		{"a public client that sends a secret fails", pub.ID, "anything", ""},
		{"an unknown client fails", uuid.Must(uuid.NewV7()).String(), secret, ""},
		{"a deleted client fails", gone.ID, goneSecret, ""},
		{"an empty id fails", "", secret, ""},
		{"an id that is not a UUID fails", "reports-exporter", secret, ""},
		{"an id written in upper case fails", strings.ToUpper(conf.ID), secret, ""},
		{"an id with a NUL byte fails", conf.ID + "\x00", secret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.svc.AuthenticateClient(t.Context(), tt.id, tt.secret)
			if tt.want == "" {
				if !errors.Is(err, identity.ErrInvalidClient) {
					t.Errorf("got %v, want ErrInvalidClient", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if c.ID != tt.want || c.SecretHash != nil {
				t.Errorf("got client %s with hash %x, want %s without hash", c.ID, c.SecretHash, tt.want)
			}
		})
	}
}

func TestRotateClientSecret(t *testing.T) {
	e := newEnv(t)
	c, old := e.create(t, machine())
	later := now.Add(time.Hour)
	svc := identity.NewService(e.store, identity.Options{Pepper: pepper, Now: func() time.Time { return later }, Password: cheap})

	secret, err := svc.RotateClientSecret(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the new secret authenticates", func(t *testing.T) {
		if _, err := svc.AuthenticateClient(t.Context(), c.ID, secret); err != nil {
			t.Error(err)
		}
	})
	t.Run("the old secret stops working", func(t *testing.T) {
		if _, err := svc.AuthenticateClient(t.Context(), c.ID, old); !errors.Is(err, identity.ErrInvalidClient) {
			t.Errorf("got %v, want ErrInvalidClient", err)
		}
	})
	t.Run("the update time moves and nothing else changes", func(t *testing.T) {
		got, err := svc.Client(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := c
		want.UpdatedAt = later.Truncate(time.Microsecond)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("a public client has no secret to rotate", func(t *testing.T) {
		pub, _ := e.create(t, app())
		if _, err := svc.RotateClientSecret(t.Context(), pub.ID); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("got %v, want ErrInvalid", err)
		}
		if _, err := svc.AuthenticateClient(t.Context(), pub.ID, ""); err != nil {
			t.Errorf("the public client changed: %v", err)
		}
	})
	t.Run("an unknown client is not found", func(t *testing.T) {
		for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "nope"} {
			if _, err := svc.RotateClientSecret(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("%q: got %v, want ErrNotFound", id, err)
			}
		}
	})
}

func TestUnknownClientsAreNotFound(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "", "nope", "\x00"} {
		if _, err := e.svc.Client(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("Client(%q): got %v, want ErrNotFound", id, err)
		}
		if err := e.svc.DeleteClient(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("DeleteClient(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

// downStore fails as an unreachable database does.
type downStore struct{ identity.Store }

func (downStore) Client(context.Context, string) (identity.Client, error) {
	return identity.Client{}, fmt.Errorf("%w: connection refused", identity.ErrUnavailable)
}

func TestAuthenticateClientWithStoreDown(t *testing.T) {
	svc := identity.NewService(downStore{}, identity.Options{Pepper: pepper, Password: cheap})
	_, err := svc.AuthenticateClient(t.Context(), uuid.Must(uuid.NewV7()).String(), "secret")
	if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrInvalidClient) {
		t.Errorf("got %v, want ErrUnavailable and not ErrInvalidClient", err)
	}
}

func TestNewServiceRefusesAShortPepper(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	identity.NewService(downStore{}, identity.Options{Pepper: pepper[1:], Password: cheap})
}

// BenchmarkAuthenticateClient measures a token request's client check on SQLite. The wrong-secret
// cases differ only in how long a prefix they share with the real secret: their times should match.
func BenchmarkAuthenticateClient(b *testing.B) {
	e := newEnv(b)
	c, secret, err := e.svc.CreateClient(b.Context(), machine())
	if err != nil {
		b.Fatal(err)
	}
	other := func(keep int) string {
		s := []byte(secret)
		for i := keep; i < len(s); i++ {
			s[i] = 'A' + (s[i]+1)%26
		}
		return string(s)
	}
	cases := []struct {
		name, id, secret string
		ok               bool
	}{
		{"right secret", c.ID, secret, true},
		{"wrong secret sharing no prefix", c.ID, other(0), false},
		{"wrong secret sharing 42 of 43 characters", c.ID, other(42), false},
		{"unknown client", uuid.Must(uuid.NewV7()).String(), secret, false},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_, err := e.svc.AuthenticateClient(b.Context(), bc.id, bc.secret)
				if (err == nil) != bc.ok {
					b.Fatal(err)
				}
			}
		})
	}
}
