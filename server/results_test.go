package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
)

// resultsFixture is newOrgFixture plus a user of organization A in every role towards
// results, a group of A that "group manager" manages and "evaluated" belongs to, and a test.
type resultsFixture struct {
	*orgFixture
	group     identity.Group
	evaluated identity.User
	test      string
}

// scoreSchema is the score schema of the results tests: a score and a free-text note.
const scoreSchema = `{"type":"object","required":["score"],"properties":{"score":{"type":"integer","maximum":10},"note":{"type":"string"}}}`

func newResultsFixture(t *testing.T) *resultsFixture {
	t.Helper()
	f := &resultsFixture{orgFixture: newOrgFixture(t)}
	ctx := context.Background()
	f.addUser(t, "results reader", f.orgA.ID, assessment.PermResultsRead)
	f.addUser(t, "results writer", f.orgA.ID, assessment.PermResultsWrite)
	f.addUser(t, "org admin reader", f.orgA.ID, identity.PermOrgAdmin, assessment.PermResultsRead)
	f.addUser(t, "plain member", f.orgA.ID)
	manager := f.addUser(t, "group manager", f.orgA.ID)
	f.evaluated = f.addUser(t, "evaluated", f.orgA.ID)
	name := "Team"
	g, err := f.ids.CreateGroup(ctx, f.orgA.ID, identity.GroupInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	f.group = g
	if err := f.ids.AddGroupUser(ctx, f.orgA.ID, g.ID, manager.ID, identity.RoleManager); err != nil {
		t.Fatal(err)
	}
	if err := f.ids.AddGroupUser(ctx, f.orgA.ID, g.ID, f.evaluated.ID, identity.RoleMember); err != nil {
		t.Fatal(err)
	}
	tt, err := f.assess.CreateTest(ctx, f.platformActor(t), assessment.NewTest{Name: "Anxiety", Version: "1", ScoreSchema: json.RawMessage(scoreSchema)})
	if err != nil {
		t.Fatal(err)
	}
	f.test = tt.ID
	return f
}

// results calls a result route as actor and fails the test unless the answer, whatever its
// status, says not to cache it (DP-01).
func (f *resultsFixture) results(t *testing.T, actor, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	res, got := f.as(t, actor, method, path, body)
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s as %s: %d with Cache-Control %q, want no-store", method, path, actor, res.StatusCode, cc)
	}
	return res, got
}

// newResultBody is a valid body of POST /api/results for the evaluated user, in the group.
func (f *resultsFixture) newResultBody(scores, answers string) map[string]any {
	return map[string]any{
		"user_id": f.evaluated.ID, "test_id": f.test, "group_id": f.group.ID,
		"scores": json.RawMessage(scores), "answers": json.RawMessage(answers),
		"applied_at": f.clock.Now().Format(time.RFC3339Nano),
	}
}

// record creates a result of the evaluated user as "results writer" and returns its id.
func (f *resultsFixture) record(t *testing.T, scores, answers string) string {
	t.Helper()
	res, body := f.results(t, "results writer", "POST", "/api/results", f.newResultBody(scores, answers))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create result: %d %v", res.StatusCode, body)
	}
	id, _ := body["id"].(string)
	if loc := res.Header.Get("Location"); loc != "/api/results/"+id {
		t.Errorf("Location %q, want /api/results/%s", loc, id)
	}
	return id
}

// resultInB records a result in organization B, directly through the service.
func (f *resultsFixture) resultInB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: f.orgB.ID, Email: "evaluated@beta.test", Name: "Beta", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.assess.CreateResult(ctx, f.platformActor(t), assessment.NewResult{OrgID: f.orgB.ID, UserID: u.ID, TestID: f.test,
		Scores: json.RawMessage(`{"score":1}`), AppliedAt: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// readAs reads the result as actor and reports the status and whether the answers came along.
func (f *resultsFixture) readAs(t *testing.T, actor, id string) (int, bool) {
	t.Helper()
	res, body := f.results(t, actor, "GET", "/api/results/"+id, nil)
	if res.StatusCode == http.StatusOK && body["scores"] == nil {
		t.Errorf("%s read a result without scores: %v", actor, body)
	}
	if res.StatusCode >= 400 && body["scores"] != nil {
		t.Errorf("%s got %d with the result's scores", actor, res.StatusCode)
	}
	return res.StatusCode, body["answers"] != nil
}

func TestResultVisibilityByRole(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":7}`, `{"q1":"b"}`)
	tests := []struct {
		actor   string
		status  int
		answers bool
	}{
		{"results reader", 200, true},
		{"results writer", 200, true},
		{"platform admin", 200, true},
		{"group manager", 200, false},
		{"evaluated", 403, false}, // no feedback date yet
		{"plain member", 403, false},
		{"org admin of A", 403, false},
		{"support", 404, false}, // support belongs to no organization: no result is theirs to find
		{"member of B", 404, false},
	}
	for _, tc := range tests {
		t.Run(tc.actor, func(t *testing.T) {
			status, answers := f.readAs(t, tc.actor, id)
			if status != tc.status || answers != tc.answers {
				t.Errorf("read as %s: %d with answers %v, want %d with answers %v", tc.actor, status, answers, tc.status, tc.answers)
			}
		})
	}
}

func TestTheEvaluatedUserReadsTheirResultFromTheFeedbackDateOn(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":3}`, `{"q1":"c"}`)
	// A whole second, so that the stored date (microseconds) is exactly the one sent.
	feedback := f.clock.Now().Add(2 * time.Minute).Truncate(time.Second)
	res, body := f.results(t, "results writer", "PUT", "/api/results/"+id+"/feedback-date",
		map[string]any{"feedback_at": feedback.Format(time.RFC3339)})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("set feedback date: %d %v", res.StatusCode, body)
	}
	ownList := func() []any {
		t.Helper()
		res, body := f.results(t, "evaluated", "GET", "/api/users/me/results", nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("own results: %d %v", res.StatusCode, body)
		}
		items, _ := body["items"].([]any)
		return items
	}

	f.clock.Advance(feedback.Sub(f.clock.Now()) - time.Microsecond)
	if status, _ := f.readAs(t, "evaluated", id); status != http.StatusForbidden {
		t.Errorf("a microsecond before the feedback date: %d, want 403", status)
	}
	if items := ownList(); len(items) != 0 {
		t.Errorf("before the feedback date the user lists %v, want nothing", items)
	}
	f.clock.Advance(time.Microsecond)
	if status, answers := f.readAs(t, "evaluated", id); status != http.StatusOK || answers {
		t.Errorf("at the feedback date: %d with answers %v, want 200 without", status, answers)
	}
	f.clock.Advance(time.Minute)
	if status, answers := f.readAs(t, "evaluated", id); status != http.StatusOK || answers {
		t.Errorf("after the feedback date: %d with answers %v, want 200 without", status, answers)
	}
	items := ownList()
	if len(items) != 1 || items[0].(map[string]any)["answers"] != nil || items[0].(map[string]any)["id"] != id {
		t.Errorf("after the feedback date the user lists %v, want their result without answers", items)
	}
}

func TestResultListsFollowTheSameRules(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":5}`, `{"q1":"a"}`)
	byUser := "/api/users/" + f.evaluated.ID + "/results"
	byGroup := "/api/groups/" + f.group.ID + "/results"
	tests := []struct {
		actor, path string
		status      int
		answers     bool
	}{
		{"results reader", byUser, 200, true},
		{"results reader", byGroup, 200, true},
		{"group manager", byGroup, 200, false},
		{"group manager", byUser, 403, false}, // managers list by group
		{"plain member", byGroup, 403, false},
		{"support", byUser, 404, false},
		{"member of B", byGroup, 404, false},
		{"platform admin", byUser, 200, true},
	}
	for _, tc := range tests {
		res, body := f.results(t, tc.actor, "GET", tc.path, nil)
		if res.StatusCode != tc.status {
			t.Errorf("%s as %s: %d %v, want %d", tc.path, tc.actor, res.StatusCode, body, tc.status)
			continue
		}
		if tc.status != http.StatusOK {
			continue
		}
		items, _ := body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["id"] != id || (items[0].(map[string]any)["answers"] != nil) != tc.answers {
			t.Errorf("%s as %s lists %v, want the result with answers %v", tc.path, tc.actor, items, tc.answers)
		}
		if _, ok := body["next_cursor"]; !ok {
			t.Errorf("%s as %s: no next_cursor", tc.path, tc.actor)
		}
	}
}

// feedbackOf reads the feedback date of a result as the writer ("" while unset).
func (f *resultsFixture) feedbackOf(t *testing.T, id string) string {
	t.Helper()
	res, body := f.results(t, "results writer", "GET", "/api/results/"+id, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("read %s: %d %v", id, res.StatusCode, body)
	}
	s, _ := body["feedback_at"].(string)
	return s
}

func TestBulkFeedbackDateIsAllOrNothing(t *testing.T) {
	f := newResultsFixture(t)
	r1 := f.record(t, `{"score":1}`, `null`)
	r2 := f.record(t, `{"score":2}`, `null`)
	foreign := f.resultInB(t)
	const at = "2026-04-01T09:30:00Z"
	refusals := []struct {
		name, actor string
		ids         []string
		status      int
		named       string // the id the answer must name
	}{
		{"another organization's id", "results writer", []string{r1, r2, foreign}, 422, foreign},
		{"a malformed id", "results writer", []string{r1, "not-an-id", r2}, 422, "not-an-id"},
		{"a caller who may only read", "results reader", []string{r1, r2}, 403, ""},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			res, body := f.results(t, tc.actor, "POST", "/api/results/feedback-date", map[string]any{"result_ids": tc.ids, "feedback_at": at})
			if res.StatusCode != tc.status {
				t.Fatalf("%d %v, want %d", res.StatusCode, body, tc.status)
			}
			if tc.named != "" && !namesField(body, "result_ids", tc.named) {
				t.Errorf("the answer %v does not name %s on result_ids", body, tc.named)
			}
			for _, id := range []string{r1, r2} {
				if got := f.feedbackOf(t, id); got != "" {
					t.Errorf("result %s changed to %s by a refused request", id, got)
				}
			}
		})
	}
	rows, _, err := f.audit.List(context.Background(), audit.Query{Platform: true, Type: audit.ResultFeedbackSet, SubjectID: foreign})
	if err != nil || len(rows) != 1 || rows[0].Outcome != audit.OutcomeDenied {
		t.Errorf("audit rows about the foreign id: %+v, %v; want one denied", rows, err)
	}

	res, body := f.results(t, "results writer", "POST", "/api/results/feedback-date", map[string]any{"result_ids": []string{r1, r2, r1}, "feedback_at": at})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("bulk feedback date: %d %v", res.StatusCode, body)
	}
	for _, id := range []string{r1, r2} {
		if got := f.feedbackOf(t, id); got != at {
			t.Errorf("result %s: feedback_at %q, want %s", id, got, at)
		}
	}
}

// namesField reports whether a problem body has a field error on field whose message names s.
func namesField(body map[string]any, field, s string) bool {
	errs, _ := body["errors"].([]any)
	for _, e := range errs {
		fe, _ := e.(map[string]any)
		if fe["field"] == field && strings.Contains(fe["message"].(string), s) {
			return true
		}
	}
	return false
}

func TestEveryResultAnswerIsNeverCached(t *testing.T) {
	f := newResultsFixture(t)
	id := f.record(t, `{"score":4}`, `{"q1":"d"}`)
	other := f.record(t, `{"score":6}`, `null`)
	one := "/api/results/" + id
	tests := []struct {
		actor, method, path string
		body                any
		status              int
	}{
		{"results writer", "POST", "/api/results", f.newResultBody(`{"score":1}`, `null`), 201},
		{"results writer", "POST", "/api/results", rawJSON(`{"user":1}`), 400},
		{"results writer", "POST", "/api/results", f.newResultBody(`{"score":11}`, `null`), 422},
		{"plain member", "POST", "/api/results", f.newResultBody(`{"score":1}`, `null`), 403},
		{"results reader", "GET", one, nil, 200},
		{"plain member", "GET", one, nil, 403},
		{"member of B", "GET", one, nil, 404},
		{"results writer", "PATCH", one, map[string]any{"scores": json.RawMessage(`{"score":9}`)}, 200},
		{"results reader", "PATCH", one, map[string]any{"scores": json.RawMessage(`{"score":9}`)}, 403},
		{"results writer", "PUT", one + "/feedback-date", map[string]any{"feedback_at": "2026-05-01T00:00:00Z"}, 204},
		{"results writer", "PUT", one + "/feedback-date", map[string]any{}, 422},
		{"results writer", "POST", "/api/results/feedback-date", map[string]any{"result_ids": []string{id, other}, "feedback_at": "2026-05-01T00:00:00Z"}, 204},
		{"results writer", "POST", "/api/results/feedback-date", map[string]any{"result_ids": []string{}, "feedback_at": "2026-05-01T00:00:00Z"}, 422},
		{"results reader", "GET", "/api/users/" + f.evaluated.ID + "/results", nil, 200},
		{"group manager", "GET", "/api/groups/" + f.group.ID + "/results", nil, 200},
		{"results writer", "GET", "/api/users/" + f.evaluated.ID + "/results?limit=0", nil, 422},
		{"results writer", "DELETE", "/api/results/" + other, nil, 204},
		{"results writer", "DELETE", "/api/results/" + other, nil, 404},
		{"results writer", "GET", "/api/results/" + other, nil, 404},
	}
	for _, tc := range tests {
		// results checks Cache-Control on every answer.
		if res, body := f.results(t, tc.actor, tc.method, tc.path, tc.body); res.StatusCode != tc.status {
			t.Errorf("%s %s as %s: %d %v, want %d", tc.method, tc.path, tc.actor, res.StatusCode, body, tc.status)
		}
	}
}

func TestResultValidationMessagesComeInPortuguese(t *testing.T) {
	f := newResultsFixture(t)
	res, body := f.api(t, "POST", "/api/results", map[string]any{"user_id": "x"}, nil,
		"Authorization", "Bearer "+f.tokens["results writer"], "Accept-Language", "pt-BR")
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("%d %v, want 422", res.StatusCode, body)
	}
	want := map[string]string{"user_id": "deve ser um id", "test_id": "deve ser um id", "scores": "é obrigatório", "applied_at": "é obrigatório"}
	for field, msg := range want {
		if !namesField(body, field, msg) {
			t.Errorf("errors %v: want %s %q", body["errors"], field, msg)
		}
	}
}

func TestTheCatalogueIsChangedOnlyByItsWriters(t *testing.T) {
	f := newResultsFixture(t)
	f.addUser(t, "catalogue writer", "", assessment.PermTestsWrite)
	newTest := map[string]any{"name": "Stress", "description": "Perceived stress", "version": "2", "score_schema": json.RawMessage(scoreSchema)}
	if res, body := f.as(t, "plain member", "POST", "/api/tests", newTest); res.StatusCode != http.StatusForbidden {
		t.Errorf("plain member creates a test: %d %v, want 403", res.StatusCode, body)
	}
	bad := map[string]any{"name": "Bad", "version": "1", "score_schema": json.RawMessage(`{"type":"no such type"}`)}
	if res, body := f.as(t, "catalogue writer", "POST", "/api/tests", bad); res.StatusCode != http.StatusUnprocessableEntity || !namesField(body, "score_schema", "") {
		t.Errorf("a broken schema: %d %v, want 422 on score_schema", res.StatusCode, body)
	}
	res, body := f.as(t, "catalogue writer", "POST", "/api/tests", newTest)
	if res.StatusCode != http.StatusCreated || body["active"] != true {
		t.Fatalf("create test: %d %v", res.StatusCode, body)
	}
	id := body["id"].(string)
	if loc := res.Header.Get("Location"); loc != "/api/tests/"+id {
		t.Errorf("Location %q", loc)
	}
	if res, body := f.as(t, "catalogue writer", "PATCH", "/api/tests/"+id, map[string]any{"version": "3"}); res.StatusCode != http.StatusOK || body["version"] != "3" {
		t.Errorf("update test: %d %v", res.StatusCode, body)
	}
	if res, _ := f.as(t, "catalogue writer", "POST", "/api/tests/"+id+"/deactivate", nil); res.StatusCode != http.StatusNoContent {
		t.Errorf("deactivate test: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "plain member", "GET", "/api/tests/"+id, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("a deactivated test for a plain member: %d, want 404", res.StatusCode)
	}
	if res, body := f.as(t, "catalogue writer", "GET", "/api/tests/"+id, nil); res.StatusCode != http.StatusOK || body["active"] != false {
		t.Errorf("a deactivated test for the catalogue writer: %d %v, want 200 inactive", res.StatusCode, body)
	}
	listed := func(actor string) bool {
		_, body := f.as(t, actor, "GET", "/api/tests?include_inactive=true", nil)
		items, _ := body["items"].([]any)
		for _, it := range items {
			if it.(map[string]any)["id"] == id {
				return true
			}
		}
		return false
	}
	if !listed("catalogue writer") || listed("plain member") {
		t.Errorf("include_inactive: the writer lists the deactivated test %v, a plain member %v; want true, false",
			listed("catalogue writer"), listed("plain member"))
	}
	res, body = f.results(t, "results writer", "POST", "/api/results", map[string]any{"user_id": f.evaluated.ID, "test_id": id,
		"scores": json.RawMessage(`{"score":1}`), "applied_at": f.clock.Now().Format(time.RFC3339)})
	if res.StatusCode != http.StatusUnprocessableEntity || !namesField(body, "test_id", "active test") {
		t.Errorf("a result of a deactivated test: %d %v, want 422 on test_id", res.StatusCode, body)
	}
}
