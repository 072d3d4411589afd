package assessment_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/assessment/sqlstore"
)

// rawResult is a result's row as the database holds it.
func (e *env) rawResult(t *testing.T, id string) (scores, answers string) {
	t.Helper()
	var row struct {
		Scores  string  `bun:"scores"`
		Answers *string `bun:"answers"`
	}
	if err := e.db.NewSelect().Table("results").Column("scores", "answers").Where("id = ?", id).Scan(t.Context(), &row); err != nil {
		t.Fatal(err)
	}
	if row.Answers != nil {
		answers = *row.Answers
	}
	return row.Scores, answers
}

// TestResultsAreSealedAtRest is DP-03's encryption at rest: the database holds results' scores
// and answers as ciphertext, the API reads them back unchanged, a sealed value moved to another
// row does not open, and a row written before sealing was configured is read as it is and sealed
// at its next change.
func TestResultsAreSealedAtRest(t *testing.T) {
	e := newEnv(t)
	n := e.newResult()
	n.Scores, n.Answers = json.RawMessage(`{"anxiety": 42}`), json.RawMessage(`["canary-answer-5d1c"]`)
	r := e.createResult(t, n)
	scores, answers := e.rawResult(t, r.ID)
	for field, v := range map[string]string{"scores": scores, "answers": answers} {
		if !strings.HasPrefix(v, "sealed:v1:") || strings.Contains(v, "anxiety") || strings.Contains(v, "canary-answer") {
			t.Errorf("the database holds %s %q, want ciphertext", field, v)
		}
	}
	got, err := e.svc.Result(t.Context(), e.reader, r.ID)
	if err != nil || string(got.Scores) != `{"anxiety":42}` || string(got.Answers) != `["canary-answer-5d1c"]` {
		t.Fatalf("read back: %s %s %v", got.Scores, got.Answers, err)
	}
	list, _, err := e.svc.ListByUser(t.Context(), e.reader, e.org, e.evaluated.UserID, assessment.Page{Limit: 10})
	if err != nil || len(list) != 1 || string(list[0].Scores) != `{"anxiety":42}` {
		t.Fatalf("list: %+v %v", list, err)
	}

	// A feedback date changes the row: the values stay sealed and the same.
	if err := e.svc.SetFeedbackDates(t.Context(), e.writer, []string{r.ID}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.rawResult(t, r.ID); !strings.HasPrefix(again, "sealed:v1:") || again == scores {
		t.Errorf("after the feedback date the scores column is %q (before %q): want sealed anew", again, scores)
	}
	if got, err := e.svc.Result(t.Context(), e.reader, r.ID); err != nil || string(got.Scores) != `{"anxiety":42}` {
		t.Errorf("after the feedback date: %s %v", got.Scores, err)
	}

	// Another result's sealed scores copied into this row, or its answers into its scores: the
	// read fails instead of showing another result's data.
	other := e.createResult(t, e.newResult())
	otherScores, _ := e.rawResult(t, other.ID)
	for what, v := range map[string]string{"another result's scores": otherScores, "its own answers": answers} {
		if _, err := e.db.NewUpdate().Table("results").Set("scores = ?", v).Where("id = ?", r.ID).Exec(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, err := e.svc.Result(t.Context(), e.reader, r.ID); err == nil {
			t.Errorf("with %s in its scores column the result read as %s", what, got.Scores)
		}
	}

	// A row written without sealing reads as it is, and is sealed at its next change.
	plain := assessment.NewService(sqlstore.New(e.db), e.access, assessment.Options{Now: func() time.Time { return *e.clock.Load() }})
	old, err := plain.CreateResult(t.Context(), e.writer, e.newResult())
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := e.rawResult(t, old.ID); !strings.HasPrefix(s, "{") {
		t.Fatalf("the unsealed service stored %q", s)
	}
	if got, err := e.svc.Result(t.Context(), e.reader, old.ID); err != nil || string(got.Scores) != `{"anxiety":42}` {
		t.Errorf("an unsealed row: %s %v", got.Scores, err)
	}
	if err := e.svc.SetFeedbackDate(t.Context(), e.writer, old.ID, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, a := e.rawResult(t, old.ID); !strings.HasPrefix(s, "sealed:v1:") || !strings.HasPrefix(a, "sealed:v1:") {
		t.Errorf("an unsealed row after its next change: %q %q", s, a)
	}
}
