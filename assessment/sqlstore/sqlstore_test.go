package sqlstore_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/assessment/assessmenttest"
	"github.com/portaria/portaria/assessment/sqlstore"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

func TestSQLite(t *testing.T) {
	assessmenttest.Run(t, func(t *testing.T) assessment.Store { return open(t, testenv.SQLiteURL(t)) })
}

func TestPostgres(t *testing.T) {
	assessmenttest.Run(t, func(t *testing.T) assessment.Store { return open(t, testenv.PostgresURL(t)) })
}

// TestDeleteErasesTheContent: a deleted result keeps its row (who, which test, when) but not its
// scores and answers, on both databases.
func TestDeleteErasesTheContent(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": testenv.SQLiteURL, "PostgreSQL": testenv.PostgresURL} {
		t.Run(name, func(t *testing.T) {
			db := openDB(t, dsn(t))
			s := sqlstore.New(db)
			now := time.Now().UTC().Truncate(time.Second)
			test := assessment.Test{ID: newID(t), Name: "T", Version: "1", ScoreSchema: json.RawMessage(`{}`), Active: true, CreatedAt: now, UpdatedAt: now}
			if err := s.CreateTest(t.Context(), test); err != nil {
				t.Fatal(err)
			}
			r := assessment.Result{ID: newID(t), OrgID: newID(t), UserID: newID(t), TestID: test.ID,
				Scores: json.RawMessage(`{"anxiety":42}`), Answers: json.RawMessage(`["canary"]`),
				AppliedAt: now, CreatedBy: newID(t), CreatedAt: now, UpdatedAt: now}
			if err := s.CreateResult(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteResult(t.Context(), r.OrgID, r.ID, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			var row struct {
				Scores  string  `bun:"scores"`
				Answers *string `bun:"answers"`
				UserID  string  `bun:"user_id"`
			}
			if err := db.NewSelect().Table("results").Column("scores", "answers", "user_id").Where("id = ?", r.ID).Scan(t.Context(), &row); err != nil {
				t.Fatal(err)
			}
			if row.Scores != "" || row.Answers != nil || row.UserID != r.UserID {
				t.Errorf("after the delete the row holds scores %q, answers %v, user %q", row.Scores, row.Answers, row.UserID)
			}
		})
	}
}

func open(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	return sqlstore.New(openDB(t, dsn))
}

func openDB(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return db
}

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}
