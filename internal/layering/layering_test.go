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

func TestImportDirection(t *testing.T) {
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "./../../"+pkg+"/...").CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "matched no packages") || strings.Contains(string(out), "no Go files") ||
				strings.Contains(string(out), "directory not found") || strings.Contains(string(out), "no such file or directory") {
				continue
			}
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ours := strings.CutPrefix(dep, module)
			if !ours {
				continue
			}
			top, _, _ := strings.Cut(rel, "/")
			if top == pkg || top == "internal" || contains(ok, top) {
				continue
			}
			t.Errorf("%s depends on %s: not allowed by DESIGN.md §1", pkg, rel)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
