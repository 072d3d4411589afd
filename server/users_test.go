package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/portaria/portaria/identity"
)

// userID returns the ID of the fixture user with this e-mail.
func (f *orgFixture) userID(t *testing.T, email string) string {
	t.Helper()
	u, err := f.ids.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// Fixture users by actor (see newOrgFixture).
const (
	platformEmail = "user0@example.test"
	adminAEmail   = "user1@example.test"
	memberAEmail  = "user2@example.test"
	memberBEmail  = "user3@example.test"
)

// addUser creates a user of org with perms and a password, and a token for them as actor.
func (f *orgFixture) addUser(t *testing.T, actor, org string, perms ...string) identity.User {
	t.Helper()
	ctx := context.Background()
	email := strings.ReplaceAll(actor, " ", ".") + "@example.test"
	u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: org, Email: email, Name: actor, Password: userPassword,
		Active: true, EmailVerified: true, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.oauth2Config.PasswordCredentialsToken(ctx, email, userPassword)
	if err != nil {
		t.Fatal(err)
	}
	f.tokens[actor] = tok.AccessToken
	return u
}

func TestCreateUserSendsAnInvitationThatSetsThePassword(t *testing.T) {
	f := newOrgFixture(t)
	res, body := f.as(t, "org admin of A", "POST", "/api/organizations/"+f.orgA.ID+"/users",
		map[string]any{"email": "Nova@Acme.test", "name": "Nova", "permissions": []string{"users:read"}})
	if res.StatusCode != 201 || body["active"] != true || body["org_id"] != f.orgA.ID || body["email_verified"] != false {
		t.Fatalf("create: %d %v", res.StatusCode, body)
	}
	id := body["id"].(string)
	if loc := res.Header.Get("Location"); loc != "/api/users/"+id {
		t.Errorf("Location %q", loc)
	}
	msg := f.mailsTo(t, "Nova@Acme.test", "/reset-password#", 1)[0]
	token := codeIn(t, msg)
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "nova@acme.test", userPassword); err == nil {
		t.Fatal("an invited user logged in before setting a password")
	}
	res, body = f.api(t, "POST", "/api/auth/password/reset", map[string]string{"email": "nova@acme.test", "token": token,
		"new_password": userPassword, "new_password_confirm": userPassword}, nil, "Origin", f.issuer)
	if res.StatusCode != 204 {
		t.Fatalf("set password: %d %v", res.StatusCode, body)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "nova@acme.test", userPassword); err != nil {
		t.Errorf("the invited user cannot log in: %v", err)
	}
	// IN-03: the same address, normalised, is taken.
	res, body = f.as(t, "org admin of A", "POST", "/api/organizations/"+f.orgA.ID+"/users", map[string]any{"email": " NOVA@acme.TEST ", "name": "Again"})
	if res.StatusCode != 409 {
		t.Errorf("a normalised duplicate: %d %v, want 409", res.StatusCode, body)
	}
	res, _ = f.as(t, "org admin of A", "POST", "/api/organizations/"+f.orgA.ID+"/users", map[string]any{"email": "\ufb00@x.test", "name": "Ff"})
	if res.StatusCode != 201 {
		t.Fatalf("ﬀ@x.test: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "org admin of A", "POST", "/api/organizations/"+f.orgA.ID+"/users", map[string]any{"email": "FF@x.test", "name": "Ff"}); res.StatusCode != 409 {
		t.Errorf("FF@x.test after ﬀ@x.test: %d, want 409", res.StatusCode)
	}
}

func TestCustomFieldsThroughTheAPI(t *testing.T) {
	f := newOrgFixture(t)
	base := "/api/organizations/" + f.orgA.ID + "/fields"
	res, field := f.as(t, "org admin of A", "POST", base, map[string]any{"name": "Setor", "type": "choice", "required": true, "options": []string{"RH", "TI"}})
	if res.StatusCode != 201 || field["type"] != "choice" || res.Header.Get("Location") != base+"/"+field["id"].(string) {
		t.Fatalf("create field: %d %v", res.StatusCode, field)
	}
	id := field["id"].(string)
	for _, bad := range []any{
		map[string]any{"name": "X", "type": "text", "org_id": f.orgB.ID},
		map[string]any{"name": "X", "Type": "text"},
		map[string]any{"name": "X", "type": 1},
	} {
		if res, body := f.as(t, "org admin of A", "POST", base, bad); res.StatusCode != 400 {
			t.Errorf("%v: %d %v, want 400", bad, res.StatusCode, body)
		}
	}
	res, body := f.as(t, "org admin of A", "POST", base, map[string]any{"name": "X", "type": "colour"})
	if res.StatusCode != 422 || body["errors"] == nil {
		t.Errorf("unknown type: %d %v", res.StatusCode, body)
	}
	if res, _ := f.as(t, "org admin of A", "POST", base, map[string]any{"name": "Setor", "type": "text"}); res.StatusCode != 409 {
		t.Errorf("duplicate name: %d, want 409", res.StatusCode)
	}

	users := "/api/organizations/" + f.orgA.ID + "/users"
	res, body = f.as(t, "org admin of A", "POST", users, map[string]any{"email": "x@acme.test", "name": "X"})
	if res.StatusCode != 422 || !strings.Contains(fmt.Sprint(body["errors"]), "fields."+id) {
		t.Errorf("a user without the required field: %d %v", res.StatusCode, body)
	}
	res, body = f.as(t, "org admin of A", "POST", users, map[string]any{"email": "x@acme.test", "name": "X", "fields": map[string]any{id: "Financeiro"}})
	if res.StatusCode != 422 {
		t.Errorf("a value that is not a choice: %d %v", res.StatusCode, body)
	}
	_, rh := f.as(t, "org admin of A", "POST", users, map[string]any{"email": "rh@acme.test", "name": "R", "fields": map[string]any{id: "RH"}})
	f.as(t, "org admin of A", "POST", users, map[string]any{"email": "ti@acme.test", "name": "T", "fields": map[string]any{id: "TI"}})
	res, list := f.as(t, "org admin of A", "GET", users+"?field."+id+"=RH", nil)
	items, _ := list["items"].([]any)
	if res.StatusCode != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != rh["id"] {
		t.Errorf("filter by field: %d %v", res.StatusCode, list)
	}
	if fields := items[0].(map[string]any)["fields"].(map[string]any); fields[id] != "RH" {
		t.Errorf("the listed user's fields: %v", fields)
	}

	// Another organization's admin cannot see or touch the field.
	f.addUser(t, "org admin of B", f.orgB.ID, identity.PermOrgAdmin)
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if res, _ := f.as(t, "org admin of B", m, base+"/"+id, map[string]any{"name": "Mine"}); res.StatusCode != 404 {
			t.Errorf("%s of another organization's field: %d, want 404", m, res.StatusCode)
		}
		if res, _ := f.as(t, "org admin of B", m, "/api/organizations/"+f.orgB.ID+"/fields/"+id, map[string]any{"name": "Mine"}); res.StatusCode != 404 {
			t.Errorf("%s of a field through the wrong organization: %d, want 404", m, res.StatusCode)
		}
	}
	res, body = f.as(t, "org admin of A", "PATCH", base+"/"+id, map[string]any{"name": "Departamento", "options": []string{"RH", "TI", "Jurídico"}})
	if res.StatusCode != 200 || body["name"] != "Departamento" || len(body["options"].([]any)) != 3 {
		t.Errorf("update: %d %v", res.StatusCode, body)
	}
	if res, _ := f.as(t, "org admin of A", "PATCH", base+"/"+id, map[string]any{"type": "text"}); res.StatusCode != 400 {
		t.Errorf("changing the type: %d, want 400", res.StatusCode)
	}
	if res, _ := f.as(t, "org admin of A", "DELETE", base+"/"+id, nil); res.StatusCode != 204 {
		t.Errorf("delete: %d", res.StatusCode)
	}
	_, got := f.as(t, "org admin of A", "GET", "/api/users/"+rh["id"].(string), nil)
	if fields := got["fields"].(map[string]any); len(fields) != 0 {
		t.Errorf("values survive their field: %v", fields)
	}
	if res, _ := f.as(t, "org admin of A", "GET", base+"/"+id, nil); res.StatusCode != 404 {
		t.Errorf("a deleted field: %d, want 404", res.StatusCode)
	}
}

// AC-03: PATCH binds only name, e-mail and field values; anything else is refused whole.
func TestUserPatchRefusesMassAssignment(t *testing.T) {
	f := newOrgFixture(t)
	before, err := f.ids.UserByEmail(context.Background(), memberAEmail)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"role":"admin"}`, `{"Role":"admin"}`, `{"ROLE":"admin"}`, `{"org_id":"` + f.orgB.ID + `"}`,
		`{"permissions":["org:admin"]}`, `{"active":false}`, `{"password_hash":"x"}`, `{"mfa_enabled":false}`,
		`{"Name":"Eve"}`, `{"name":"Eve","name":"Ann"}`, `{"name":"Eve"}{}`, `{"email_verified":true}`,
	} {
		for _, actor := range []string{"member of A", "org admin of A"} {
			path := "/api/users/me"
			if actor != "member of A" {
				path = "/api/users/" + before.ID
			}
			res, got := f.as(t, actor, "PATCH", path, rawJSON(body))
			if res.StatusCode != 400 {
				t.Errorf("%s PATCH %s: %d %v, want 400", actor, body, res.StatusCode, got)
			}
		}
	}
	after, _ := f.ids.UserByEmail(context.Background(), memberAEmail)
	if after.Name != before.Name || !slices.Equal(after.Permissions, before.Permissions) || after.OrgID != before.OrgID || !after.Active {
		t.Errorf("the user changed: %+v", after)
	}
}

func TestUsersChangeTheirOwnNameOnly(t *testing.T) {
	f := newOrgFixture(t)
	res, body := f.as(t, "member of A", "PATCH", "/api/users/me", map[string]any{"name": "Renamed"})
	if res.StatusCode != 200 || body["name"] != "Renamed" {
		t.Errorf("own name: %d %v", res.StatusCode, body)
	}
	if res, _ := f.as(t, "member of A", "GET", "/api/users/me", nil); res.StatusCode != 200 {
		t.Errorf("GET /api/users/me: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "member of A", "PATCH", "/api/users/me", map[string]any{"email": "other@acme.test"}); res.StatusCode != 403 {
		t.Errorf("own e-mail: %d, want 403", res.StatusCode)
	}
	if res, _ := f.as(t, "member of A", "PATCH", "/api/users/"+f.userID(t, adminAEmail), map[string]any{"name": "X"}); res.StatusCode != 403 {
		t.Errorf("another user's name: %d, want 403", res.StatusCode)
	}
	if res, _ := f.as(t, "member of B", "PATCH", "/api/users/"+f.userID(t, memberAEmail), map[string]any{"name": "X"}); res.StatusCode != 404 {
		t.Errorf("another organization's user: %d, want 404", res.StatusCode)
	}
	if res, _ := f.as(t, "client credentials", "GET", "/api/users/me", nil); res.StatusCode != 403 {
		t.Errorf("a client's token as a user (AC-06): %d, want 403", res.StatusCode)
	}
}

// AC-04: nobody grants what they lack, changes their own permissions, grants platform
// permissions without platform:admin, or removes an organization's last administrator.
func TestPermissionChangesCannotEscalate(t *testing.T) {
	f := newOrgFixture(t)
	member := f.userID(t, memberAEmail)
	put := func(actor, user string, perms ...string) int {
		res, _ := f.as(t, actor, "PUT", "/api/users/"+user+"/permissions", map[string]any{"permissions": append([]string{}, perms...)})
		return res.StatusCode
	}
	writer := f.addUser(t, "writer of A", f.orgA.ID, identity.PermUsersWrite)
	for _, tc := range []struct {
		name, actor, user string
		perms             []string
		want              int
	}{
		{"an org admin grants an organization permission", "org admin of A", member, []string{"users:read", "results:read"}, 204},
		{"an org admin grants support", "org admin of A", member, []string{"support"}, 403},
		{"an org admin grants platform:admin", "org admin of A", member, []string{"platform:admin"}, 403},
		{"a users:write holder changes permissions", "writer of A", member, []string{"users:read"}, 403},
		{"self-promotion", "writer of A", writer.ID, []string{"users:write", "org:admin"}, 403},
		{"an org admin changes their own", "org admin of A", f.userID(t, adminAEmail), []string{"org:admin", "results:read"}, 403},
		{"the last administrator is demoted", "platform admin", f.userID(t, adminAEmail), []string{"users:read"}, 409},
		{"another organization's user", "org admin of A", f.userID(t, memberBEmail), []string{"users:read"}, 404},
		{"an unknown permission", "org admin of A", member, []string{"root"}, 422},
		{"a platform admin grants support to an organization user", "platform admin", member, []string{"support"}, 204},
		{"an org admin takes away support", "org admin of A", member, nil, 403},
	} {
		if got := put(tc.actor, tc.user, tc.perms...); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if res, _ := f.as(t, "org admin of A", "PUT", "/api/users/"+member+"/permissions", map[string]any{}); res.StatusCode != 422 {
		t.Errorf("no permissions member: %d, want 422", res.StatusCode)
	}
	// A second administrator lets the first be demoted.
	if got := put("org admin of A", writer.ID, "org:admin"); got != 204 {
		t.Fatalf("promote: %d", got)
	}
	if got := put("platform admin", f.userID(t, adminAEmail), "users:read"); got != 204 {
		t.Errorf("demote with another administrator: %d", got)
	}
}

// AC-05: an administrator whose org:admin was taken away cannot change permissions, expire a
// password or deactivate anyone with the token they still hold (those routes re-read the caller);
// routes that trust the token's claims accept it until it expires, and the next token (a refresh
// or a login) no longer carries the permission.
func TestSensitiveUserActionsJudgeTheCallersCurrentPermissions(t *testing.T) {
	f := newOrgFixture(t)
	member := f.userID(t, memberAEmail)
	second := f.addUser(t, "second admin of A", f.orgA.ID, identity.PermOrgAdmin)
	if res, _ := f.as(t, "second admin of A", "GET", "/api/users/"+member, nil); res.StatusCode != 200 {
		t.Fatalf("the second administrator reads a user: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "org admin of A", "PUT", "/api/users/"+second.ID+"/permissions",
		map[string]any{"permissions": []string{"users:read"}}); res.StatusCode != 204 {
		t.Fatalf("demote the second administrator: %d", res.StatusCode)
	}
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/users/" + member + "/permissions", map[string]any{"permissions": []string{"users:read", "results:read"}}},
		{"POST", "/api/users/" + member + "/password/expire", nil},
		{"POST", "/api/users/" + member + "/deactivate", nil},
	} {
		if res, _ := f.as(t, "second admin of A", tc.method, tc.path, tc.body); res.StatusCode != 403 {
			t.Errorf("%s %s with the demoted administrator's token: %d, want 403", tc.method, tc.path, res.StatusCode)
		}
	}
	if u, err := f.ids.User(context.Background(), member); err != nil || !u.Active || u.PasswordExpired || slices.Contains(u.Permissions, "results:read") {
		t.Errorf("the member was changed: %+v %v", u, err)
	}
	// A claim-based route trusts the token until it expires (its lifetime bounds the delay).
	if res, _ := f.as(t, "second admin of A", "GET", "/api/users/"+member, nil); res.StatusCode != 200 {
		t.Errorf("a claim-based read with the old token: %d, want 200 until it expires", res.StatusCode)
	}
	tok, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), second.Email, userPassword)
	if err != nil {
		t.Fatal(err)
	}
	f.tokens["second admin of A, new token"] = tok.AccessToken
	if res, _ := f.as(t, "second admin of A, new token", "PUT", "/api/users/"+member+"/permissions",
		map[string]any{"permissions": []string{"users:read"}}); res.StatusCode != 403 {
		t.Errorf("a permission change with a new token: %d, want 403", res.StatusCode)
	}
	// The other way: a permission granted since the token was issued counts at once here.
	if res, _ := f.as(t, "org admin of A", "PUT", "/api/users/"+second.ID+"/permissions",
		map[string]any{"permissions": []string{"org:admin"}}); res.StatusCode != 204 {
		t.Fatalf("promote again: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "second admin of A, new token", "PUT", "/api/users/"+member+"/permissions",
		map[string]any{"permissions": []string{"users:read"}}); res.StatusCode != 204 {
		t.Errorf("a permission change after being promoted again: %d, want 204", res.StatusCode)
	}
}

// AC-04's property: random grants and revocations by callers with random permissions never
// leave a user with a permission that was neither theirs before nor held by the caller.
func TestRandomPermissionChangesNeverExceedTheGranters(t *testing.T) {
	f := newOrgFixture(t)
	orgPerms := []string{"org:admin", "users:read", "users:write", "groups:read", "groups:write", "results:read", "results:write"}
	all := append(slices.Clone(orgPerms), "support", "tests:write")
	rng := rand.New(rand.NewPCG(1, 2))
	subset := func(from []string) []string {
		var out []string
		for _, p := range from {
			if rng.IntN(3) == 0 {
				out = append(out, p)
			}
		}
		return out
	}
	type granter struct {
		actor string
		perms []string
	}
	granters := []granter{{"org admin of A", []string{"org:admin"}}}
	for i := range 4 {
		perms := append(subset(orgPerms[1:]), "org:admin")
		if i%2 == 1 {
			perms = subset(orgPerms[1:])
		}
		actor := fmt.Sprintf("granter %d", i)
		f.addUser(t, actor, f.orgA.ID, perms...)
		granters = append(granters, granter{actor, perms})
	}
	targets := make([]string, 5)
	for i := range targets {
		u, err := f.ids.CreateUser(context.Background(), identity.NewUser{OrgID: f.orgA.ID, Email: fmt.Sprintf("target%d@acme.test", i), Name: "T", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = u.ID
	}
	effective := func(g granter) []string {
		if slices.Contains(g.perms, "org:admin") {
			return orgPerms
		}
		return g.perms
	}
	outcomes := map[int]int{}
	for range 150 {
		g := granters[rng.IntN(len(granters))]
		target := targets[rng.IntN(len(targets))]
		before, _ := f.ids.User(context.Background(), target)
		want := subset(all)
		res, body := f.as(t, g.actor, "PUT", "/api/users/"+target+"/permissions", map[string]any{"permissions": append([]string{}, want...)})
		after, _ := f.ids.User(context.Background(), target)
		for _, p := range after.Permissions {
			if !slices.Contains(before.Permissions, p) && !slices.Contains(effective(g), p) {
				t.Fatalf("%s (holding %v) gave %s to a user: %d %v", g.actor, g.perms, p, res.StatusCode, body)
			}
		}
		for _, p := range before.Permissions {
			if !slices.Contains(after.Permissions, p) && !slices.Contains(effective(g), p) {
				t.Fatalf("%s (holding %v) took %s from a user", g.actor, g.perms, p)
			}
		}
		if res.StatusCode != 204 && res.StatusCode != 403 {
			t.Fatalf("%s: %d %v", g.actor, res.StatusCode, body)
		}
		outcomes[res.StatusCode]++
	}
	if outcomes[204] < 15 || outcomes[403] < 15 {
		t.Errorf("outcomes %v: the sequence exercised too few grants or refusals", outcomes)
	}
}

func TestDeactivateUserEndsTheirSessions(t *testing.T) {
	f := newOrgFixture(t)
	member := f.userID(t, memberAEmail)
	if res, _ := f.as(t, "member of A", "POST", "/api/users/"+member+"/deactivate", nil); res.StatusCode != 403 {
		t.Errorf("self-deactivation: %d, want 403", res.StatusCode)
	}
	if res, _ := f.as(t, "org admin of A", "POST", "/api/users/"+f.userID(t, memberBEmail)+"/deactivate", nil); res.StatusCode != 404 {
		t.Errorf("another organization's user: %d, want 404", res.StatusCode)
	}
	if res, _ := f.as(t, "platform admin", "POST", "/api/users/"+f.userID(t, adminAEmail)+"/deactivate", nil); res.StatusCode != 409 {
		t.Errorf("the last administrator: %d, want 409", res.StatusCode)
	}
	if res, body := f.as(t, "org admin of A", "POST", "/api/users/"+member+"/deactivate", nil); res.StatusCode != 204 {
		t.Fatalf("deactivate: %d %v", res.StatusCode, body)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), memberAEmail, userPassword); err == nil {
		t.Error("a deactivated user logged in")
	}
	if err := f.revoked.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := f.me(t, f.tokens["member of A"]); res.StatusCode != 401 {
		t.Errorf("the deactivated user's token still works: %d", res.StatusCode)
	}
	_, body := f.as(t, "org admin of A", "GET", "/api/users/"+member, nil)
	if body["active"] != false {
		t.Errorf("a deactivated user reads back %v", body)
	}
}

func TestPlatformUserListFilters(t *testing.T) {
	f := newOrgFixture(t)
	list := func(actor, query string) (int, []string) {
		res, body := f.as(t, actor, "GET", "/api/users?"+query, nil)
		var emails []string
		items, _ := body["items"].([]any)
		for _, it := range items {
			emails = append(emails, it.(map[string]any)["email"].(string))
		}
		return res.StatusCode, emails
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=" + url.QueryEscape("MEMBER OF"), []string{memberAEmail, memberBEmail}},
		{"org=" + f.orgB.ID, []string{memberBEmail}},
		{"permission=org:admin", []string{adminAEmail}},
		{"permission=support&active=true", []string{"user4@example.test"}},
		{"q=acme.test&org=" + f.orgA.ID, []string{"ana@acme.test"}},
	} {
		for _, actor := range []string{"platform admin", "support"} {
			status, got := list(actor, tc.query)
			slices.Sort(got)
			if status != 200 || !slices.Equal(got, tc.want) {
				t.Errorf("%s ?%s: %d %v, want %v", actor, tc.query, status, got, tc.want)
			}
		}
	}
	for _, q := range []string{"active=maybe", "permission=root", "org=nope", "limit=501", "q=" + url.QueryEscape("a\u202e")} {
		if status, _ := list("platform admin", q); status != 422 {
			t.Errorf("?%s: %d, want 422", q, status)
		}
	}
	if status, _ := list("org admin of A", ""); status != 403 {
		t.Errorf("an org admin lists every organization's users: %d, want 403", status)
	}
}

// AC-02: the tenant comes from the token; headers and query parameters naming another
// organization change nothing.
func TestTenantComesOnlyFromTheToken(t *testing.T) {
	f := newOrgFixture(t)
	res, body := f.api(t, "GET", "/api/organizations/"+f.orgA.ID+"/users?org_id="+f.orgB.ID+"&org="+f.orgB.ID, nil, nil,
		"Authorization", "Bearer "+f.tokens["org admin of A"], "X-Org-Id", f.orgB.ID)
	if res.StatusCode != 200 {
		t.Fatalf("%d %v", res.StatusCode, body)
	}
	for _, it := range body["items"].([]any) {
		if org := it.(map[string]any)["org_id"]; org != f.orgA.ID {
			t.Errorf("a user of %v listed for organization A", org)
		}
	}
	res, _ = f.api(t, "GET", "/api/organizations/"+f.orgB.ID+"/users", nil, nil,
		"Authorization", "Bearer "+f.tokens["org admin of A"], "X-Org-Id", f.orgB.ID)
	if res.StatusCode != 404 {
		t.Errorf("organization B's users with X-Org-Id B: %d, want 404", res.StatusCode)
	}
}
