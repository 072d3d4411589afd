package identity_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

func TestFieldValidation(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	for _, tc := range []struct {
		name string
		in   identity.NewField
		want []string
	}{
		{"blank name", identity.NewField{Name: " ", Type: identity.FieldText}, []string{"name"}},
		{"unknown type", identity.NewField{Name: "x", Type: "colour"}, []string{"type"}},
		{"choice without options", identity.NewField{Name: "x", Type: identity.FieldChoice}, []string{"options"}},
		{"options on a text field", identity.NewField{Name: "x", Type: identity.FieldText, Options: []string{"a"}}, []string{"options"}},
		{"a repeated option", identity.NewField{Name: "x", Type: identity.FieldChoice, Options: []string{"a", "a"}}, []string{"options"}},
		{"a bidi override in an option", identity.NewField{Name: "x", Type: identity.FieldChoice, Options: []string{"a\u202e"}}, []string{"options"}},
		{"a control character in the name", identity.NewField{Name: "x\r\ny", Type: identity.FieldText}, []string{"name"}},
	} {
		_, err := e.svc.CreateField(t.Context(), org, tc.in)
		if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: invalid fields %v, want %v", tc.name, got, tc.want)
		}
	}
	f, err := e.svc.CreateField(t.Context(), org, identity.NewField{Name: "Nível", Type: identity.FieldChoice, Options: []string{"1", "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateField(t.Context(), org, identity.NewField{Name: "Nível", Type: identity.FieldText}); !errors.Is(err, identity.ErrExists) {
		t.Errorf("a second field named alike: %v, want ErrExists", err)
	}
	drop := []string{"2", "3"}
	if _, err := e.svc.UpdateField(t.Context(), org, f.ID, identity.FieldPatch{Options: &drop}); !slices.Equal(fieldsOf(t, err), []string{"options"}) {
		t.Errorf("removing a choice was accepted: %v", err)
	}
	more := []string{"1", "2", "3"}
	got, err := e.svc.UpdateField(t.Context(), org, f.ID, identity.FieldPatch{Options: &more})
	if err != nil || !slices.Equal(got.Options, more) || got.Type != identity.FieldChoice {
		t.Errorf("adding a choice: %+v, %v", got, err)
	}
	if _, err := e.svc.Field(t.Context(), e.createOrg(t), f.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("a field read through another organization: %v, want ErrNotFound", err)
	}
}

// fieldOrg is an organization with one field of each type, the text one required.
type fieldOrg struct {
	org                                 string
	text, number, date, boolean, choice string
}

func newFieldOrg(t *testing.T, e env) fieldOrg {
	t.Helper()
	fo := fieldOrg{org: e.createOrg(t)}
	for _, f := range []struct {
		dst *string
		in  identity.NewField
	}{
		{&fo.text, identity.NewField{Name: "Setor", Type: identity.FieldText, Required: true}},
		{&fo.number, identity.NewField{Name: "Idade", Type: identity.FieldNumber}},
		{&fo.date, identity.NewField{Name: "Admissão", Type: identity.FieldDate}},
		{&fo.boolean, identity.NewField{Name: "Gestor", Type: identity.FieldBoolean}},
		{&fo.choice, identity.NewField{Name: "Nível", Type: identity.FieldChoice, Options: []string{"Júnior", "Sênior"}}},
	} {
		created, err := e.svc.CreateField(t.Context(), fo.org, f.in)
		if err != nil {
			t.Fatal(err)
		}
		*f.dst = created.ID
	}
	return fo
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// uuidSuffix makes e-mails unique within a test.
func uuidSuffix() string { return uuid.NewString()[24:] }

func TestUserFieldValues(t *testing.T) {
	e := newEnv(t)
	fo := newFieldOrg(t, e)
	newUser := func(fields map[string]json.RawMessage) (identity.User, error) {
		return e.svc.CreateUser(t.Context(), identity.NewUser{OrgID: fo.org, Email: "u" + uuidSuffix() + "@x.test", Name: "U", Active: true, Fields: fields})
	}
	t.Run("values are checked by type and stored canonical", func(t *testing.T) {
		u, err := newUser(map[string]json.RawMessage{fo.text: raw(` "RH" `), fo.number: raw(`1.50e1`), fo.date: raw(`"2026-03-01"`),
			fo.boolean: raw(`true`), fo.choice: raw(`"Sênior"`)})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{fo.text: `"RH"`, fo.number: `15`, fo.date: `"2026-03-01"`, fo.boolean: `true`, fo.choice: `"Sênior"`}
		got, _ := e.svc.User(t.Context(), u.ID)
		for id, w := range want {
			if string(got.Fields[id]) != w || string(u.Fields[id]) != w {
				t.Errorf("field %s: stored %s, returned %s, want %s", id, got.Fields[id], u.Fields[id], w)
			}
		}
	})
	t.Run("wrong values name their field", func(t *testing.T) {
		_, err := newUser(map[string]json.RawMessage{fo.text: raw(`12`), fo.number: raw(`"12"`), fo.date: raw(`"01/03/2026"`),
			fo.boolean: raw(`"yes"`), fo.choice: raw(`"Pleno"`), "0190a0a0-0000-7000-8000-000000000000": raw(`1`)})
		got := fieldsOf(t, err)
		if len(got) != 6 {
			t.Errorf("invalid fields %v, want all six", got)
		}
	})
	t.Run("a required field is required on creation", func(t *testing.T) {
		_, err := newUser(map[string]json.RawMessage{fo.number: raw(`3`)})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"fields." + fo.text}) {
			t.Errorf("invalid fields %v", got)
		}
	})
	t.Run("an update changes only the values it names, and null removes one", func(t *testing.T) {
		u, err := newUser(map[string]json.RawMessage{fo.text: raw(`"RH"`), fo.number: raw(`3`)})
		if err != nil {
			t.Fatal(err)
		}
		u, err = e.svc.UpdateUser(t.Context(), u.ID, identity.UserPatch{Fields: map[string]json.RawMessage{fo.number: raw(`null`), fo.boolean: raw(`false`)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(u.Fields) != 2 || string(u.Fields[fo.text]) != `"RH"` || string(u.Fields[fo.boolean]) != `false` {
			t.Errorf("fields after the update: %s", u.Fields)
		}
		_, err = e.svc.UpdateUser(t.Context(), u.ID, identity.UserPatch{Fields: map[string]json.RawMessage{fo.text: raw(`null`)}})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"fields." + fo.text}) {
			t.Errorf("removing a required value: %v", got)
		}
	})
	t.Run("another organization's field is not one of this user's", func(t *testing.T) {
		other := newFieldOrg(t, e)
		_, err := newUser(map[string]json.RawMessage{fo.text: raw(`"RH"`), other.number: raw(`1`)})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"fields." + other.number}) {
			t.Errorf("invalid fields %v", got)
		}
	})
	t.Run("lists filter on field values given as text", func(t *testing.T) {
		a, _ := newUser(map[string]json.RawMessage{fo.text: raw(`"Filtro"`), fo.number: raw(`42`), fo.boolean: raw(`true`)})
		newUser(map[string]json.RawMessage{fo.text: raw(`"Filtro"`), fo.number: raw(`41`)})
		list, _, err := e.svc.ListUsers(t.Context(), identity.UserFilter{OrgID: fo.org,
			Fields: map[string]string{fo.text: "Filtro", fo.number: "42.0", fo.boolean: "true"}}, identity.Page{})
		if err != nil || len(list) != 1 || list[0].ID != a.ID {
			t.Errorf("got %v, %v; want only %s", list, err, a.ID)
		}
		_, _, err = e.svc.ListUsers(t.Context(), identity.UserFilter{OrgID: fo.org, Fields: map[string]string{fo.number: "many"}}, identity.Page{})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"field." + fo.number}) {
			t.Errorf("a filter of the wrong type: %v", got)
		}
	})
}

func TestUserAdministration(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	mk := func(perms ...string) identity.User {
		u, err := e.svc.CreateUser(t.Context(), identity.NewUser{OrgID: org, Email: "a" + uuidSuffix() + "@x.test", Name: "A", Active: true, Permissions: perms})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	admin, other := mk(identity.PermOrgAdmin), mk(identity.PermUsersRead)
	allow := func([]string) error { return nil }

	t.Run("the last administrator keeps org:admin and stays active", func(t *testing.T) {
		if _, err := e.svc.SetPermissions(t.Context(), admin.ID, []string{identity.PermUsersRead}, allow); !errors.Is(err, identity.ErrLastAdmin) {
			t.Errorf("demoting the last admin: %v", err)
		}
		if err := e.svc.DeactivateUser(t.Context(), admin.ID); !errors.Is(err, identity.ErrLastAdmin) {
			t.Errorf("deactivating the last admin: %v", err)
		}
	})
	t.Run("with a second administrator the first may go", func(t *testing.T) {
		before, err := e.svc.SetPermissions(t.Context(), other.ID, []string{identity.PermOrgAdmin}, allow)
		if err != nil || !slices.Equal(before, []string{identity.PermUsersRead}) {
			t.Fatalf("promoting: %v %v", before, err)
		}
		if err := e.svc.DeactivateUser(t.Context(), admin.ID); err != nil {
			t.Fatal(err)
		}
		if u, _ := e.svc.User(t.Context(), admin.ID); u.Active {
			t.Error("still active")
		}
	})
	t.Run("the caller's rule sees the permissions as stored and can refuse", func(t *testing.T) {
		no := errors.New("no")
		var seen []string
		_, err := e.svc.SetPermissions(t.Context(), other.ID, nil, func(before []string) error { seen = before; return no })
		if !errors.Is(err, no) || !slices.Equal(seen, []string{identity.PermOrgAdmin}) {
			t.Errorf("got %v, saw %v", err, seen)
		}
	})
	t.Run("unknown permissions are refused", func(t *testing.T) {
		_, err := e.svc.SetPermissions(t.Context(), other.ID, []string{"root"}, allow)
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"permissions"}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("a changed e-mail is no longer verified and must be unused", func(t *testing.T) {
		u := mk()
		if err := e.svc.VerifyEmail(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
		email := "new" + uuidSuffix() + "@x.test"
		got, err := e.svc.UpdateUser(t.Context(), u.ID, identity.UserPatch{Email: &email})
		if err != nil || got.Email != email || got.EmailVerified {
			t.Errorf("got %+v, %v", got, err)
		}
		taken := "  " + other.Email
		if _, err := e.svc.UpdateUser(t.Context(), u.ID, identity.UserPatch{Email: &taken}); !errors.Is(err, identity.ErrExists) {
			t.Errorf("a taken e-mail: %v", err)
		}
	})
	t.Run("the search text is folded", func(t *testing.T) {
		name := "ÉRICA Único"
		u := mk()
		if _, err := e.svc.UpdateUser(t.Context(), u.ID, identity.UserPatch{Name: &name}); err != nil {
			t.Fatal(err)
		}
		list, _, err := e.svc.ListUsers(t.Context(), identity.UserFilter{Query: "érica úni"}, identity.Page{})
		if err != nil || len(list) != 1 || list[0].ID != u.ID {
			t.Errorf("got %v, %v", list, err)
		}
		_, _, err = e.svc.ListUsers(t.Context(), identity.UserFilter{Query: "a\u202e", Permission: "root", OrgID: "x"}, identity.Page{Limit: 501})
		if got := fieldsOf(t, err); len(got) != 4 {
			t.Errorf("invalid filters %v, want limit, org, permission and q", got)
		}
	})
}
