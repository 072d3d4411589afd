package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
)

// The callers of the authorization matrix (SECURITY.md AC-01), besides "platform admin",
// "support", "org admin of A" and "client credentials" of newOrgFixture: a user of A who
// manages the target group of column A and holds no permission, and a plain user of A.
var matrixActors = []string{"client credentials", "plain member", "group manager", "support", "org admin of A", "platform admin"}

// authzMatrix is the expected status of every resource-API route (every /api/ route of
// openapi.yaml but the account API, /api/auth/) for each caller, as "A A2 B": on a fresh target
// in organization A (for groups, one the group manager manages), on one of A that the manager
// does not manage, and on one of organization B. "A B" means A2 answers like A. A route that
// openapi.yaml lists and this table does not fails the test, and so does a missing caller.
var authzMatrix = map[string]map[string]string{
	"POST /api/organizations": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "403 403", "platform admin": "201 201"},
	"GET /api/organizations": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "403 403", "platform admin": "200 200"},
	"GET /api/organizations/{org}": {
		"client credentials": "403 403", "plain member": "200 404", "group manager": "200 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},
	"PATCH /api/organizations/{org}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},
	"POST /api/organizations/{org}/deactivate": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "403 404", "platform admin": "204 204"},

	"POST /api/organizations/{org}/fields": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "201 404", "platform admin": "201 201"},
	"GET /api/organizations/{org}/fields": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "200 200", "org admin of A": "200 404", "platform admin": "200 200"},
	"GET /api/organizations/{org}/fields/{field}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "200 200", "org admin of A": "200 404", "platform admin": "200 200"},
	"PATCH /api/organizations/{org}/fields/{field}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},
	"DELETE /api/organizations/{org}/fields/{field}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "204 404", "platform admin": "204 204"},

	"POST /api/organizations/{org}/users": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "201 404", "platform admin": "201 201"},
	"GET /api/organizations/{org}/users": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "200 200", "org admin of A": "200 404", "platform admin": "200 200"},
	"GET /api/users": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "200 200", "org admin of A": "403 403", "platform admin": "200 200"},
	"GET /api/users/{user}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "200 200", "org admin of A": "200 404", "platform admin": "200 200"},
	"PATCH /api/users/{user}": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "403 403", "org admin of A": "200 404", "platform admin": "200 200"},
	"PUT /api/users/{user}/permissions": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "403 403", "org admin of A": "204 404", "platform admin": "204 204"},
	"POST /api/users/{user}/password/expire": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "403 403", "org admin of A": "204 404", "platform admin": "204 204"},
	"POST /api/users/{user}/deactivate": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "403 403", "org admin of A": "204 404", "platform admin": "204 204"},

	"POST /api/organizations/{org}/groups": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "201 404", "platform admin": "201 201"},
	"GET /api/organizations/{org}/groups": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},
	"GET /api/groups/{group}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "200 403 404",
		"support": "404 404 404", "org admin of A": "200 200 404", "platform admin": "200 200 200"},
	"GET /api/groups/{group}/members": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "200 403 404",
		"support": "404 404 404", "org admin of A": "200 200 404", "platform admin": "200 200 200"},
	"PATCH /api/groups/{group}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "200 200 404", "platform admin": "200 200 200"},
	"DELETE /api/groups/{group}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "204 204 404", "platform admin": "204 204 204"},
	"PUT /api/groups/{group}/members/{user}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "204 403 404",
		"support": "404 404 404", "org admin of A": "204 204 404", "platform admin": "204 204 204"},
	"DELETE /api/groups/{group}/members/{user}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "204 403 404",
		"support": "404 404 404", "org admin of A": "204 204 404", "platform admin": "204 204 204"},
	"PUT /api/groups/{group}/managers/{user}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "204 204 404", "platform admin": "204 204 204"},
	"DELETE /api/groups/{group}/managers/{user}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "204 204 404", "platform admin": "204 204 204"},
	"GET /api/users/{user}/groups": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},
	"GET /api/users/{user}/managed-groups": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "200 404", "platform admin": "200 200"},

	// The catalogue is platform-wide: the columns do not apply. Only platform:admin and
	// tests:write change it; every user reads it.
	"POST /api/tests": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "403 403", "platform admin": "201 201"},
	"GET /api/tests": {
		"client credentials": "403 403", "plain member": "200 200", "group manager": "200 200",
		"support": "200 200", "org admin of A": "200 200", "platform admin": "200 200"},
	"GET /api/tests/{test}": {
		"client credentials": "403 403", "plain member": "200 200", "group manager": "200 200",
		"support": "200 200", "org admin of A": "200 200", "platform admin": "200 200"},
	"PATCH /api/tests/{test}": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "403 403", "platform admin": "200 200"},
	"POST /api/tests/{test}/deactivate": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "403 403", "platform admin": "204 204"},

	// Results (docs/assessment.md): column A is a result attached to a group the manager
	// manages, A2 one attached to a group of A they do not manage, B one of organization B.
	// Managers read, never write; org:admin and support see no results; support, who belongs
	// to no organization, finds none (404); the bulk request names a foreign id in a 422.
	"POST /api/results": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "404 404", "org admin of A": "403 403", "platform admin": "201 201"},
	"GET /api/results/{result}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "200 403 404",
		"support": "404 404 404", "org admin of A": "403 403 404", "platform admin": "200 200 200"},
	"PATCH /api/results/{result}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "403 403 404", "platform admin": "200 200 200"},
	"DELETE /api/results/{result}": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "403 403 404", "platform admin": "204 204 204"},
	"PUT /api/results/{result}/feedback-date": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "403 403 404",
		"support": "404 404 404", "org admin of A": "403 403 404", "platform admin": "204 204 204"},
	"POST /api/results/feedback-date": {
		"client credentials": "403 403 403", "plain member": "403 403 422", "group manager": "403 403 422",
		"support": "422 422 422", "org admin of A": "403 403 422", "platform admin": "204 204 204"},
	"GET /api/users/{user}/results": {
		"client credentials": "403 403", "plain member": "403 404", "group manager": "403 404",
		"support": "404 404", "org admin of A": "403 404", "platform admin": "200 200"},
	"GET /api/groups/{group}/results": {
		"client credentials": "403 403 403", "plain member": "403 403 404", "group manager": "200 403 404",
		"support": "404 404 404", "org admin of A": "403 403 404", "platform admin": "200 200 200"},

	// The audit log: org:admin reads their organization's, platform:admin everyone's.
	"GET /api/audit": {
		"client credentials": "403 403", "plain member": "403 403", "group manager": "403 403",
		"support": "403 403", "org admin of A": "200 200", "platform admin": "200 200"},
}

// matrixBodies are valid bodies of the routes that take one; n makes names and e-mails unique.
var matrixBodies = map[string]func(n int) any{
	"POST /api/organizations":                       func(n int) any { return map[string]any{"name": fmt.Sprintf("Org %d", n)} },
	"PATCH /api/organizations/{org}":                func(n int) any { return map[string]any{"name": fmt.Sprintf("Renamed %d", n)} },
	"POST /api/organizations/{org}/fields":          func(n int) any { return map[string]any{"name": fmt.Sprintf("Field %d", n), "type": "text"} },
	"PATCH /api/organizations/{org}/fields/{field}": func(n int) any { return map[string]any{"name": fmt.Sprintf("Field %d", n)} },
	"POST /api/organizations/{org}/users": func(n int) any {
		return map[string]any{"email": fmt.Sprintf("new%d@matrix.test", n), "name": "New"}
	},
	"PATCH /api/users/{user}":              func(n int) any { return map[string]any{"name": fmt.Sprintf("Name %d", n)} },
	"PUT /api/users/{user}/permissions":    func(int) any { return map[string]any{"permissions": []string{"users:read"}} },
	"POST /api/organizations/{org}/groups": func(n int) any { return map[string]any{"name": fmt.Sprintf("Group %d", n)} },
	"PATCH /api/groups/{group}":            func(n int) any { return map[string]any{"name": fmt.Sprintf("Group %d", n)} },
	"POST /api/tests": func(n int) any {
		return map[string]any{"name": fmt.Sprintf("Test %d", n), "version": "1", "score_schema": matrixScoreSchema}
	},
	"PATCH /api/tests/{test}":                 func(n int) any { return map[string]any{"name": fmt.Sprintf("Test %d", n)} },
	"PATCH /api/results/{result}":             func(n int) any { return map[string]any{"answers": map[string]any{"q1": n}} },
	"PUT /api/results/{result}/feedback-date": func(int) any { return map[string]any{"feedback_at": "2026-03-01T12:00:00Z"} },
}

// matrixRecordBodies are valid bodies that name records: fresh ones of the cell's column, made
// like matrixTarget makes those of the path.
var matrixRecordBodies = map[string]func(f *orgFixture, t *testing.T, column string, n int, manager string) any{
	"POST /api/results": func(f *orgFixture, t *testing.T, column string, n int, manager string) any {
		g := f.matrixGroup(t, column, n, manager)
		u := f.matrixMember(t, g, n)
		return map[string]any{"user_id": u, "test_id": f.matrixTest(t, n), "group_id": g.ID,
			"scores": map[string]any{"score": n}, "applied_at": f.clock.Now().Format(time.RFC3339Nano)}
	},
	"POST /api/results/feedback-date": func(f *orgFixture, t *testing.T, column string, n int, manager string) any {
		return map[string]any{"result_ids": []string{f.matrixResult(t, column, n, manager)}, "feedback_at": "2026-03-01T12:00:00Z"}
	},
}

// matrixScoreSchema is the score schema of the matrix's tests.
var matrixScoreSchema = map[string]any{"type": "object", "properties": map[string]any{"score": map[string]any{"type": "integer"}}}

// resourceRoutes lists the operations of openapi.yaml under /api/ but the account API's.
func resourceRoutes(t *testing.T) []string {
	t.Helper()
	keys := slices.DeleteFunc(openAPIOperations(t), func(op string) bool {
		_, path, _ := strings.Cut(op, " ")
		return !strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/api/auth/")
	})
	// Deactivating organization A ends its users' sessions: it goes last.
	slices.SortFunc(keys, func(a, b string) int {
		last := "POST /api/organizations/{org}/deactivate"
		switch {
		case a == last:
			return 1
		case b == last:
			return -1
		}
		return strings.Compare(a, b)
	})
	return keys
}

// matrixTarget makes fresh records for the path parameters of one cell, so that no cell
// depends on what another did: column "A" and "A2" in organization A (a group of "A" managed
// by the group manager), "B" in organization B.
func (f *orgFixture) matrixTarget(t *testing.T, pattern, column string, n int, manager string) string {
	t.Helper()
	ctx := context.Background()
	org := f.orgA.ID
	if column == "B" {
		org = f.orgB.ID
	}
	path := strings.ReplaceAll(pattern, "{org}", org)
	if strings.Contains(path, "{user}") {
		u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: org, Email: fmt.Sprintf("target%d@matrix.test", n), Name: "Target", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		path = strings.ReplaceAll(path, "{user}", u.ID)
	}
	if strings.Contains(path, "{group}") {
		path = strings.ReplaceAll(path, "{group}", f.matrixGroup(t, column, n, manager).ID)
	}
	if strings.Contains(path, "{test}") {
		path = strings.ReplaceAll(path, "{test}", f.matrixTest(t, n))
	}
	if strings.Contains(path, "{result}") {
		path = strings.ReplaceAll(path, "{result}", f.matrixResult(t, column, n, manager))
	}
	if strings.Contains(path, "{field}") {
		fd, err := f.ids.CreateField(ctx, org, identity.NewField{Name: fmt.Sprintf("Target field %d", n), Type: identity.FieldText})
		if err != nil {
			t.Fatal(err)
		}
		path = strings.ReplaceAll(path, "{field}", fd.ID)
	}
	return path
}

// matrixGroup is a fresh group of the column's organization, managed by manager in column A.
func (f *orgFixture) matrixGroup(t *testing.T, column string, n int, manager string) identity.Group {
	t.Helper()
	ctx := context.Background()
	org := f.orgA.ID
	if column == "B" {
		org = f.orgB.ID
	}
	name := fmt.Sprintf("Target group %d", n)
	g, err := f.ids.CreateGroup(ctx, org, identity.GroupInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	if column == "A" {
		if err := f.ids.AddGroupUser(ctx, org, g.ID, manager, identity.RoleManager); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// matrixMember is a fresh user of the group's organization and a member of it; it returns the id.
func (f *orgFixture) matrixMember(t *testing.T, g identity.Group, n int) string {
	t.Helper()
	ctx := context.Background()
	u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: g.OrgID, Email: fmt.Sprintf("evaluated%d@matrix.test", n), Name: "Evaluated", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ids.AddGroupUser(ctx, g.OrgID, g.ID, u.ID, identity.RoleMember); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// matrixTest is a fresh active test of the catalogue; it returns the id.
func (f *orgFixture) matrixTest(t *testing.T, n int) string {
	t.Helper()
	schema, _ := json.Marshal(matrixScoreSchema)
	tt, err := f.assess.CreateTest(context.Background(), f.platformActor(t),
		assessment.NewTest{Name: fmt.Sprintf("Target test %d", n), Version: "1", ScoreSchema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return tt.ID
}

// matrixResult is a fresh result of a member of a fresh group of the column (see matrixGroup);
// it returns the id.
func (f *orgFixture) matrixResult(t *testing.T, column string, n int, manager string) string {
	t.Helper()
	g := f.matrixGroup(t, column, n, manager)
	r, err := f.assess.CreateResult(context.Background(), f.platformActor(t), assessment.NewResult{
		OrgID: g.OrgID, UserID: f.matrixMember(t, g, n), TestID: f.matrixTest(t, n), GroupID: g.ID,
		Scores: json.RawMessage(`{"score":1}`), Answers: json.RawMessage(`{"q1":"a"}`), AppliedAt: f.clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// platformActor is the fixture's platform administrator as the assessment service sees them.
func (f *orgFixture) platformActor(t *testing.T) assessment.Actor {
	return assessment.Actor{UserID: f.userID(t, platformEmail), Perms: []string{identity.PermPlatformAdmin}}
}

func TestAuthorizationMatrix(t *testing.T) {
	f := newOrgFixture(t)
	f.addUser(t, "plain member", f.orgA.ID)
	manager := f.addUser(t, "group manager", f.orgA.ID)
	routes := resourceRoutes(t)
	for key := range authzMatrix {
		if !slices.Contains(routes, key) {
			t.Errorf("the matrix has %s, which openapi.yaml does not list", key)
		}
	}
	n := 0
	for _, key := range routes {
		row, ok := authzMatrix[key]
		if !ok {
			t.Errorf("%s has no row in the authorization matrix", key)
			continue
		}
		method, pattern, _ := strings.Cut(key, " ")
		for _, actor := range matrixActors {
			cell, ok := row[actor]
			if !ok {
				t.Errorf("%s: no expectation for %s", key, actor)
				continue
			}
			want := strings.Fields(cell)
			if len(want) == 2 {
				want = []string{want[0], want[0], want[1]}
			}
			for i, column := range []string{"A", "A2", "B"} {
				n++
				path := f.matrixTarget(t, pattern, column, n, manager.ID)
				var body any
				if mk, ok := matrixBodies[key]; ok {
					body = mk(n)
				}
				if mk, ok := matrixRecordBodies[key]; ok {
					body = mk(f, t, column, n, manager.ID)
				}
				res, got := f.as(t, actor, method, path, body)
				if fmt.Sprint(res.StatusCode) != want[i] {
					t.Errorf("%s as %s on %s: %d %v, want %s", key, actor, column, res.StatusCode, got, want[i])
				}
				if res.StatusCode == 404 && got["id"] != nil {
					t.Errorf("%s as %s on %s: a 404 carries the record", key, actor, column)
				}
			}
		}
	}
}
