package identitytest

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

func newField(org, name, typ string, options ...string) identity.Field {
	return identity.Field{ID: uuid.Must(uuid.NewV7()).String(), OrgID: org, Name: name, Type: typ,
		Required: true, Options: append([]string{}, options...), CreatedAt: at(0), UpdatedAt: at(time.Second)}
}

func createField(t *testing.T, s identity.Store, f identity.Field) identity.Field {
	t.Helper()
	if err := s.CreateField(t.Context(), f); err != nil {
		t.Fatalf("CreateField: %v", err)
	}
	return f
}

func testFieldRoundTrip(t *testing.T, s identity.Store) {
	org := createOrganization(t, s).ID
	f := createField(t, s, newField(org, "Cargo · função", identity.FieldChoice, "Analista", "Gerente"))
	g := createField(t, s, newField(org, "Admissão", identity.FieldDate))
	got, err := s.Field(t.Context(), org, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "field", got, f)
	list, err := s.Fields(t.Context(), org)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "fields", list, []identity.Field{f, g})
}

func testFieldTenant(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s).ID, createOrganization(t, s).ID
	f := createField(t, s, newField(a, "Setor", identity.FieldText))
	if _, err := s.Field(t.Context(), b, f.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("another organization's field: got %v, want ErrNotFound", err)
	}
	if list, err := s.Fields(t.Context(), b); err != nil || len(list) != 0 {
		t.Errorf("another organization's fields: got %v, %v", list, err)
	}
	if _, err := s.UpdateField(t.Context(), b, f.ID, func(f identity.Field) (identity.Field, error) { return f, nil }); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("updating another organization's field: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteField(t.Context(), b, f.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("deleting another organization's field: got %v, want ErrNotFound", err)
	}
	if _, err := s.Field(t.Context(), a, f.ID); err != nil {
		t.Errorf("the field is gone after another organization's attempts: %v", err)
	}
}

func testFieldNameUnique(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s).ID, createOrganization(t, s).ID
	createField(t, s, newField(a, "Setor", identity.FieldText))
	if err := s.CreateField(t.Context(), newField(a, "Setor", identity.FieldNumber)); !errors.Is(err, identity.ErrExists) {
		t.Errorf("a second field of the same name: got %v, want ErrExists", err)
	}
	createField(t, s, newField(b, "Setor", identity.FieldText)) // another organization may
}

func testFieldUpdate(t *testing.T, s identity.Store) {
	org := createOrganization(t, s).ID
	f := createField(t, s, newField(org, "Nível", identity.FieldChoice, "1"))
	want := f
	want.Name, want.Required, want.Options, want.UpdatedAt = "Nível atual", false, []string{"1", "2"}, at(time.Hour)
	got, err := s.UpdateField(t.Context(), org, f.ID, func(old identity.Field) (identity.Field, error) {
		sameRecord(t, "field", old, f)
		c := want
		c.Type, c.OrgID, c.CreatedAt = identity.FieldText, uuid.NewString(), at(-time.Hour) // ignored
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "field", got, want)
	got, _ = s.Field(t.Context(), org, f.ID)
	sameRecord(t, "field", got, want)
}

func testDeleteFieldRemovesValues(t *testing.T, s identity.Store) {
	org := createOrganization(t, s).ID
	f := createField(t, s, newField(org, "Setor", identity.FieldText))
	g := createField(t, s, newField(org, "Idade", identity.FieldNumber))
	u := newUser(org)
	u.Fields = map[string]json.RawMessage{f.ID: json.RawMessage(`"RH"`), g.ID: json.RawMessage(`42`)}
	createUser(t, s, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	if err := s.DeleteField(t.Context(), org, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Field(t.Context(), org, f.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("deleted field: got %v", err)
	}
	u.Fields = map[string]json.RawMessage{g.ID: json.RawMessage(`42`)}
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	if err := s.DeleteField(t.Context(), org, f.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("deleting twice: got %v, want ErrNotFound", err)
	}
}

func testUserFieldValues(t *testing.T, s identity.Store) {
	org := createOrganization(t, s).ID
	f := createField(t, s, newField(org, "Setor", identity.FieldText))
	g := createField(t, s, newField(org, "Ativo", identity.FieldBoolean))
	u := newUser(org)
	u.Fields = map[string]json.RawMessage{f.ID: json.RawMessage(`"Pesquisa \"aplicada\" ☂"`)}
	createUser(t, s, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)

	want := u
	want.Fields = map[string]json.RawMessage{g.ID: json.RawMessage(`false`)}
	got, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		old.Fields = want.Fields
		return old, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "user", got, want)
	sameRecord(t, "user", getUser(t, s, u.ID), want)
	requireUserByEmail(t, s, u.Email, want)

	// A value of a field that does not exist is refused, and nothing is written.
	_, err = s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		old.Name = "Changed"
		old.Fields = map[string]json.RawMessage{uuid.NewString(): json.RawMessage(`1`)}
		return old, nil
	})
	if err == nil {
		t.Error("a value of an unknown field was stored")
	}
	sameRecord(t, "user", getUser(t, s, u.ID), want)
}

// listUsers pages through Users with q and returns the IDs.
func listUsers(t *testing.T, s identity.Store, q identity.UserQuery, limit int) []string {
	t.Helper()
	var ids []string
	q.Limit = limit
	for range 1000 {
		page, err := s.Users(t.Context(), q)
		if err != nil {
			t.Fatalf("Users: %v", err)
		}
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		if len(page) < limit {
			return ids
		}
		q.After = page[len(page)-1].ID
	}
	t.Fatal("the list does not end")
	return nil
}

func testUserQueries(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s).ID, createOrganization(t, s).ID
	sector := createField(t, s, newField(a, "Setor", identity.FieldText))
	mk := func(org, email, name string, active bool, perms []string, fields map[string]json.RawMessage) string {
		u := newUser(org)
		u.Email, u.Name, u.Active, u.Permissions = email, name, active, perms
		if fields != nil {
			u.Fields = fields
		}
		createUser(t, s, u)
		return u.ID
	}
	rh := map[string]json.RawMessage{sector.ID: json.RawMessage(`"RH"`)}
	ana := mk(a, "ana@a.test", "Ana Érica", true, []string{identity.PermOrgAdmin}, rh)
	bia := mk(a, "bia@a.test", "BIA ÉRICA", false, nil, rh)
	caio := mk(a, "caio_100%@a.test", "Caio", true, []string{identity.PermUsersRead}, nil)
	dani := mk(b, "dani@b.test", "Dani Érica", true, []string{identity.PermOrgAdmin}, nil)
	staff := mk("", "eva@staff.test", "Eva", true, []string{identity.PermSupport}, nil)
	yes, no := true, false
	for _, tc := range []struct {
		name string
		q    identity.UserQuery
		want []string
	}{
		{"one organization", identity.UserQuery{OrgID: a}, []string{ana, bia, caio}},
		{"every organization", identity.UserQuery{}, []string{ana, bia, caio, dani, staff}},
		{"folded text in names of any case", identity.UserQuery{Query: identity.NormalizeEmail("érica")}, []string{ana, bia, dani}},
		{"text in e-mails", identity.UserQuery{Query: "a.test"}, []string{ana, bia, caio}},
		{"LIKE wildcards match only themselves", identity.UserQuery{Query: "_100%"}, []string{caio}},
		{"a wildcard alone matches nothing else", identity.UserQuery{Query: "%"}, []string{caio}},
		{"active", identity.UserQuery{OrgID: a, Active: &yes}, []string{ana, caio}},
		{"inactive", identity.UserQuery{Active: &no}, []string{bia}},
		{"permission", identity.UserQuery{Permission: identity.PermOrgAdmin}, []string{ana, dani}},
		{"field value", identity.UserQuery{OrgID: a, Fields: map[string]string{sector.ID: `"RH"`}}, []string{ana, bia}},
		{"field value and activity", identity.UserQuery{OrgID: a, Active: &yes, Fields: map[string]string{sector.ID: `"RH"`}}, []string{ana}},
		{"another field value", identity.UserQuery{OrgID: a, Fields: map[string]string{sector.ID: `"TI"`}}, nil},
		{"organization and text", identity.UserQuery{OrgID: b, Query: "érica"}, []string{dani}},
	} {
		for _, limit := range []int{1, 2, 50} {
			if got := listUsers(t, s, tc.q, limit); !slices.Equal(got, tc.want) {
				t.Errorf("%s (pages of %d): got %v, want %v", tc.name, limit, got, tc.want)
			}
		}
	}
}

func testLastAdminCount(t *testing.T, s identity.Store) {
	org := createOrganization(t, s).ID
	admin := func(active bool) identity.User {
		u := newUser(org)
		u.Permissions, u.Active = []string{identity.PermUsersRead, identity.PermOrgAdmin}, active
		createUser(t, s, u)
		return u
	}
	a, b := admin(true), admin(true)
	admin(false) // an inactive administrator does not count
	other := newUser(createOrganization(t, s).ID)
	other.Permissions = []string{identity.PermOrgAdmin}
	createUser(t, s, other) // nor does another organization's
	plain := newUser(org)
	createUser(t, s, plain)
	for _, tc := range []struct {
		user identity.User
		want int
	}{{a, 1}, {b, 1}, {plain, 2}} {
		_, err := s.UpdateOrganizationUser(t.Context(), tc.user.ID, func(u identity.User, n int) (identity.User, error) {
			if n != tc.want {
				t.Errorf("%s: %d other administrators, want %d", tc.user.ID, n, tc.want)
			}
			return u, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// testConcurrentDemotions: two administrators each removing the other's org:admin when another
// remains; one of them must be refused, never both succeed.
func testConcurrentDemotions(t *testing.T, s identity.Store) {
	for range 5 {
		org := createOrganization(t, s).ID
		var admins []identity.User
		for range 2 {
			u := newUser(org)
			u.Permissions = []string{identity.PermOrgAdmin}
			createUser(t, s, u)
			admins = append(admins, u)
		}
		last := errors.New("last administrator")
		var ok atomic.Int32
		var wg sync.WaitGroup
		for _, u := range admins {
			wg.Go(func() {
				_, err := s.UpdateOrganizationUser(t.Context(), u.ID, func(u identity.User, others int) (identity.User, error) {
					if others == 0 {
						return u, last
					}
					u.Permissions = []string{}
					return u, nil
				})
				switch {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, last):
					t.Errorf("demotion: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d of 2 concurrent demotions succeeded, want exactly 1", ok.Load())
		}
	}
}

func testOrganizationUser(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s).ID, createOrganization(t, s).ID
	u := newUser(a)
	createUser(t, s, u)
	got, err := s.OrganizationUser(t.Context(), a, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "user", got, u)
	if _, err := s.OrganizationUser(t.Context(), b, u.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("through another organization: %v, want ErrNotFound", err)
	}
	staff := newUser("")
	createUser(t, s, staff)
	if _, err := s.OrganizationUser(t.Context(), a, staff.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("a platform user through an organization: %v, want ErrNotFound", err)
	}
}
