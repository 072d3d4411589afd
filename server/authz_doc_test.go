package server_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// permissionsDoc is the authorization matrix as docs/permissions.md shows it.
const permissionsDoc = "../docs/permissions.md"

// renderPermissions writes authzMatrix as a Markdown table: one row a route, one column a caller,
// each cell "A / A2 / B" as in the matrix.
func renderPermissions() string {
	var b strings.Builder
	b.WriteString(`# Permissions

Who may call each route of the resource API: the expected status of every caller on a fresh
target in the caller's organization A (for groups and results: one the group manager manages), on
one of A the manager does not manage (A2, only where it differs), and on one of another
organization B. 2xx: allowed; 403: authenticated but not allowed inside the own organization (or
a client_credentials token, which never acts as a user); 404: another organization's record, or
one the caller may not know exists.

The callers: a client_credentials token; a plain member of A (no permission); a member of A who
manages a group and holds no permission; support staff (platform permission support); an org:admin
of A; a platform:admin. Other permissions (users:read, groups:write, results:read, …) widen what
a member may do as docs/decisions.md, docs/assessment.md and docs/audit.md describe.

This file is generated from the table of server/authz_matrix_test.go, which a test runs against
the server for every cell; ` + "`UPDATE_DOCS=1 go test ./server -run TestPermissionsDoc`" + ` rewrites it.

`)
	b.WriteString("| route | " + strings.Join(matrixActors, " | ") + " |\n")
	b.WriteString("| --- |" + strings.Repeat(" --- |", len(matrixActors)) + "\n")
	routes := make([]string, 0, len(authzMatrix))
	for r := range authzMatrix {
		routes = append(routes, r)
	}
	slices.SortFunc(routes, func(a, b string) int {
		_, pa, _ := strings.Cut(a, " ")
		_, pb, _ := strings.Cut(b, " ")
		if c := strings.Compare(pa, pb); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, r := range routes {
		cells := make([]string, len(matrixActors))
		for i, actor := range matrixActors {
			cells[i] = strings.Join(strings.Fields(authzMatrix[r][actor]), " / ")
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", r, strings.Join(cells, " | "))
	}
	return b.String()
}

// TestPermissionsDoc keeps docs/permissions.md equal to the matrix the authorization test runs.
func TestPermissionsDoc(t *testing.T) {
	want := renderPermissions()
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile(permissionsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(permissionsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s differs from the authorization matrix; run UPDATE_DOCS=1 go test ./server -run TestPermissionsDoc", permissionsDoc)
	}
}
