package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portaria/portaria/identity"
)

// groupFixture extends orgFixture with groups and the callers groups add: G1 and G2 in
// organization A, GB in B; "group manager" manages G1 only; "member of A" (no group permission)
// is a member of G1; and target users, one per organization, to add and remove.
type groupFixture struct {
	*orgFixture
	g1, g2, gB identity.Group
	userIDs    map[string]string // by actor name, and of "target in A" and "target in B"
}

func newGroupFixture(t *testing.T) *groupFixture {
	t.Helper()
	f := &groupFixture{orgFixture: newOrgFixture(t), userIDs: map[string]string{}}
	ctx := context.Background()
	for actor, tok := range f.tokens {
		if actor != "client credentials" {
			_, claims := jwtParts(t, tok)
			f.userIDs[actor] = claims["sub"].(string)
		}
	}
	f.tokens["groups reader of A"] = f.login(t).AccessToken // Ana: users:read, groups:read
	f.userIDs["groups reader of A"] = f.user.ID
	f.groupActor(t, "groups writer of A", f.orgA.ID, identity.PermGroupsWrite)
	f.groupActor(t, "group manager", f.orgA.ID)
	f.userIDs["target in A"] = f.groupUser(t, "target in A", f.orgA.ID, true).ID
	f.userIDs["target in B"] = f.groupUser(t, "target in B", f.orgB.ID, true).ID

	f.g1, f.g2, f.gB = f.newGroup(t, f.orgA.ID, "G1"), f.newGroup(t, f.orgA.ID, "G2"), f.newGroup(t, f.orgB.ID, "GB")
	for _, l := range []struct {
		g     identity.Group
		actor string
		role  identity.GroupRole
	}{{f.g1, "group manager", identity.RoleManager}, {f.g1, "member of A", identity.RoleMember}} {
		if err := f.ids.AddGroupUser(ctx, l.g.OrgID, l.g.ID, f.userIDs[l.actor], l.role); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// groupUser creates a user; the e-mail is made from the name.
func (f *groupFixture) groupUser(t *testing.T, name, org string, active bool, perms ...string) identity.User {
	t.Helper()
	email := strings.ReplaceAll(name, " ", ".") + "@groups.test"
	u, err := f.ids.CreateUser(context.Background(), identity.NewUser{OrgID: org, Email: email, Name: name,
		Password: userPassword, Active: active, EmailVerified: true, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// groupActor creates a user and logs them in as actor.
func (f *groupFixture) groupActor(t *testing.T, actor, org string, perms ...string) {
	t.Helper()
	u := f.groupUser(t, actor, org, true, perms...)
	tok, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), u.Email, userPassword)
	if err != nil {
		t.Fatalf("%s: %v", actor, err)
	}
	f.tokens[actor], f.userIDs[actor] = tok.AccessToken, u.ID
}

func (f *groupFixture) newGroup(t *testing.T, org, name string) identity.Group {
	t.Helper()
	g, err := f.ids.CreateGroup(context.Background(), org, identity.GroupInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// itemIDs returns the ids of a list answer's items.
func itemIDs(body map[string]any) []string {
	items, _ := body["items"].([]any)
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i], _ = it.(map[string]any)["id"].(string)
	}
	return ids
}

func TestGroupAuthorizationMatrix(t *testing.T) {
	f := newGroupFixture(t)
	type want struct{ a, b int } // status on organization A's resource, on B's
	actors := []string{"client credentials", "support", "member of B", "member of A", "group manager",
		"groups reader of A", "groups writer of A", "org admin of A", "platform admin"}
	// Statuses of a route by kind of caller: those without access, then those of A with it.
	table := func(outsider, member, manager, reader, writer, platform int) map[string]want {
		return map[string]want{
			"client credentials": {403, 403}, "support": {404, 404}, "member of B": {404, outsider},
			"member of A": {member, 404}, "group manager": {manager, 404}, "groups reader of A": {reader, 404},
			"groups writer of A": {writer, 404}, "org admin of A": {writer, 404}, "platform admin": {platform, platform},
		}
	}
	type side struct {
		org   identity.Organization
		group identity.Group
		user  string
	}
	sides := []side{{f.orgA, f.g1, f.userIDs["target in A"]}, {f.orgB, f.gB, f.userIDs["target in B"]}}
	name := map[string]string{"name": "Renamed"}
	routes := []struct {
		method string
		path   func(s side) string
		body   any
		status map[string]want
	}{
		{"POST", func(s side) string { return "/api/organizations/" + s.org.ID + "/groups" }, name, table(403, 403, 403, 403, 201, 201)},
		{"GET", func(s side) string { return "/api/organizations/" + s.org.ID + "/groups" }, nil, table(403, 403, 403, 200, 200, 200)},
		{"GET", func(s side) string { return "/api/groups/" + s.group.ID }, nil, table(403, 403, 200, 200, 200, 200)},
		{"GET", func(s side) string { return "/api/groups/" + s.group.ID + "/members" }, nil, table(403, 403, 200, 200, 200, 200)},
		{"PATCH", func(s side) string { return "/api/groups/" + s.group.ID }, name, table(403, 403, 403, 403, 200, 200)},
		{"PUT", func(s side) string { return "/api/groups/" + s.group.ID + "/members/" + s.user }, nil, table(403, 403, 204, 403, 204, 204)},
		{"DELETE", func(s side) string { return "/api/groups/" + s.group.ID + "/members/" + s.user }, nil, table(403, 403, 204, 403, 204, 204)},
		{"PUT", func(s side) string { return "/api/groups/" + s.group.ID + "/managers/" + s.user }, nil, table(403, 403, 403, 403, 204, 204)},
		{"DELETE", func(s side) string { return "/api/groups/" + s.group.ID + "/managers/" + s.user }, nil, table(403, 403, 403, 403, 204, 204)},
		{"GET", func(s side) string { return "/api/users/" + s.user + "/groups" }, nil, table(403, 403, 403, 200, 200, 200)},
		{"GET", func(s side) string { return "/api/users/" + s.user + "/managed-groups" }, nil, table(403, 403, 403, 200, 200, 200)},
		// A fresh group each time, which the group manager manages too: deleting is still not theirs.
		{"DELETE", func(s side) string {
			g := f.newGroup(t, s.org.ID, "Doomed")
			if s.org.ID == f.orgA.ID {
				if err := f.ids.AddGroupUser(context.Background(), g.OrgID, g.ID, f.userIDs["group manager"], identity.RoleManager); err != nil {
					t.Fatal(err)
				}
			}
			return "/api/groups/" + g.ID
		}, nil, table(403, 403, 403, 403, 204, 204)},
	}
	for _, rt := range routes {
		for _, actor := range actors {
			exp, ok := rt.status[actor]
			if !ok {
				t.Fatalf("%s: no expectation for %s", rt.method, actor)
			}
			for i, s := range sides {
				path := rt.path(s)
				status := []int{exp.a, exp.b}[i]
				res, body := f.as(t, actor, rt.method, path, rt.body)
				if res.StatusCode != status {
					t.Errorf("%s %s as %s on %s: %d %v, want %d", rt.method, path, actor, s.org.Name, res.StatusCode, body, status)
				}
				if res.StatusCode == 404 && body["id"] != nil {
					t.Errorf("%s %s as %s: a 404 carries the record", rt.method, path, actor)
				}
			}
		}
	}
}

func TestGroupCreateReadUpdate(t *testing.T) {
	f := newGroupFixture(t)
	res, body := f.as(t, "groups writer of A", "POST", "/api/organizations/"+f.orgA.ID+"/groups",
		map[string]string{"name": "Sales", "description": "Field team"})
	id, _ := body["id"].(string)
	if res.StatusCode != 201 || body["name"] != "Sales" || body["description"] != "Field team" || body["org_id"] != f.orgA.ID {
		t.Fatalf("create: %d %v", res.StatusCode, body)
	}
	if loc := res.Header.Get("Location"); loc != "/api/groups/"+id {
		t.Errorf("Location %q, want /api/groups/%s", loc, id)
	}
	res, body = f.as(t, "org admin of A", "GET", "/api/groups/"+id, nil)
	if res.StatusCode != 200 || body["name"] != "Sales" || fmt.Sprint(body["members"]) != "[]" || fmt.Sprint(body["managers"]) != "[]" {
		t.Errorf("read: %d %v, want the group with empty members and managers", res.StatusCode, body)
	}

	res, body = f.as(t, "groups writer of A", "PATCH", "/api/groups/"+id, map[string]string{"description": "Inside sales"})
	if res.StatusCode != 200 || body["name"] != "Sales" || body["description"] != "Inside sales" {
		t.Errorf("patch description: %d %v", res.StatusCode, body)
	}
	res, body = f.as(t, "groups writer of A", "PATCH", "/api/groups/"+id, map[string]any{"name": "Sales BR", "description": ""})
	if res.StatusCode != 200 || body["name"] != "Sales BR" || body["description"] != "" {
		t.Errorf("patch both: %d %v", res.StatusCode, body)
	}

	for _, c := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		field  string
	}{
		{"a group needs a name", "POST", "/api/organizations/" + f.orgA.ID + "/groups", map[string]any{"description": "x"}, 422, "name"},
		{"a blank name is refused", "PATCH", "/api/groups/" + id, map[string]any{"name": " "}, 422, "name"},
		{"a description over 2000 characters is refused", "PATCH", "/api/groups/" + id, map[string]any{"description": strings.Repeat("a", 2001)}, 422, "description"},
		{"a description with a line break is refused", "POST", "/api/organizations/" + f.orgA.ID + "/groups", map[string]any{"name": "X", "description": "a\nb"}, 422, "description"},
		{"an unknown field is refused", "POST", "/api/organizations/" + f.orgA.ID + "/groups", map[string]any{"name": "X", "org_id": f.orgB.ID}, 400, ""},
		{"a field in another case is refused", "PATCH", "/api/groups/" + id, map[string]any{"Name": "X"}, 400, ""},
		{"a value of the wrong type is refused", "PATCH", "/api/groups/" + id, map[string]any{"name": 7}, 400, ""},
		{"the group's id cannot be patched", "PATCH", "/api/groups/" + id, map[string]any{"id": f.g1.ID}, 400, ""},
		{"an unknown group is not found", "GET", "/api/groups/01900000-0000-7000-8000-000000000000", nil, 404, ""},
		{"a malformed group id is not found", "GET", "/api/groups/sales", nil, 404, ""},
		{"an unknown organization is not found", "POST", "/api/organizations/01900000-0000-7000-8000-000000000000/groups", map[string]any{"name": "X"}, 404, ""},
	} {
		res, body := f.as(t, "platform admin", c.method, c.path, c.body)
		errs, _ := body["errors"].([]any)
		if res.StatusCode != c.status || (c.field != "" && (len(errs) != 1 || errs[0].(map[string]any)["field"] != c.field)) {
			t.Errorf("%s: %d %v, want %d on %q", c.name, res.StatusCode, body, c.status, c.field)
		}
	}
	if _, body := f.as(t, "platform admin", "GET", "/api/groups/"+id, nil); body["name"] != "Sales BR" {
		t.Errorf("a refused change changed the group: %v", body)
	}
}

func TestGroupMembershipIsIdempotent(t *testing.T) {
	f := newGroupFixture(t)
	g := "/api/groups/" + f.g2.ID
	target := f.userIDs["target in A"]
	for _, path := range []string{g + "/members/" + target, g + "/members/" + target, g + "/managers/" + target, g + "/managers/" + target} {
		if res, body := f.as(t, "org admin of A", "PUT", path, nil); res.StatusCode != 204 {
			t.Fatalf("PUT %s: %d %v", path, res.StatusCode, body)
		}
	}
	res, body := f.as(t, "org admin of A", "GET", g, nil)
	want := fmt.Sprintf("[map[id:%s name:target in A]]", target)
	if res.StatusCode != 200 || fmt.Sprint(body["members"]) != want || fmt.Sprint(body["managers"]) != want {
		t.Errorf("group: %d %v, want %s once as member and as manager, without e-mail", res.StatusCode, body, target)
	}
	res, body = f.as(t, "org admin of A", "GET", g+"/members", nil)
	items, _ := body["items"].([]any)
	if res.StatusCode != 200 || len(items) != 1 || items[0].(map[string]any)["email"] != "target.in.A@groups.test" || body["next_cursor"] != nil {
		t.Errorf("members: %d %v", res.StatusCode, body)
	}
	for _, path := range []string{g + "/members/" + target, g + "/members/" + target, g + "/managers/" + target, g + "/managers/" + target} {
		if res, body := f.as(t, "org admin of A", "DELETE", path, nil); res.StatusCode != 204 {
			t.Errorf("DELETE %s: %d %v", path, res.StatusCode, body)
		}
	}
	if _, body := f.as(t, "org admin of A", "GET", g, nil); fmt.Sprint(body["members"], body["managers"]) != "[] []" {
		t.Errorf("after removal: %v", body)
	}

	inactive := f.groupUser(t, "inactive in A", f.orgA.ID, false)
	for _, c := range []struct {
		name, user string
		status     int
	}{
		{"another organization's user is not found", f.userIDs["target in B"], 404},
		{"platform staff are not found", f.userIDs["platform admin"], 404},
		{"an unknown user is not found", "01900000-0000-7000-8000-000000000000", 404},
		{"a deactivated user is refused", inactive.ID, 422},
	} {
		for _, role := range []string{"members", "managers"} {
			if res, body := f.as(t, "platform admin", "PUT", g+"/"+role+"/"+c.user, nil); res.StatusCode != c.status {
				t.Errorf("%s (%s): %d %v, want %d", c.name, role, res.StatusCode, body, c.status)
			}
		}
	}
}

func TestGroupManagerManagesOnlyTheirGroup(t *testing.T) {
	f := newGroupFixture(t)
	target := f.userIDs["target in A"]
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"PUT", "/api/groups/" + f.g1.ID + "/members/" + target, 204},
		{"GET", "/api/groups/" + f.g1.ID, 200},
		{"GET", "/api/groups/" + f.g1.ID + "/members", 200},
		{"DELETE", "/api/groups/" + f.g1.ID + "/members/" + f.userIDs["member of A"], 204},
		{"PUT", "/api/groups/" + f.g1.ID + "/members/" + f.userIDs["target in B"], 404},
		{"PUT", "/api/groups/" + f.g1.ID + "/managers/" + target, 403},
		{"DELETE", "/api/groups/" + f.g1.ID + "/managers/" + f.userIDs["group manager"], 403},
		{"PATCH", "/api/groups/" + f.g1.ID, 403},
		{"PUT", "/api/groups/" + f.g2.ID + "/members/" + target, 403},
		{"GET", "/api/groups/" + f.g2.ID, 403},
		{"PUT", "/api/groups/" + f.gB.ID + "/members/" + f.userIDs["target in B"], 404},
		{"GET", "/api/users/" + target + "/groups", 403},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]string{"name": "Mine"}
		}
		if res, got := f.as(t, "group manager", c.method, c.path, body); res.StatusCode != c.status {
			t.Errorf("%s %s: %d %v, want %d", c.method, c.path, res.StatusCode, got, c.status)
		}
	}
	// The rule follows the data: once no longer a manager, the caller's token stops working on G1.
	if res, _ := f.as(t, "org admin of A", "DELETE", "/api/groups/"+f.g1.ID+"/managers/"+f.userIDs["group manager"], nil); res.StatusCode != 204 {
		t.Fatalf("remove the manager: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "group manager", "GET", "/api/groups/"+f.g1.ID, nil); res.StatusCode != 403 {
		t.Errorf("a former manager reads the group: %d, want 403", res.StatusCode)
	}
}

func TestDeletedGroupDisappears(t *testing.T) {
	f := newGroupFixture(t)
	g := "/api/groups/" + f.g1.ID
	if res, body := f.as(t, "org admin of A", "DELETE", g, nil); res.StatusCode != 204 {
		t.Fatalf("delete: %d %v", res.StatusCode, body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", g}, {"GET", g + "/members"}, {"PATCH", g}, {"DELETE", g},
		{"PUT", g + "/members/" + f.userIDs["target in A"]}, {"DELETE", g + "/managers/" + f.userIDs["group manager"]},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]string{"name": "Back"}
		}
		for _, actor := range []string{"platform admin", "org admin of A", "group manager"} {
			if res, got := f.as(t, actor, c.method, c.path, body); res.StatusCode != 404 {
				t.Errorf("%s %s as %s: %d %v, want 404", c.method, c.path, actor, res.StatusCode, got)
			}
		}
	}
	_, body := f.as(t, "org admin of A", "GET", "/api/organizations/"+f.orgA.ID+"/groups", nil)
	if ids := itemIDs(body); !slices.Equal(ids, []string{f.g2.ID}) {
		t.Errorf("organization's groups %v, want only G2", ids)
	}
	for _, c := range []struct{ actor, path string }{{"member of A", "/api/users/me/groups"}, {"group manager", "/api/users/me/managed-groups"}} {
		if _, body := f.as(t, c.actor, "GET", c.path, nil); len(itemIDs(body)) != 0 {
			t.Errorf("%s %s: %v, want no groups", c.actor, c.path, body)
		}
	}
}

func TestUserGroupsAndManagedGroups(t *testing.T) {
	f := newGroupFixture(t)
	if err := f.ids.AddGroupUser(context.Background(), f.orgA.ID, f.g2.ID, f.userIDs["member of A"], identity.RoleManager); err != nil {
		t.Fatal(err)
	}
	member := f.userIDs["member of A"]
	for _, c := range []struct {
		actor, path string
		want        []string
	}{
		{"member of A", "/api/users/me/groups", []string{f.g1.ID}},
		{"member of A", "/api/users/" + member + "/groups", []string{f.g1.ID}},
		{"member of A", "/api/users/me/managed-groups", []string{f.g2.ID}},
		{"group manager", "/api/users/me/managed-groups", []string{f.g1.ID}},
		{"group manager", "/api/users/me/groups", nil},
		{"groups reader of A", "/api/users/" + member + "/groups", []string{f.g1.ID}},
		{"org admin of A", "/api/users/" + f.userIDs["group manager"] + "/managed-groups", []string{f.g1.ID}},
		{"platform admin", "/api/users/" + member + "/managed-groups", []string{f.g2.ID}},
		{"member of B", "/api/users/me/groups", nil},
		{"platform admin", "/api/users/me/groups", nil},
	} {
		res, body := f.as(t, c.actor, "GET", c.path, nil)
		if ids := itemIDs(body); res.StatusCode != 200 || !slices.Equal(ids, c.want) || body["next_cursor"] != nil {
			t.Errorf("%s %s: %d %v, want %v", c.actor, c.path, res.StatusCode, body, c.want)
		}
	}
}

func TestGroupPagination(t *testing.T) {
	f := newGroupFixture(t)
	for i := range 118 { // with G1 and G2: 120
		f.newGroup(t, f.orgA.ID, fmt.Sprintf("Group %d", i))
	}
	base := "/api/organizations/" + f.orgA.ID + "/groups"
	seen := map[string]bool{}
	var sizes []int
	for path := base + "?limit=50"; ; {
		res, body := f.as(t, "groups reader of A", "GET", path, nil)
		if res.StatusCode != http.StatusOK || len(sizes) > 3 {
			t.Fatalf("page %d: %d %v", len(sizes), res.StatusCode, body)
		}
		ids := itemIDs(body)
		sizes = append(sizes, len(ids))
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
		}
		next, present := body["next_cursor"]
		if !present {
			t.Fatal("next_cursor is missing")
		}
		if next == nil {
			break
		}
		path = base + "?limit=50&cursor=" + next.(string)
	}
	if !slices.Equal(sizes, []int{50, 50, 20}) || len(seen) != 120 || seen[f.gB.ID] {
		t.Errorf("pages of %v, %d groups; want 50, 50, 20 and 120 of A's", sizes, len(seen))
	}
	if _, body := f.as(t, "groups reader of A", "GET", base, nil); len(itemIDs(body)) != 50 {
		t.Errorf("default limit: %d items", len(itemIDs(body)))
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%21%21", "cursor=YWNtZQ"} {
		for _, path := range []string{base, "/api/groups/" + f.g1.ID + "/members", "/api/users/me/groups"} {
			res, body := f.as(t, "org admin of A", "GET", path+"?"+q, nil)
			if res.StatusCode != 422 || body["errors"] == nil {
				t.Errorf("%s?%s: %d %v, want 422 with errors", path, q, res.StatusCode, body)
			}
		}
	}
}
