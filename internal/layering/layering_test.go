// Package layering checks the import direction of DESIGN.md §1: domain packages do not import
// each other except through the allowed edges, and only cmd wires everything together.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portaria/portaria/"

// allowed lists, for each top-level package (and its subpackages), the other top-level packages
// of ours it may depend on. internal/ plumbing is allowed everywhere.
var allowed = map[string][]string{
	"config":     {},
	"keys":       {},
	"identity":   {},
	"assessment": {},
	"tokens":     {"identity"},
	"server":     {"tokens", "keys", "identity", "assessment"},
}

// internalAllowed lists, for each internal package that is more than plumbing, the other packages
// of ours it may depend on: every domain may import it, so it must import none of them.
var internalAllowed = map[string][]string{
	"internal/audit": {"internal/sqldb"},
}

func TestImportDirection(t *testing.T) {
	for pkg, ok := range allowed {
		for _, rel := range ourDeps(t, pkg) {
			top, _, _ := strings.Cut(rel, "/")
			if top == pkg || top == "internal" || contains(ok, top) {
				continue
			}
			t.Errorf("%s depends on %s: not allowed by DESIGN.md §1", pkg, rel)
		}
	}
	for pkg, ok := range internalAllowed {
		for _, rel := range ourDeps(t, pkg) {
			if rel == pkg || strings.HasPrefix(rel, pkg+"/") || contains(ok, rel) {
				continue
			}
			t.Errorf("%s depends on %s: it may import only %v of ours", pkg, rel, ok)
		}
	}
}

// ourDeps lists the packages of this module that pkg and its subpackages depend on, as paths
// relative to the module; none when pkg does not exist (yet).
func ourDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "./../../"+pkg+"/...").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "matched no packages") || strings.Contains(string(out), "no Go files") ||
			strings.Contains(string(out), "directory not found") || strings.Contains(string(out), "no such file or directory") {
			return nil
		}
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	var deps []string
	for _, dep := range strings.Fields(string(out)) {
		if rel, ours := strings.CutPrefix(dep, module); ours {
			deps = append(deps, rel)
		}
	}
	return deps
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
