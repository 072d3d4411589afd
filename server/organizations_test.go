package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/portaria/portaria/identity"
)

// orgFixture has two organizations and a token for each kind of caller.
type orgFixture struct {
	*loginFixture
	orgA, orgB identity.Organization
	tokens     map[string]string
}

func newOrgFixture(t *testing.T) *orgFixture {
	t.Helper()
	f := &orgFixture{loginFixture: newLoginFixture(t), tokens: map[string]string{}}
	f.orgA = f.org
	ctx := context.Background()
	var err error
	if f.orgB, err = f.ids.CreateOrganization(ctx, "Beta"); err != nil {
		t.Fatal(err)
	}
	users := []struct {
		actor, org string
		perms      []string
	}{
		{"platform admin", "", []string{identity.PermPlatformAdmin}},
		{"org admin of A", f.orgA.ID, []string{identity.PermOrgAdmin}},
		{"member of A", f.orgA.ID, []string{"users:read"}},
		{"member of B", f.orgB.ID, nil},
		{"support", "", []string{identity.PermSupport}},
	}
	for i, u := range users {
		email := fmt.Sprintf("user%d@example.test", i)
		if _, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: u.org, Email: email, Name: u.actor, Password: userPassword,
			Active: true, EmailVerified: true, Permissions: u.perms}); err != nil {
			t.Fatal(err)
		}
		tok, err := f.oauth2Config.PasswordCredentialsToken(ctx, email, userPassword)
		if err != nil {
			t.Fatalf("%s: %v", u.actor, err)
		}
		f.tokens[u.actor] = tok.AccessToken
	}
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	machine := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret))
	f.tokens["client credentials"] = machine["access_token"].(string)
	return f
}

func (f *orgFixture) as(t *testing.T, actor, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	tok, ok := f.tokens[actor]
	if !ok {
		t.Fatalf("no actor %q", actor)
	}
	return f.api(t, method, path, body, nil, "Authorization", "Bearer "+tok)
}

func TestOrganizationAuthorizationMatrix(t *testing.T) {
	f := newOrgFixture(t)
	type want struct{ a, b int } // status on organization A, on organization B
	actors := []string{"client credentials", "support", "member of B", "member of A", "org admin of A", "platform admin"}
	routes := []struct {
		method, path string // %s is the target organization; routes without one ignore it
		body         any
		status       map[string]want
	}{
		{"POST", "/api/organizations", map[string]string{"name": "New"}, map[string]want{
			"client credentials": {403, 403}, "support": {403, 403}, "member of B": {403, 403},
			"member of A": {403, 403}, "org admin of A": {403, 403}, "platform admin": {201, 201},
		}},
		{"GET", "/api/organizations", nil, map[string]want{
			"client credentials": {403, 403}, "support": {403, 403}, "member of B": {403, 403},
			"member of A": {403, 403}, "org admin of A": {403, 403}, "platform admin": {200, 200},
		}},
		{"GET", "/api/organizations/%s", nil, map[string]want{
			"client credentials": {403, 403}, "support": {404, 404}, "member of B": {404, 200},
			"member of A": {200, 404}, "org admin of A": {200, 404}, "platform admin": {200, 200},
		}},
		{"PATCH", "/api/organizations/%s", map[string]string{"name": "Renamed"}, map[string]want{
			"client credentials": {403, 403}, "support": {404, 404}, "member of B": {404, 403},
			"member of A": {403, 404}, "org admin of A": {200, 404}, "platform admin": {200, 200},
		}},
		// Last: the platform admin's deactivations change what the others could see.
		{"POST", "/api/organizations/%s/deactivate", nil, map[string]want{
			"client credentials": {403, 403}, "support": {404, 404}, "member of B": {404, 403},
			"member of A": {403, 404}, "org admin of A": {403, 404}, "platform admin": {204, 204},
		}},
	}
	for _, rt := range routes {
		for _, actor := range actors {
			exp, ok := rt.status[actor]
			if !ok {
				t.Fatalf("%s %s: no expectation for %s", rt.method, rt.path, actor)
			}
			for i, org := range []identity.Organization{f.orgA, f.orgB} {
				path := rt.path
				if strings.Contains(path, "%s") {
					path = fmt.Sprintf(path, org.ID)
				}
				res, body := f.as(t, actor, rt.method, path, rt.body)
				status := exp.a
				if i == 1 {
					status = exp.b
				}
				if res.StatusCode != status {
					t.Errorf("%s %s as %s on %s: %d %v, want %d", rt.method, rt.path, actor, org.Name, res.StatusCode, body, status)
				}
				if res.StatusCode == 404 && body["id"] != nil {
					t.Errorf("%s %s as %s: a 404 carries the record", rt.method, rt.path, actor)
				}
			}
		}
	}
}

func TestOrganizationPagination(t *testing.T) {
	f := newOrgFixture(t)
	ctx := context.Background()
	for i := range 118 { // with Acme and Beta: 120
		if _, err := f.ids.CreateOrganization(ctx, fmt.Sprintf("Org %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	path := "/api/organizations?limit=50"
	pages := 0
	for {
		res, body := f.as(t, "platform admin", "GET", path, nil)
		if res.StatusCode != 200 {
			t.Fatalf("page %d: %d %v", pages, res.StatusCode, body)
		}
		pages++
		items := body["items"].([]any)
		for _, it := range items {
			id := it.(map[string]any)["id"].(string)
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
			if len(items) != 20 {
				t.Errorf("last page has %d items, want 20", len(items))
			}
			break
		}
		if len(items) != 50 {
			t.Errorf("page %d has %d items, want 50", pages, len(items))
		}
		if pages > 3 {
			t.Fatal("more than 3 pages")
		}
		path = "/api/organizations?limit=50&cursor=" + next.(string)
	}
	if pages != 3 || len(seen) != 120 {
		t.Errorf("%d pages, %d organizations; want 3 and 120", pages, len(seen))
	}
	res, body := f.as(t, "platform admin", "GET", "/api/organizations", nil)
	if res.StatusCode != 200 || len(body["items"].([]any)) != 50 {
		t.Errorf("default limit: %d, %d items", res.StatusCode, len(body["items"].([]any)))
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "cursor=%21%21", "cursor=YWNtZQ"} {
		res, body := f.as(t, "platform admin", "GET", "/api/organizations?"+q, nil)
		if res.StatusCode != 422 || body["errors"] == nil {
			t.Errorf("%s: %d %v, want 422 with errors", q, res.StatusCode, body)
		}
	}
}

func TestOrganizationBodiesAreStrict(t *testing.T) {
	f := newOrgFixture(t)
	for _, path := range []string{"/api/organizations", "/api/organizations/" + f.orgA.ID} {
		method := "POST"
		if path != "/api/organizations" {
			method = "PATCH"
		}
		for _, body := range []any{
			map[string]any{"name": "X", "active": false},
			map[string]any{"Name": "X"},
			map[string]any{"name": "X", "id": f.orgB.ID},
			map[string]any{"name": 7},
		} {
			res, got := f.as(t, "platform admin", method, path, body)
			if res.StatusCode != 400 {
				t.Errorf("%s %s %v: %d %v, want 400", method, path, body, res.StatusCode, got)
			}
		}
		res, got := f.as(t, "platform admin", method, path, map[string]any{"name": ""})
		errs, _ := got["errors"].([]any)
		if res.StatusCode != 422 || len(errs) != 1 || errs[0].(map[string]any)["field"] != "name" {
			t.Errorf("%s %s empty name: %d %v, want 422 on name", method, path, res.StatusCode, got)
		}
	}
	if o, err := f.ids.Organization(context.Background(), f.orgA.ID); err != nil || o.Name != f.orgA.Name || !o.Active {
		t.Errorf("organization changed: %+v, %v", o, err)
	}
}

func TestOrganizationCreateAndRename(t *testing.T) {
	f := newOrgFixture(t)
	res, body := f.as(t, "platform admin", "POST", "/api/organizations", map[string]string{"name": "Gamma"})
	if res.StatusCode != 201 || body["name"] != "Gamma" || body["active"] != true {
		t.Fatalf("create: %d %v", res.StatusCode, body)
	}
	id, _ := body["id"].(string)
	if loc := res.Header.Get("Location"); loc != "/api/organizations/"+id {
		t.Errorf("Location %q, want /api/organizations/%s", loc, id)
	}
	res, body = f.as(t, "platform admin", "GET", "/api/organizations/"+id, nil)
	if res.StatusCode != 200 || body["name"] != "Gamma" {
		t.Errorf("read: %d %v", res.StatusCode, body)
	}
	res, body = f.as(t, "org admin of A", "PATCH", "/api/organizations/"+f.orgA.ID, map[string]string{"name": "Acme SA"})
	if res.StatusCode != 200 || body["name"] != "Acme SA" {
		t.Errorf("rename: %d %v", res.StatusCode, body)
	}
	if _, body = f.as(t, "member of A", "GET", "/api/organizations/"+f.orgA.ID, nil); body["name"] != "Acme SA" {
		t.Errorf("read after rename: %v", body)
	}
}

func TestDeactivatedOrganizationIsHiddenButFromPlatformAdmins(t *testing.T) {
	f := newOrgFixture(t)
	path := "/api/organizations/" + f.orgA.ID
	if res, body := f.as(t, "platform admin", "POST", path+"/deactivate", nil); res.StatusCode != 204 {
		t.Fatalf("deactivate: %d %v", res.StatusCode, body)
	}
	res, body := f.as(t, "platform admin", "GET", path, nil)
	if res.StatusCode != 200 || body["active"] != false {
		t.Errorf("platform admin: %d %v, want 200 with active false", res.StatusCode, body)
	}
	for _, actor := range []string{"member of A", "org admin of A"} {
		if res, body := f.as(t, actor, "GET", path, nil); res.StatusCode != 404 || body["id"] != nil {
			t.Errorf("%s: %d %v, want 404", actor, res.StatusCode, body)
		}
		if res, _ := f.as(t, actor, "PATCH", path, map[string]string{"name": "Back"}); res.StatusCode != 404 {
			t.Errorf("%s rename: %d, want 404", actor, res.StatusCode)
		}
	}
	// Its users can no longer log in, and their sessions ended: the API refuses their access
	// tokens once its revocation set has refreshed; another organization's users are untouched.
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", userPassword); err == nil {
		t.Error("a user of a deactivated organization logged in")
	}
	if err := f.revoked.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := f.me(t, f.tokens["member of A"]); res.StatusCode != 401 {
		t.Errorf("a session of the deactivated organization still works: %d", res.StatusCode)
	}
	if res := f.me(t, f.tokens["member of B"]); res.StatusCode != 200 {
		t.Errorf("another organization's session must keep working: %d", res.StatusCode)
	}
}
