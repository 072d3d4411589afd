package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/server"
)

// canary is a string that appears nowhere unless a test put it there.
func canary(what string) string {
	return "canary-" + what + "-" + rand.Text()
}

// auditPage lists the audit log as actor through GET /api/audit.
func (f *resultsFixture) auditPage(t *testing.T, actor, query string) []map[string]any {
	t.Helper()
	res, body := f.as(t, actor, "GET", "/api/audit?"+query, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/audit?%s as %s: %d %v", query, actor, res.StatusCode, body)
	}
	items, _ := body["items"].([]any)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = it.(map[string]any)
	}
	return out
}

// SECURITY.md AU-03: a manager, an administrator with results:read and a member who may not
// read the result each leave exactly one row with their outcome, and no row holds the result.
func TestResultReadsAreAuditedWithTheirOutcome(t *testing.T) {
	f := newResultsFixture(t)
	score, answer := canary("score"), canary("answer")
	id := f.record(t, fmt.Sprintf(`{"score":2,"note":%q}`, score), fmt.Sprintf(`{"q1":%q}`, answer))
	want := map[string]string{"group manager": audit.OutcomeSuccess, "org admin reader": audit.OutcomeSuccess, "plain member": audit.OutcomeDenied}
	actors := map[string]string{} // actor id → actor
	for actor := range want {
		status, _ := f.readAs(t, actor, id)
		if (status == http.StatusOK) != (want[actor] == audit.OutcomeSuccess) {
			t.Errorf("read as %s: %d", actor, status)
		}
		actors[f.userID(t, strings.ReplaceAll(actor, " ", ".")+"@example.test")] = actor
	}

	rows := f.auditPage(t, "org admin reader", "type=result.read&subject_id="+id)
	if len(rows) != len(want) {
		t.Fatalf("%d result.read rows, want %d: %v", len(rows), len(want), rows)
	}
	for _, row := range rows {
		actor := actors[row["actor_id"].(string)]
		if row["outcome"] != want[actor] {
			t.Errorf("row of %q: outcome %v, want %s", actor, row["outcome"], want[actor])
		}
		at, _ := row["at"].(string)
		if row["org_id"] != f.orgA.ID || row["route"] != "GET /api/results/{result}" || row["client_id"] != f.app.ID ||
			row["request_id"] == "" || row["ip"] != "127.0.0.1" || row["user_agent"] == "" || !strings.HasSuffix(at, "Z") {
			t.Errorf("row of %q lacks a field: %v", actor, row)
		}
	}
	raw, _ := json.Marshal(f.auditPage(t, "platform admin", "limit=500"))
	for _, secret := range []string{score, answer} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit log holds the result's contents (%s)", secret)
		}
	}
}

// Another organization's attempt is recorded as refused, in the attacker's organization: the
// result's organization learns nothing of it, the platform sees it.
func TestAForeignReadIsAuditedAsDenied(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":1}`, `null`)
	if status, _ := f.readAs(t, "member of B", id); status != http.StatusNotFound {
		t.Fatalf("read as member of B: %d, want 404", status)
	}
	rows := f.auditPage(t, "platform admin", "type=result.read&subject_id="+id)
	if len(rows) != 1 || rows[0]["outcome"] != audit.OutcomeDenied || rows[0]["org_id"] != f.orgB.ID {
		t.Errorf("rows %v, want one denied read in organization B", rows)
	}
	if rows := f.auditPage(t, "org admin reader", "type=result.read&subject_id="+id); len(rows) != 0 {
		t.Errorf("organization A's administrator sees %v", rows)
	}
}

// SECURITY.md AU-03: the audit log is itself access-controlled, and reading it is recorded.
func TestAuditLogIsForAdministratorsOnly(t *testing.T) {
	f := newResultsFixture(t)
	f.record(t, `{"score":1}`, `null`)
	for _, actor := range []string{"plain member", "group manager", "results reader", "results writer", "support", "client credentials"} {
		if res, body := f.as(t, actor, "GET", "/api/audit", nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("GET /api/audit as %s: %d %v, want 403", actor, res.StatusCode, body)
		}
	}
	if res, _ := f.as(t, "org admin of A", "GET", "/api/audit?org="+f.orgB.ID, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("org admin of A on organization B's log: %d, want 404", res.StatusCode)
	}
	for _, row := range f.auditPage(t, "org admin of A", "limit=500") {
		if row["org_id"] != f.orgA.ID {
			t.Errorf("org admin of A reads an event of another organization: %v", row)
		}
	}
	if rows := f.auditPage(t, "platform admin", "org="+f.orgA.ID+"&type=result.created"); len(rows) != 1 {
		t.Errorf("platform admin narrowing to A: %v, want the one result.created", rows)
	}
	denied := 0
	for _, row := range f.auditPage(t, "platform admin", "type=audit.read") {
		if row["outcome"] == audit.OutcomeDenied {
			denied++
		}
	}
	// Five refused users and organization A's administrator on B; the client is refused
	// before it is known as a user.
	if denied != 6 {
		t.Errorf("%d denied audit.read rows, want 6", denied)
	}
}

func TestAuditLogPages(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":1}`, `null`)
	for range 4 {
		f.readAs(t, "results reader", id)
	}
	seen := map[string]bool{}
	query := "type=result.read&limit=3"
	for page := 0; ; page++ {
		res, body := f.as(t, "org admin of A", "GET", "/api/audit?"+query, nil)
		if res.StatusCode != http.StatusOK || page > 2 {
			t.Fatalf("page %d: %d %v", page, res.StatusCode, body)
		}
		for _, it := range body["items"].([]any) {
			seen[it.(map[string]any)["id"].(string)] = true
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			break
		}
		query = "type=result.read&limit=3&cursor=" + next
	}
	if len(seen) != 4 {
		t.Errorf("%d distinct events over the pages, want 4", len(seen))
	}
	if res, body := f.as(t, "org admin of A", "GET", "/api/audit?cursor=forged", nil); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a forged cursor: %d %v, want 422", res.StatusCode, body)
	}
	// A filter no event can hold is refused; a NUL once reached the database and answered 500.
	for _, query := range []string{"type=%00", "subject_id=%FF", "actor_id=a%0Ab"} {
		res, body := f.as(t, "org admin of A", "GET", "/api/audit?"+query, nil)
		errs, _ := body["errors"].([]any)
		if res.StatusCode != http.StatusUnprocessableEntity || len(errs) != 1 {
			t.Errorf("GET /api/audit?%s: %d %v, want 422 naming the filter", query, res.StatusCode, body)
		}
	}
}

// resultsWriter creates a user of the fixture's organization who holds results:write, and a
// test of the catalogue; it returns the user and the test's id.
func resultsWriter(t *testing.T, f *loginFixture, email, password string) (identity.User, string) {
	t.Helper()
	ctx := context.Background()
	u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: f.org.ID, Email: email, Name: "Writer", Password: password,
		Active: true, EmailVerified: true, Permissions: []string{assessment.PermResultsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := f.assess.CreateTest(ctx, assessment.Actor{Perms: []string{identity.PermPlatformAdmin}},
		assessment.NewTest{Name: "Test", Version: "1", ScoreSchema: json.RawMessage(scoreSchema)})
	if err != nil {
		t.Fatal(err)
	}
	return u, tt.ID
}

// SECURITY.md AU-02: a password, tokens and a result's contents, each a unique canary, go
// through logins, a result's creation, reads, a change and a refused write; none of them
// reaches the server's log output or the audit table.
func TestNoSecretReachesTheLogsOrTheAuditLog(t *testing.T) {
	logs := &logBuffer{}
	f := newLoginFixture(t, withLogs(logs))
	ctx := context.Background()
	password, wrong := canary("password"), canary("wrong-password")
	score, answer, changed := canary("score"), canary("answer"), canary("changed-answer")
	email := "writer@acme.test"
	writer, testID := resultsWriter(t, f, email, password)
	if _, err := f.oauth2Config.PasswordCredentialsToken(ctx, email, wrong); err == nil {
		t.Fatal("a wrong password logged in")
	}
	tok, err := f.oauth2Config.PasswordCredentialsToken(ctx, email, password)
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := f.api(t, "POST", "/api/auth/login", map[string]string{"email": email, "password": password}, nil, "Origin", f.issuer); res.StatusCode != http.StatusOK {
		t.Fatalf("cookie login: %d", res.StatusCode)
	}
	bearer := []string{"Authorization", "Bearer " + tok.AccessToken}
	body := map[string]any{"user_id": writer.ID, "test_id": testID, "applied_at": f.clock.Now().Format(time.RFC3339),
		"scores": map[string]any{"score": 3, "note": score}, "answers": map[string]any{"q1": answer}}
	res, created := f.api(t, "POST", "/api/results", body, nil, bearer...)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create result: %d %v", res.StatusCode, created)
	}
	id := created["id"].(string)
	body["scores"] = map[string]any{"score": 99, "note": score} // breaks the schema: 422
	if res, _ := f.api(t, "POST", "/api/results", body, nil, bearer...); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid scores: %d, want 422", res.StatusCode)
	}
	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/results/" + id, nil},
		{"PATCH", "/api/results/" + id, map[string]any{"answers": map[string]any{"q1": changed}}},
		{"GET", "/api/users/" + writer.ID + "/results", nil},
	} {
		if res, got := f.api(t, call.method, call.path, call.body, nil, bearer...); res.StatusCode != http.StatusOK {
			t.Errorf("%s %s: %d %v", call.method, call.path, res.StatusCode, got)
		}
	}
	if res, _ := f.api(t, "GET", "/api/results/"+id, nil, nil, "Authorization", "Bearer "+f.login(t).AccessToken); res.StatusCode != http.StatusForbidden {
		t.Errorf("a user without results permissions read the result: %d", res.StatusCode)
	}

	events, _, err := f.audit.List(ctx, audit.Query{Platform: true, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := json.Marshal(events)
	out := logs.String()
	if !strings.Contains(out, `"msg":"audit"`) || !strings.Contains(out, `"type":"result.read"`) || len(events) < 5 {
		t.Fatalf("the capture missed the audit events (%d rows): %s", len(events), out)
	}
	for _, secret := range []string{password, wrong, score, answer, changed, tok.AccessToken, tok.RefreshToken} {
		if strings.Contains(out, secret) {
			t.Errorf("the log output holds a secret: %.40s…", secret)
		}
		if strings.Contains(string(rows), secret) {
			t.Errorf("the audit table holds a secret: %.40s…", secret)
		}
	}
}

// unrecordedAudit is an audit log whose table cannot be written.
type unrecordedAudit struct{ server.AuditLog }

func (unrecordedAudit) Record(context.Context, audit.Event) error {
	return errors.New("audit table unavailable")
}

// docs/audit.md: a read that cannot be recorded does not happen (503); a change that happened
// is answered as done, its log line written all the same.
func TestAResultReadThatCannotBeAuditedFailsClosed(t *testing.T) {
	f := newLoginFixture(t, withAuditLog(func(l server.AuditLog) server.AuditLog { return unrecordedAudit{l} }))
	ctx := context.Background()
	email := "writer@acme.test"
	writer, testID := resultsWriter(t, f, email, userPassword)
	tok, err := f.oauth2Config.PasswordCredentialsToken(ctx, email, userPassword)
	if err != nil {
		t.Fatal(err)
	}
	bearer := []string{"Authorization", "Bearer " + tok.AccessToken}
	res, created := f.api(t, "POST", "/api/results", map[string]any{"user_id": writer.ID, "test_id": testID,
		"scores": map[string]any{"score": 1}, "applied_at": f.clock.Now().Format(time.RFC3339)}, nil, bearer...)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create result: %d %v", res.StatusCode, created)
	}
	for _, path := range []string{"/api/results/" + created["id"].(string), "/api/users/" + writer.ID + "/results"} {
		res, body := f.api(t, "GET", path, nil, nil, bearer...)
		if res.StatusCode != http.StatusServiceUnavailable || body["scores"] != nil || body["items"] != nil {
			t.Errorf("GET %s without its audit event: %d %v, want 503 and no data", path, res.StatusCode, body)
		}
	}
}
