package server

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDescribesEveryRoute fails when a route of the router is missing from openapi.yaml, or
// the document lists a route the router does not have.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete"}, method) {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	served := map[string]bool{}
	for _, r := range routes(Deps{Role: RoleAll}) {
		if strings.HasPrefix(r.pattern, "OPTIONS ") {
			continue // CORS preflights are not operations of the API
		}
		key := r.pattern
		if r.doc != "" {
			key = r.doc + " " + r.pattern
		}
		served[key] = true
		if !documented[key] {
			t.Errorf("route %s is not in openapi.yaml", key)
		}
	}
	for key := range documented {
		if !served[key] {
			t.Errorf("openapi.yaml lists %s, which the router does not serve", key)
		}
	}
}
