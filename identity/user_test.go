package identity_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

// fieldsOf returns the fields a validation error names, or fails the test if err is not one.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
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
	return fields
}

func TestOrganizations(t *testing.T) {
	e := newEnv(t)
	o, err := e.svc.CreateOrganization(t.Context(), "Acme Ltd")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a new organization is active and reads back", func(t *testing.T) {
		id, err := uuid.Parse(o.ID)
		if err != nil || id.Version() != 7 {
			t.Errorf("id %q is not a UUIDv7: %v", o.ID, err)
		}
		ts := now.Truncate(time.Microsecond)
		want := identity.Organization{ID: o.ID, Name: "Acme Ltd", Active: true, CreatedAt: ts, UpdatedAt: ts}
		got, err := e.svc.Organization(t.Context(), o.ID)
		if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(o, want) {
			t.Errorf("got %+v and %+v (%v), want %+v", o, got, err, want)
		}
	})
	t.Run("a deactivated organization stays readable, inactive", func(t *testing.T) {
		later := now.Add(time.Hour)
		svc := identity.NewService(e.store, identity.Options{Pepper: pepper, Password: cheap, Now: func() time.Time { return later }})
		if err := svc.SetOrganizationActive(t.Context(), o.ID, false); err != nil {
			t.Fatal(err)
		}
		got, err := svc.Organization(t.Context(), o.ID)
		if err != nil || got.Active || !got.UpdatedAt.Equal(later.Truncate(time.Microsecond)) {
			t.Errorf("got %+v, %v; want inactive, updated at %v", got, err, later)
		}
		if err := svc.SetOrganizationActive(t.Context(), o.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ := svc.Organization(t.Context(), o.ID); !got.Active {
			t.Error("reactivation did not stick")
		}
	})
	t.Run("names follow the rules of every display name", func(t *testing.T) {
		for _, name := range []string{"", "  ", "Acme\u202e", "Acme\r\nlevel=info msg=forged", strings.Repeat("a", 201), "bad \xff"} {
			_, err := e.svc.CreateOrganization(t.Context(), name)
			if got := fieldsOf(t, err); !slices.Equal(got, []string{"name"}) {
				t.Errorf("%q: fields %v, want [name]", name, got)
			}
		}
	})
	t.Run("a rename validates the name and is read back through the cache", func(t *testing.T) {
		if _, err := e.svc.Organization(t.Context(), o.ID); err != nil { // cached
			t.Fatal(err)
		}
		if _, err := e.svc.RenameOrganization(t.Context(), o.ID, " "); !slices.Equal(fieldsOf(t, err), []string{"name"}) {
			t.Errorf("blank name: got %v", err)
		}
		got, err := e.svc.RenameOrganization(t.Context(), o.ID, "Acme SA")
		if err != nil || got.Name != "Acme SA" {
			t.Fatalf("got %+v, %v", got, err)
		}
		if got, _ := e.svc.Organization(t.Context(), o.ID); got.Name != "Acme SA" {
			t.Errorf("read back %q", got.Name)
		}
	})
	t.Run("lists page by cursor and refuse bad pages", func(t *testing.T) {
		for range 4 {
			if _, err := e.svc.CreateOrganization(t.Context(), "More"); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		cursor := ""
		for pages := 0; ; pages++ {
			list, next, err := e.svc.ListOrganizations(t.Context(), identity.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range list {
				ids = append(ids, x.ID)
			}
			if next == "" {
				break
			}
			if pages > 5 {
				t.Fatal("too many pages")
			}
			cursor = next
		}
		if len(ids) != 5 || !slices.IsSorted(ids) || ids[0] != o.ID {
			t.Errorf("listed %v", ids)
		}
		for _, p := range []identity.Page{{Cursor: "!!"}, {Cursor: "YWNtZQ"}, {Limit: -1}, {Limit: 501}} {
			_, _, err := e.svc.ListOrganizations(t.Context(), p)
			if got := fieldsOf(t, err); len(got) != 1 {
				t.Errorf("%+v: fields %v", p, got)
			}
		}
	})
	t.Run("an unknown organization is not found", func(t *testing.T) {
		for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "", "acme", strings.ToUpper(o.ID)} {
			if _, err := e.svc.Organization(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("Organization(%q): got %v, want ErrNotFound", id, err)
			}
			if err := e.svc.SetOrganizationActive(t.Context(), id, false); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("SetOrganizationActive(%q): got %v, want ErrNotFound", id, err)
			}
			if _, err := e.svc.RenameOrganization(t.Context(), id, "New"); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("RenameOrganization(%q): got %v, want ErrNotFound", id, err)
			}
		}
	})
}

func staff() identity.NewUser {
	return identity.NewUser{
		Email: "Ana.Silva@Example.test", Name: "Ana Silva", Password: "a long enough passphrase",
		Permissions: []string{identity.PermPlatformAdmin}, Active: true, EmailVerified: true,
	}
}

func TestCreateUserValidation(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	inactive, err := e.svc.CreateOrganization(t.Context(), "Closed")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetOrganizationActive(t.Context(), inactive.ID, false); err != nil {
		t.Fatal(err)
	}
	member := func(n *identity.NewUser) { n.OrgID, n.Permissions = org, []string{identity.PermUsersRead} }

	tests := []struct {
		name       string
		edit       func(n *identity.NewUser)
		wantFields []string // nil: accepted
	}{
		{"a platform administrator is accepted", func(n *identity.NewUser) {}, nil},
		{"a member of an active organization is accepted", member, nil},
		{"an organization id in upper case is accepted", func(n *identity.NewUser) { member(n); n.OrgID = strings.ToUpper(org) }, nil},
		{"a user without a password is accepted", func(n *identity.NewUser) { n.Password = "" }, nil},
		{"a user without permissions is accepted", func(n *identity.NewUser) { n.Permissions = nil }, nil},
		{"an e-mail with spaces around is accepted", func(n *identity.NewUser) { n.Email = "  spaced@example.test\t" }, nil},
		{"an internationalised e-mail is accepted", func(n *identity.NewUser) { n.Email = "josé@exemplo.test" }, nil},
		{"an e-mail of 254 bytes is accepted", func(n *identity.NewUser) {
			n.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 184) + ".test"
		}, nil},
		{"an e-mail of 255 bytes is refused", func(n *identity.NewUser) {
			n.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".test"
		}, []string{"email"}},
		{"an empty e-mail is refused", func(n *identity.NewUser) { n.Email = "" }, []string{"email"}},
		{"an e-mail without @ is refused", func(n *identity.NewUser) { n.Email = "ana.example.test" }, []string{"email"}},
		{"an e-mail with a display name is refused", func(n *identity.NewUser) { n.Email = "Ana <ana@example.test>" }, []string{"email"}},
		{"an e-mail with a comment is refused", func(n *identity.NewUser) { n.Email = "ana@example.test (Ana)" }, []string{"email"}},
		{"two e-mails are refused", func(n *identity.NewUser) { n.Email = "ana@example.test, bob@example.test" }, []string{"email"}},
		{"a quoted local part is refused", func(n *identity.NewUser) { n.Email = `"ana silva"@example.test` }, []string{"email"}},
		{"a domain literal is refused", func(n *identity.NewUser) { n.Email = "ana@[192.0.2.1]" }, []string{"email"}},
		{"an e-mail with CR LF is refused", func(n *identity.NewUser) { n.Email = "ana@example.test\r\nBcc: x@example.test" }, []string{"email"}},
		{"an e-mail with a NUL byte is refused", func(n *identity.NewUser) { n.Email = "ana\x00@example.test" }, []string{"email"}},
		{"an e-mail with a right-to-left override is refused", func(n *identity.NewUser) { n.Email = "ana\u202e@example.test" }, []string{"email"}},
		{"an e-mail with a bidi isolate is refused", func(n *identity.NewUser) { n.Email = "ana\u2066@example.test" }, []string{"email"}},
		{"an e-mail that is not UTF-8 is refused", func(n *identity.NewUser) { n.Email = "ana\xff@example.test" }, []string{"email"}},
		{"a blank name is refused", func(n *identity.NewUser) { n.Name = " " }, []string{"name"}},
		{"a name of 200 characters is accepted", func(n *identity.NewUser) { n.Name = strings.Repeat("ã", 200) }, nil},
		{"a name of 201 characters is refused", func(n *identity.NewUser) { n.Name = strings.Repeat("a", 201) }, []string{"name"}},
		{"a name with a right-to-left override is refused", func(n *identity.NewUser) { n.Name = "admin\u202e" }, []string{"name"}},
		{"a name with a bidi isolate is refused", func(n *identity.NewUser) { n.Name = "\u2067admin\u2069" }, []string{"name"}},
		{"a name that forges a log line is refused", func(n *identity.NewUser) { n.Name = "bob\r\nlevel=info msg=admin-login" }, []string{"name"}},
		{"a name with a line separator is refused", func(n *identity.NewUser) { n.Name = "bob\u2028eve" }, []string{"name"}},
		{"an org_id that is not a UUID is refused", func(n *identity.NewUser) { n.OrgID = "acme" }, []string{"org_id"}},
		{"an org_id naming no organization is refused", func(n *identity.NewUser) { n.OrgID = uuid.Must(uuid.NewV7()).String() }, []string{"org_id"}},
		{"a deactivated organization is refused", func(n *identity.NewUser) { n.OrgID = inactive.ID }, []string{"org_id"}},
		{"an unknown permission is refused", func(n *identity.NewUser) { n.Permissions = []string{"root"} }, []string{"permissions"}},
		{"a permission listed twice is refused", func(n *identity.NewUser) { n.Permissions = []string{"support", "support"} }, []string{"permissions"}},
		{"an organization permission without an organization is refused", func(n *identity.NewUser) { n.Permissions = []string{identity.PermUsersRead} }, []string{"permissions"}},
		{"every organization permission is accepted in an organization", func(n *identity.NewUser) {
			n.OrgID = org
			n.Permissions = []string{"org:admin", "users:read", "users:write", "groups:read", "groups:write", "results:read", "results:write"}
		}, nil},
		{"a short password is refused", func(n *identity.NewUser) { n.Password = "short" }, []string{"password"}},
		{"a common password is refused", func(n *identity.NewUser) { n.Password = "password123" }, []string{"password"}},
		{"a password equal to the e-mail is refused", func(n *identity.NewUser) { n.Email, n.Password = "Ana.Silva@Example.test", "ana.silva@example.TEST" }, []string{"password"}},
		{"a password equal to the e-mail's local part is refused", func(n *identity.NewUser) { n.Email, n.Password = "ana.silva.1988@example.test", "Ana.Silva.1988" }, []string{"password"}},
		{"every broken rule is reported at once", func(n *identity.NewUser) {
			*n = identity.NewUser{OrgID: uuid.Must(uuid.NewV7()).String(), Email: "nope", Name: "", Password: "1234", Permissions: []string{"root"}}
		}, []string{"email", "name", "permissions", "password", "org_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := staff()
			n.Email = uuid.NewString() + "@example.test"
			tt.edit(&n)
			var u identity.User
			var err error
			hashes := e.countHashes(func() { u, err = e.svc.CreateUser(t.Context(), n) })
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if _, err := e.svc.User(t.Context(), u.ID); err != nil {
					t.Errorf("accepted user not stored: %v", err)
				}
				return
			}
			if got := fieldsOf(t, err); !slices.Equal(got, tt.wantFields) {
				t.Errorf("fields %v (%v), want %v", got, err, tt.wantFields)
			}
			if hashes != 0 {
				t.Errorf("a refused user cost %d password hashes, want 0", hashes)
			}
		})
	}
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	n := identity.NewUser{
		OrgID: strings.ToUpper(org), Email: "  Bia.Costa@Example.test ", Name: "Bia Costa",
		Password: "a long enough passphrase", Permissions: []string{identity.PermResultsRead, identity.PermUsersRead},
		Active: true,
	}
	u, err := e.svc.CreateUser(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the id is a UUIDv7", func(t *testing.T) {
		id, err := uuid.Parse(u.ID)
		if err != nil || id.Version() != 7 || id.String() != u.ID {
			t.Errorf("id %q: %v", u.ID, err)
		}
	})
	t.Run("the stored user is what was asked for, the e-mail trimmed, without the hash", func(t *testing.T) {
		ts := now.Truncate(time.Microsecond)
		want := identity.User{
			ID: u.ID, OrgID: org, Email: "Bia.Costa@Example.test", Name: "Bia Costa", Active: true,
			Permissions: n.Permissions, PasswordChangedAt: ts, CreatedAt: ts, UpdatedAt: ts,
			Fields: map[string]json.RawMessage{},
		}
		byID, err := e.svc.User(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		byEmail, err := e.svc.UserByEmail(t.Context(), "BIA.COSTA@example.TEST")
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]identity.User{"returned": u, "by id": byID, "by e-mail": byEmail} {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s user:\n got %+v\nwant %+v", name, got, want)
			}
		}
		stored, err := e.store.User(t.Context(), u.ID)
		if err != nil || !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
			t.Errorf("stored hash %q, %v", stored.PasswordHash, err)
		}
	})
	t.Run("JSON is snake_case and never holds the hash", func(t *testing.T) {
		stored, err := e.store.User(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(stored)
		if err != nil {
			t.Fatal(err)
		}
		var keys map[string]any
		if err := json.Unmarshal(b, &keys); err != nil {
			t.Fatal(err)
		}
		want := []string{"active", "created_at", "email", "email_verified", "fields", "id", "mfa_enabled", "name", "org_id",
			"password_changed_at", "password_expired", "permissions", "updated_at"}
		got := slices.Sorted(maps.Keys(keys))
		if !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
		if strings.Contains(string(b), "argon2") {
			t.Errorf("JSON holds the hash: %s", b)
		}
	})
	t.Run("an e-mail that normalises like a taken one is refused", func(t *testing.T) {
		other := staff()
		other.Email = "bia.costa@EXAMPLE.test"
		if _, err := e.svc.CreateUser(t.Context(), other); !errors.Is(err, identity.ErrExists) {
			t.Errorf("got %v, want ErrExists", err)
		}
	})
	t.Run("a user without a password has no change time and cannot log in", func(t *testing.T) {
		n := staff()
		n.Password = ""
		u, err := e.svc.CreateUser(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		if !u.PasswordChangedAt.IsZero() {
			t.Errorf("PasswordChangedAt %v, want zero", u.PasswordChangedAt)
		}
		if _, err := e.svc.Authenticate(t.Context(), n.Email, ""); err != identity.ErrInvalidCredentials {
			t.Errorf("got %v, want ErrInvalidCredentials", err)
		}
	})
}

func TestEmailNormalization(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"case does not matter", "Ana@Example.TEST", "ana@example.test", true},
		{"a ligature is its letters (U+FB00)", "ﬀ@x.test", "FF@x.test", true},
		{"fullwidth letters are their ASCII forms", "ａｎａ@x.test", "ana@x.test", true},
		{"a precomposed letter is its decomposed form", "jos\u00e9@x.test", "jose\u0301@x.test", true},
		{"the sharp s folds to ss", "straße@x.test", "STRASSE@x.test", true},
		{"surrounding spaces do not matter", " ana@x.test\t", "ana@x.test", true},
		{"different local parts differ", "ana@x.test", "ana1@x.test", false},
		{"a plus tag is kept", "ana+1@x.test", "ana@x.test", false},
		{"dots are kept", "a.na@x.test", "ana@x.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := identity.NormalizeEmail(tt.a) == identity.NormalizeEmail(tt.b); got != tt.same {
				t.Errorf("%q → %q, %q → %q: same %v, want %v", tt.a, identity.NormalizeEmail(tt.a), tt.b, identity.NormalizeEmail(tt.b), got, tt.same)
			}
		})
	}

	t.Run("normalising twice changes nothing", func(t *testing.T) {
		for _, tt := range tests {
			for _, s := range []string{tt.a, tt.b} {
				if n := identity.NormalizeEmail(s); identity.NormalizeEmail(n) != n {
					t.Errorf("%q is not stable", s)
				}
			}
		}
	})

	t.Run("registering ﬀ@x.test then FF@x.test conflicts, and both log in", func(t *testing.T) {
		e := newEnv(t)
		n := staff()
		n.Email = "ﬀ@x.test"
		u, err := e.svc.CreateUser(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "ﬀ@x.test" {
			t.Errorf("e-mail stored as %q, want it as given", u.Email)
		}
		n.Email = "FF@x.test"
		if _, err := e.svc.CreateUser(t.Context(), n); !errors.Is(err, identity.ErrExists) {
			t.Errorf("got %v, want ErrExists", err)
		}
		for _, email := range []string{"ﬀ@x.test", "FF@x.test", "ff@X.test"} {
			got, err := e.svc.Authenticate(t.Context(), email, n.Password)
			if err != nil || got.ID != u.ID {
				t.Errorf("login as %q: %v", email, err)
			}
		}
	})
}

func TestUserState(t *testing.T) {
	e := newEnv(t)
	u, err := e.svc.CreateUser(t.Context(), staff())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a deactivated user reads back inactive and cannot log in", func(t *testing.T) {
		if err := e.svc.SetUserActive(t.Context(), u.ID, false); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.svc.User(t.Context(), u.ID); got.Active {
			t.Error("still active")
		}
		if _, err := e.svc.Authenticate(t.Context(), u.Email, staff().Password); err != identity.ErrInvalidCredentials {
			t.Errorf("got %v, want ErrInvalidCredentials", err)
		}
		if err := e.svc.SetUserActive(t.Context(), u.ID, true); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Authenticate(t.Context(), u.Email, staff().Password); err != nil {
			t.Errorf("reactivated user: %v", err)
		}
	})
	t.Run("an unknown user is not found", func(t *testing.T) {
		for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "", "ana", strings.ToUpper(u.ID), u.ID + "\x00"} {
			if _, err := e.svc.User(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("User(%q): got %v", id, err)
			}
			if err := e.svc.SetUserActive(t.Context(), id, false); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("SetUserActive(%q): got %v", id, err)
			}
			if err := e.svc.ExpirePassword(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("ExpirePassword(%q): got %v", id, err)
			}
			if err := e.svc.SetPassword(t.Context(), id, "another long passphrase"); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("SetPassword(%q): got %v", id, err)
			}
		}
		for _, email := range []string{"nobody@example.test", "", "bad\x00@example.test", strings.Repeat("a", 300) + "@x.test"} {
			if _, err := e.svc.UserByEmail(t.Context(), email); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("UserByEmail(%q): got %v", email, err)
			}
		}
	})
}
