package server_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

var (
	metricName = regexp.MustCompile(`\b(?:portaria|go|process)_[a-z0-9_]+\b`)
	// label="value" (not =~ or !=), the matchers that must name a series the server exports.
	exactMatcher = regexp.MustCompile(`\b([a-z_]+)="([^"]*)"`)
	byClause     = regexp.MustCompile(`\bby \(([^)]*)\)`)
)

// TestGrafanaDashboardQueriesWhatTheServerExports keeps docs/grafana-dashboard.json true to
// /metrics: every series a panel queries is exported (after a few requests of each kind), every
// exact label matcher (but a status's) names a value some series carries, and every grouping
// label exists.
// Prometheus itself adds job and instance at scrape time.
func TestGrafanaDashboardQueriesWhatTheServerExports(t *testing.T) {
	exported := metricsAfterTraffic(t)
	families := map[string]string{} // name → type
	for _, line := range strings.Split(exported, "\n") {
		if fields := strings.Fields(line); len(fields) == 4 && fields[1] == "TYPE" {
			families[fields[2]] = fields[3]
		}
	}

	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no title or no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				family := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
						family = base
					}
				}
				if families[family] == "" {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, name)
				}
			}
			for _, m := range exactMatcher.FindAllStringSubmatch(target.Expr, -1) {
				// A status's series appears with its first answer of that status.
				if m[1] != "job" && m[1] != "instance" && m[1] != "status" && !strings.Contains(exported, m[1]+`="`+m[2]+`"`) {
					t.Errorf("panel %q matches %s=%q, which no exported series carries", p.Title, m[1], m[2])
				}
			}
			for _, m := range byClause.FindAllStringSubmatch(target.Expr, -1) {
				for _, label := range strings.Split(m[1], ",") {
					label = strings.TrimSpace(label)
					if label != "job" && label != "instance" && !strings.Contains(exported, label+`="`) {
						t.Errorf("panel %q groups by %s, which no exported series carries", p.Title, label)
					}
				}
			}
		}
	}
}
