package identitytest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

func newGroup(org string) identity.Group {
	return identity.Group{ID: uuid.Must(uuid.NewV7()).String(), OrgID: org, Name: "Team", Description: "Nightly on-call",
		CreatedAt: at(0), UpdatedAt: at(time.Second)}
}

func createGroup(t *testing.T, s identity.Store, org string) identity.Group {
	t.Helper()
	g := newGroup(org)
	if err := s.CreateGroup(t.Context(), g); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	return g
}

// createMember stores a new active user of org.
func createMember(t *testing.T, s identity.Store, org string) identity.User {
	t.Helper()
	u := newUser(org)
	createUser(t, s, u)
	return u
}

func link(t *testing.T, s identity.Store, g identity.Group, userID string, role identity.GroupRole) {
	t.Helper()
	if err := s.AddGroupUser(t.Context(), g.OrgID, g.ID, userID, role, at(time.Minute)); err != nil {
		t.Fatalf("AddGroupUser(%s, %s): %v", userID, role, err)
	}
}

func requireNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("%s: got %v, want ErrNotFound", what, err)
	}
}

// linkedIDs returns the IDs of every user linked to the group in the role, in one page.
func linkedIDs(t *testing.T, s identity.Store, g identity.Group, role identity.GroupRole) []string {
	t.Helper()
	users, err := s.GroupUsers(t.Context(), g.OrgID, g.ID, role, "", 100)
	if err != nil {
		t.Fatalf("GroupUsers(%s): %v", role, err)
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}

// groupIDsOf returns the IDs of the user's groups in the role, in one page.
func groupIDsOf(t *testing.T, s identity.Store, u identity.User, role identity.GroupRole) []string {
	t.Helper()
	list, err := s.UserGroups(t.Context(), u.OrgID, u.ID, role, "", 100)
	if err != nil {
		t.Fatalf("UserGroups(%s): %v", role, err)
	}
	return idsOf(list)
}

func idsOf(list []identity.Group) []string {
	ids := make([]string, len(list))
	for i, g := range list {
		ids[i] = groupID(g)
	}
	return ids
}

func testCreateGroup(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)
	g := createGroup(t, s, org.ID)
	got, err := s.Group(t.Context(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "group", got, g)

	bare := newGroup(org.ID)
	bare.Name, bare.Description = `Ünïcödé "quoted" ; --`, ""
	if err := s.CreateGroup(t.Context(), bare); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Group(t.Context(), bare.ID); err != nil || got != bare {
		t.Errorf("group without description: %+v, %v", got, err)
	}

	_, err = s.Group(t.Context(), uuid.Must(uuid.NewV7()).String())
	requireNotFound(t, "Group of an unknown id", err)
	dup := newGroup(org.ID)
	dup.ID = g.ID
	if err := s.CreateGroup(t.Context(), dup); !errors.Is(err, identity.ErrExists) {
		t.Errorf("duplicate id: got %v, want ErrExists", err)
	}
	requireOrgIDInvalid(t, "CreateGroup", s.CreateGroup(t.Context(), newGroup(newOrganization().ID)))
}

func testUpdateGroup(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s), createOrganization(t, s)
	g := createGroup(t, s, a.ID)
	_, err := s.UpdateGroup(t.Context(), b.ID, g.ID, func(old identity.Group) (identity.Group, error) {
		t.Error("updater called through another organization")
		return old, nil
	})
	requireNotFound(t, "UpdateGroup through another organization", err)

	want := g
	want.Name, want.Description, want.UpdatedAt = "Renamed", "", at(time.Hour)
	got, err := s.UpdateGroup(t.Context(), a.ID, g.ID, func(old identity.Group) (identity.Group, error) {
		sameRecord(t, "group", old, g)
		changed := want
		changed.ID, changed.OrgID, changed.CreatedAt = "other", b.ID, at(-time.Hour) // ignored
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "group", got, want)
	stored, err := s.Group(t.Context(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "group", stored, want)

	refused := errors.New("refused")
	if _, err := s.UpdateGroup(t.Context(), a.ID, g.ID, func(old identity.Group) (identity.Group, error) {
		old.Name = "Never"
		return old, refused
	}); !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
}

func testDeleteGroup(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s), createOrganization(t, s)
	g, kept := createGroup(t, s, a.ID), createGroup(t, s, a.ID)
	u := createMember(t, s, a.ID)
	link(t, s, g, u.ID, identity.RoleMember)
	link(t, s, g, u.ID, identity.RoleManager)

	requireNotFound(t, "DeleteGroup through another organization", s.DeleteGroup(t.Context(), b.ID, g.ID, at(time.Hour)))
	if err := s.DeleteGroup(t.Context(), a.ID, g.ID, at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	requireNotFound(t, "second DeleteGroup", s.DeleteGroup(t.Context(), a.ID, g.ID, at(time.Hour)))
	_, err := s.Group(t.Context(), g.ID)
	requireNotFound(t, "Group after delete", err)
	_, err = s.UpdateGroup(t.Context(), a.ID, g.ID, func(old identity.Group) (identity.Group, error) { return old, nil })
	requireNotFound(t, "UpdateGroup after delete", err)
	requireNotFound(t, "AddGroupUser after delete", s.AddGroupUser(t.Context(), a.ID, g.ID, u.ID, identity.RoleMember, at(0)))
	requireNotFound(t, "RemoveGroupUser after delete", s.RemoveGroupUser(t.Context(), a.ID, g.ID, u.ID, identity.RoleMember))

	list, err := s.Groups(t.Context(), a.ID, "", 10)
	if err != nil || !slices.Equal(idsOf(list), []string{kept.ID}) {
		t.Errorf("Groups after delete: %v, %v; want only %s", idsOf(list), err, kept.ID)
	}
	for _, role := range []identity.GroupRole{identity.RoleMember, identity.RoleManager} {
		if ids := linkedIDs(t, s, g, role); len(ids) != 0 {
			t.Errorf("%ss of a deleted group: %v", role, ids)
		}
		if ids := groupIDsOf(t, s, u, role); len(ids) != 0 {
			t.Errorf("the user's groups as %s list a deleted group: %v", role, ids)
		}
		if ok, err := s.HasGroupUser(t.Context(), a.ID, g.ID, u.ID, role); ok || err != nil {
			t.Errorf("HasGroupUser(%s) on a deleted group: %v, %v", role, ok, err)
		}
	}
	if got, err := s.Group(t.Context(), kept.ID); err != nil || got != kept {
		t.Errorf("the other group: %+v, %v", got, err)
	}
}

func testListGroups(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s), createOrganization(t, s)
	var want []string
	for i := range 5 {
		want = append(want, createGroup(t, s, a.ID).ID)
		if i%2 == 0 {
			createGroup(t, s, b.ID) // interleaved: the list must skip them
		}
	}
	got := walkPages(t, groupID, func(after string, limit int) ([]identity.Group, error) {
		return s.Groups(t.Context(), a.ID, after, limit)
	})
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if list, err := s.Groups(t.Context(), b.ID, "", 10); err != nil || len(list) != 3 {
		t.Errorf("the other organization's groups: %d, %v; want 3", len(list), err)
	}
}

func testGroupLinks(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)
	g, other := createGroup(t, s, org.ID), createGroup(t, s, org.ID)
	u1, u2, boss := createMember(t, s, org.ID), createMember(t, s, org.ID), createMember(t, s, org.ID)
	link(t, s, g, u2.ID, identity.RoleMember)
	link(t, s, g, u1.ID, identity.RoleMember)
	link(t, s, g, u1.ID, identity.RoleMember) // again: no error, no second link
	link(t, s, g, boss.ID, identity.RoleManager)
	link(t, s, other, u1.ID, identity.RoleMember)

	if ids := linkedIDs(t, s, g, identity.RoleMember); !slices.Equal(ids, []string{u1.ID, u2.ID}) {
		t.Errorf("members %v, want %s and %s in id order", ids, u1.ID, u2.ID)
	}
	if ids := linkedIDs(t, s, g, identity.RoleManager); !slices.Equal(ids, []string{boss.ID}) {
		t.Errorf("managers %v, want only %s: a manager is not a member, nor the reverse", ids, boss.ID)
	}
	users, err := s.GroupUsers(t.Context(), org.ID, g.ID, identity.RoleManager, "", 10)
	if err != nil || len(users) != 1 || users[0] != (identity.GroupUser{ID: boss.ID, Name: boss.Name, Email: boss.Email}) {
		t.Errorf("manager as listed: %+v, %v", users, err)
	}
	if ids := groupIDsOf(t, s, u1, identity.RoleMember); !slices.Equal(ids, []string{g.ID, other.ID}) {
		t.Errorf("u1's groups %v, want %s and %s", ids, g.ID, other.ID)
	}
	if ids := groupIDsOf(t, s, boss, identity.RoleMember); len(ids) != 0 {
		t.Errorf("the manager is a member of %v", ids)
	}
	if ids := groupIDsOf(t, s, boss, identity.RoleManager); !slices.Equal(ids, []string{g.ID}) {
		t.Errorf("managed groups %v, want %s", ids, g.ID)
	}

	for range 2 { // removing twice is not an error
		if err := s.RemoveGroupUser(t.Context(), org.ID, g.ID, u1.ID, identity.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	if ids := linkedIDs(t, s, g, identity.RoleMember); !slices.Equal(ids, []string{u2.ID}) {
		t.Errorf("members after removal %v, want %s", ids, u2.ID)
	}
	for _, c := range []struct {
		user string
		role identity.GroupRole
		want bool
	}{{u1.ID, identity.RoleMember, false}, {u2.ID, identity.RoleMember, true}, {boss.ID, identity.RoleManager, true}, {boss.ID, identity.RoleMember, false}} {
		if ok, err := s.HasGroupUser(t.Context(), org.ID, g.ID, c.user, c.role); ok != c.want || err != nil {
			t.Errorf("HasGroupUser(%s, %s): %v, %v; want %v", c.user, c.role, ok, err, c.want)
		}
	}
	if ids := groupIDsOf(t, s, u1, identity.RoleMember); !slices.Equal(ids, []string{other.ID}) {
		t.Errorf("u1's groups after removal %v, want %s", ids, other.ID)
	}
}

func testGroupLinksStayInTheOrganization(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s), createOrganization(t, s)
	g := createGroup(t, s, a.ID)
	stranger := createMember(t, s, b.ID)
	inactive := newUser(a.ID)
	inactive.Active = false
	createUser(t, s, inactive)
	for _, role := range []identity.GroupRole{identity.RoleMember, identity.RoleManager} {
		requireNotFound(t, "adding another organization's user",
			s.AddGroupUser(t.Context(), a.ID, g.ID, stranger.ID, role, at(0)))
		requireNotFound(t, "adding a group through the user's organization",
			s.AddGroupUser(t.Context(), b.ID, g.ID, stranger.ID, role, at(0)))
		requireNotFound(t, "adding an unknown user",
			s.AddGroupUser(t.Context(), a.ID, g.ID, uuid.Must(uuid.NewV7()).String(), role, at(0)))
		requireNotFound(t, "adding a deactivated user", s.AddGroupUser(t.Context(), a.ID, g.ID, inactive.ID, role, at(0)))
		requireNotFound(t, "removing another organization's user",
			s.RemoveGroupUser(t.Context(), a.ID, g.ID, stranger.ID, role))
		if err := s.RemoveGroupUser(t.Context(), a.ID, g.ID, inactive.ID, role); err != nil {
			t.Errorf("removing a deactivated user: %v", err)
		}
		if ids := linkedIDs(t, s, g, role); len(ids) != 0 {
			t.Errorf("%ss %v, want none", role, ids)
		}
		if ok, err := s.HasGroupUser(t.Context(), b.ID, g.ID, stranger.ID, role); ok || err != nil {
			t.Errorf("HasGroupUser through another organization: %v, %v", ok, err)
		}
		if ids := groupIDsOf(t, s, stranger, role); len(ids) != 0 {
			t.Errorf("the stranger's groups: %v", ids)
		}
	}
	// A user deactivated after joining stays a member until removed.
	member := createMember(t, s, a.ID)
	link(t, s, g, member.ID, identity.RoleMember)
	if _, err := s.UpdateUser(t.Context(), member.ID, func(u identity.User) (identity.User, error) {
		u.Active = false
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	if ids := linkedIDs(t, s, g, identity.RoleMember); !slices.Equal(ids, []string{member.ID}) {
		t.Errorf("members %v, want the deactivated %s", ids, member.ID)
	}
}

func testConcurrentGroupLinks(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)
	g := createGroup(t, s, org.ID)
	same := createMember(t, s, org.ID)
	others := make([]string, 4)
	for i := range others {
		others[i] = createMember(t, s, org.ID).ID
	}
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.AddGroupUser(t.Context(), org.ID, g.ID, same.ID, identity.RoleMember, at(time.Duration(i))); err != nil {
				t.Errorf("add %d of the same user: %v", i, err)
			}
		})
	}
	for _, id := range others {
		wg.Go(func() {
			if err := s.AddGroupUser(t.Context(), org.ID, g.ID, id, identity.RoleMember, at(0)); err != nil {
				t.Errorf("add %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	want := append([]string{same.ID}, others...)
	slices.Sort(want)
	if ids := linkedIDs(t, s, g, identity.RoleMember); !slices.Equal(ids, want) {
		t.Errorf("members %v, want each of %v once", ids, want)
	}
}

func testPageGroupUsers(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)
	g := createGroup(t, s, org.ID)
	var want []string
	for range 5 {
		u := createMember(t, s, org.ID)
		link(t, s, g, u.ID, identity.RoleMember)
		want = append(want, u.ID)
	}
	got := walkPages(t, groupUserID, func(after string, limit int) ([]identity.GroupUser, error) {
		return s.GroupUsers(t.Context(), org.ID, g.ID, identity.RoleMember, after, limit)
	})
	if !slices.Equal(got, want) {
		t.Errorf("paged %v, want %v", got, want)
	}
}

func testPageUserGroups(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)
	u := createMember(t, s, org.ID)
	var want []string
	for i := range 5 {
		g := createGroup(t, s, org.ID)
		link(t, s, g, u.ID, identity.RoleManager)
		want = append(want, g.ID)
		if i == 2 {
			createGroup(t, s, org.ID) // one they do not manage
		}
	}
	got := walkPages(t, groupID, func(after string, limit int) ([]identity.Group, error) {
		return s.UserGroups(t.Context(), org.ID, u.ID, identity.RoleManager, after, limit)
	})
	if !slices.Equal(got, want) {
		t.Errorf("paged %v, want %v", got, want)
	}
	if list, err := s.UserGroups(t.Context(), createOrganization(t, s).ID, u.ID, identity.RoleManager, "", 10); err != nil || len(list) != 0 {
		t.Errorf("the user's groups asked through another organization: %v, %v", idsOf(list), err)
	}
}

// walkPages reads a list page after page, two at a time, and returns the IDs in order. It
// fails on a page larger than asked or on more pages than the IDs could fill.
func walkPages[T any](t *testing.T, id func(T) string, read func(after string, limit int) ([]T, error)) []string {
	t.Helper()
	var ids []string
	after := ""
	for {
		page, err := read(after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 || len(ids) > 100 {
			t.Fatalf("page of %d after %d items", len(page), len(ids))
		}
		if len(page) == 0 {
			return ids
		}
		for _, it := range page {
			ids = append(ids, id(it))
		}
		after = ids[len(ids)-1]
	}
}

func groupID(g identity.Group) string         { return g.ID }
func groupUserID(u identity.GroupUser) string { return u.ID }
