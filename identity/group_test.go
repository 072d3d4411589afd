package identity_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

func ptr(s string) *string { return &s }

func (e env) createGroup(t *testing.T, org, name string) identity.Group {
	t.Helper()
	g, err := e.svc.CreateGroup(t.Context(), org, identity.GroupInput{Name: ptr(name)})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	return g
}

// createUserIn stores an active user of org (platform staff for "") straight into the store.
func (e env) createUserIn(t *testing.T, org string, active bool) identity.User {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	u := identity.User{ID: id, OrgID: org, Email: id + "@example.test", Name: "User " + id[30:], Active: active,
		Permissions: []string{}, CreatedAt: now, UpdatedAt: now}
	if err := e.store.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCreateGroupValidation(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	tests := []struct {
		name   string
		in     identity.GroupInput
		fields []string
	}{
		{"a group needs a name", identity.GroupInput{Description: ptr("x")}, []string{"name"}},
		{"a blank name is refused", identity.GroupInput{Name: ptr(" \t ")}, []string{"name"}},
		{"a name longer than 200 code points is refused", identity.GroupInput{Name: ptr(strings.Repeat("é", 201))}, []string{"name"}},
		{"a name with a bidi override is refused", identity.GroupInput{Name: ptr("Team \u202egnp.exe")}, []string{"name"}},
		{"a description longer than 2000 code points is refused",
			identity.GroupInput{Name: ptr("Team"), Description: ptr(strings.Repeat("ç", 2001))}, []string{"description"}},
		{"a description with a control character is refused",
			identity.GroupInput{Name: ptr("Team"), Description: ptr("line\nbreak")}, []string{"description"}},
		{"a description of invalid UTF-8 is refused", identity.GroupInput{Name: ptr("Team"), Description: ptr("\xff")}, []string{"description"}},
		{"every broken rule is reported at once",
			identity.GroupInput{Name: ptr(""), Description: ptr("\u2066")}, []string{"name", "description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CreateGroup(t.Context(), org, tt.in)
			if got := fieldsOf(t, err); !slices.Equal(got, tt.fields) {
				t.Errorf("fields %v, want %v", got, tt.fields)
			}
		})
	}
	t.Run("a description of exactly 2000 code points is accepted", func(t *testing.T) {
		d := strings.Repeat("ç", 2000)
		g, err := e.svc.CreateGroup(t.Context(), org, identity.GroupInput{Name: ptr("Team"), Description: ptr(d)})
		if err != nil || g.Description != d {
			t.Errorf("got %v", err)
		}
	})
	t.Run("an unknown or malformed organization is not found", func(t *testing.T) {
		for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "acme", strings.ToUpper(org)} {
			_, err := e.svc.CreateGroup(t.Context(), id, identity.GroupInput{Name: ptr("Team")})
			if !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("organization %q: got %v", id, err)
			}
		}
	})
	t.Run("a deactivated organization takes no new group", func(t *testing.T) {
		off := e.createOrg(t)
		if err := e.svc.SetOrganizationActive(t.Context(), off, false); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.CreateGroup(t.Context(), off, identity.GroupInput{Name: ptr("Team")})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"org_id"}) {
			t.Errorf("fields %v, want org_id", got)
		}
	})
}

func TestGroupLifecycle(t *testing.T) {
	e := newEnv(t)
	org, other := e.createOrg(t), e.createOrg(t)
	g, err := e.svc.CreateGroup(t.Context(), org, identity.GroupInput{Name: ptr("Sales"), Description: ptr("Field team")})
	if err != nil {
		t.Fatal(err)
	}
	ts := now.Truncate(time.Microsecond)
	if id, err := uuid.Parse(g.ID); err != nil || id.Version() != 7 || g.OrgID != org || !g.CreatedAt.Equal(ts) || !g.UpdatedAt.Equal(ts) {
		t.Fatalf("created %+v", g)
	}
	if got, err := e.svc.Group(t.Context(), g.ID); err != nil || got != g {
		t.Errorf("read back %+v, %v", got, err)
	}

	t.Run("an update changes only the fields it sets", func(t *testing.T) {
		got, err := e.svc.UpdateGroup(t.Context(), org, g.ID, identity.GroupInput{Name: ptr("Sales South")})
		if err != nil || got.Name != "Sales South" || got.Description != "Field team" {
			t.Fatalf("rename: %+v, %v", got, err)
		}
		got, err = e.svc.UpdateGroup(t.Context(), org, g.ID, identity.GroupInput{Description: ptr("")})
		if err != nil || got.Name != "Sales South" || got.Description != "" {
			t.Fatalf("clear description: %+v, %v", got, err)
		}
	})
	t.Run("an invalid update changes nothing", func(t *testing.T) {
		before, _ := e.svc.Group(t.Context(), g.ID)
		_, err := e.svc.UpdateGroup(t.Context(), org, g.ID, identity.GroupInput{Name: ptr(""), Description: ptr("ok")})
		if got := fieldsOf(t, err); !slices.Equal(got, []string{"name"}) {
			t.Errorf("fields %v, want name", got)
		}
		if after, _ := e.svc.Group(t.Context(), g.ID); after != before {
			t.Errorf("changed to %+v", after)
		}
	})
	t.Run("another organization can neither change nor delete the group", func(t *testing.T) {
		_, err := e.svc.UpdateGroup(t.Context(), other, g.ID, identity.GroupInput{Name: ptr("Taken")})
		if !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("update: got %v, want ErrNotFound", err)
		}
		if err := e.svc.DeleteGroup(t.Context(), other, g.ID); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("delete: got %v, want ErrNotFound", err)
		}
	})
	t.Run("a deleted group is gone from reads and lists, its links kept", func(t *testing.T) {
		kept := e.createGroup(t, org, "Kept")
		member := e.createUserIn(t, org, true)
		if err := e.svc.AddGroupUser(t.Context(), org, g.ID, member.ID, identity.RoleMember); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteGroup(t.Context(), org, g.ID); err != nil {
			t.Fatal(err)
		}
		stored, err := e.db.NewSelect().Table("groups").Where("id = ? AND deleted_at IS NOT NULL", g.ID).Count(t.Context())
		if err != nil || stored != 1 {
			t.Errorf("the deleted group's row: %d, %v; want it kept with deleted_at", stored, err)
		}
		links, err := e.db.NewSelect().Table("group_members").Where("group_id = ?", g.ID).Count(t.Context())
		if err != nil || links != 1 {
			t.Errorf("the deleted group's memberships: %d, %v; want them kept", links, err)
		}
		if _, err := e.svc.Group(t.Context(), g.ID); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("read: got %v, want ErrNotFound", err)
		}
		list, next, err := e.svc.ListGroups(t.Context(), org, identity.Page{})
		if err != nil || next != "" || len(list) != 1 || list[0] != kept {
			t.Errorf("list: %+v %q %v, want only %s", list, next, err, kept.ID)
		}
	})
	for _, id := range []string{"", "x", strings.ToUpper(g.ID), "../" + g.ID} {
		if _, err := e.svc.Group(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("Group(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

func TestGroupLinksStayInTheGroupsOrganization(t *testing.T) {
	e := newEnv(t)
	org, other := e.createOrg(t), e.createOrg(t)
	g := e.createGroup(t, org, "Sales")
	member := e.createUserIn(t, org, true)
	for _, role := range []identity.GroupRole{identity.RoleMember, identity.RoleManager} {
		t.Run(string(role), func(t *testing.T) {
			for name, id := range map[string]string{
				"another organization's user": e.createUserIn(t, other, true).ID,
				"platform staff":              e.createUserIn(t, "", true).ID,
				"an unknown user":             uuid.Must(uuid.NewV7()).String(),
				"a malformed id":              "me",
			} {
				if err := e.svc.AddGroupUser(t.Context(), org, g.ID, id, role); !errors.Is(err, identity.ErrNotFound) {
					t.Errorf("add %s: got %v, want ErrNotFound", name, err)
				}
				if err := e.svc.RemoveGroupUser(t.Context(), org, g.ID, id, role); !errors.Is(err, identity.ErrNotFound) {
					t.Errorf("remove %s: got %v, want ErrNotFound", name, err)
				}
			}
			err := e.svc.AddGroupUser(t.Context(), org, g.ID, e.createUserIn(t, org, false).ID, role)
			if got := fieldsOf(t, err); !slices.Equal(got, []string{"user"}) {
				t.Errorf("a deactivated user: fields %v, want user", got)
			}
			// The group's organization comes from the group: naming another one finds nothing.
			if err := e.svc.AddGroupUser(t.Context(), other, g.ID, member.ID, role); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("through another organization: got %v, want ErrNotFound", err)
			}
			for range 2 {
				if err := e.svc.AddGroupUser(t.Context(), org, g.ID, member.ID, role); err != nil {
					t.Fatalf("add twice: %v", err)
				}
			}
			list, _, err := e.svc.GroupUsers(t.Context(), org, g.ID, role, identity.Page{})
			if err != nil || len(list) != 1 || list[0].ID != member.ID || list[0].Email != member.Email {
				t.Errorf("%ss: %+v, %v", role, list, err)
			}
			if ok, err := e.svc.HasGroupUser(t.Context(), org, g.ID, member.ID, role); !ok || err != nil {
				t.Errorf("HasGroupUser: %v, %v", ok, err)
			}
		})
	}
	groups, _, err := e.svc.UserGroups(t.Context(), "", member.ID, identity.RoleMember, identity.Page{})
	if err != nil || len(groups) != 0 {
		t.Errorf("groups asked without an organization: %+v, %v", groups, err)
	}
}

func TestGroupPages(t *testing.T) {
	e := newEnv(t)
	org := e.createOrg(t)
	g := e.createGroup(t, org, "Everyone")
	for _, p := range []identity.Page{{Limit: -1}, {Limit: identity.MaxPageLimit + 1}, {Cursor: "!!"}, {Cursor: "YWNtZQ"}} {
		if _, _, err := e.svc.GroupUsers(t.Context(), org, g.ID, identity.RoleMember, p); !errors.Is(err, identity.ErrInvalid) {
			t.Errorf("page %+v: got %v, want a validation error", p, err)
		}
	}
	// One more member than a store page: the roster must walk past it.
	var want []string
	for range identity.MaxPageLimit + 1 {
		u := e.createUserIn(t, org, true)
		if err := e.svc.AddGroupUser(t.Context(), org, g.ID, u.ID, identity.RoleMember); err != nil {
			t.Fatal(err)
		}
		want = append(want, u.ID)
	}
	r, err := e.svc.GroupRoster(t.Context(), org, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(r.Members))
	for i, m := range r.Members {
		got[i] = m.ID
	}
	if !slices.Equal(got, want) || r.Managers == nil || len(r.Managers) != 0 {
		t.Errorf("roster of %d members and %v managers, want %d and none", len(got), r.Managers, len(want))
	}
	page, next, err := e.svc.GroupUsers(t.Context(), org, g.ID, identity.RoleMember, identity.Page{Limit: 500})
	if err != nil || len(page) != 500 || next == "" {
		t.Fatalf("first page: %d, %q, %v", len(page), next, err)
	}
	page, next, err = e.svc.GroupUsers(t.Context(), org, g.ID, identity.RoleMember, identity.Page{Limit: 500, Cursor: next})
	if err != nil || len(page) != 1 || page[0].ID != want[500] || next != "" {
		t.Errorf("last page: %+v, %q, %v", page, next, err)
	}
}
