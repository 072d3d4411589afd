package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/uptrace/bun"
)

type resultRow struct {
	bun.BaseModel `bun:"table:results,alias:r"`

	ID         string         `bun:"id,pk"`
	OrgID      string         `bun:"org_id"`
	UserID     string         `bun:"user_id"`
	TestID     string         `bun:"test_id"`
	GroupID    sql.NullString `bun:"group_id"`
	Scores     string         `bun:"scores"`
	Answers    sql.NullString `bun:"answers"`
	AppliedAt  time.Time      `bun:"applied_at"`
	FeedbackAt bun.NullTime   `bun:"feedback_at"`
	CreatedBy  string         `bun:"created_by"`
	CreatedAt  time.Time      `bun:"created_at"`
	UpdatedAt  time.Time      `bun:"updated_at"`
	DeletedAt  bun.NullTime   `bun:"deleted_at"`
}

// mutableResultColumns are written by UpdateResults: what may be corrected and the feedback
// date. Whose result it is, of which test, in which group and who recorded it never change.
var mutableResultColumns = []string{"scores", "answers", "applied_at", "feedback_at", "updated_at"}

func toResultRow(r assessment.Result) resultRow {
	row := resultRow{
		ID:        r.ID,
		OrgID:     r.OrgID,
		UserID:    r.UserID,
		TestID:    r.TestID,
		GroupID:   sql.NullString{String: r.GroupID, Valid: r.GroupID != ""},
		Scores:    string(r.Scores),
		Answers:   sql.NullString{String: string(r.Answers), Valid: r.Answers != nil},
		AppliedAt: r.AppliedAt.UTC(),
		CreatedBy: r.CreatedBy,
		CreatedAt: r.CreatedAt.UTC(),
		UpdatedAt: r.UpdatedAt.UTC(),
	}
	if !r.FeedbackAt.IsZero() {
		row.FeedbackAt.Time = r.FeedbackAt.UTC()
	}
	return row
}

func (row resultRow) result() assessment.Result {
	r := assessment.Result{
		ID:        row.ID,
		OrgID:     row.OrgID,
		UserID:    row.UserID,
		TestID:    row.TestID,
		GroupID:   row.GroupID.String,
		Scores:    []byte(row.Scores),
		AppliedAt: row.AppliedAt.UTC(),
		CreatedBy: row.CreatedBy,
		CreatedAt: row.CreatedAt.UTC(),
		UpdatedAt: row.UpdatedAt.UTC(),
	}
	if row.Answers.Valid {
		r.Answers = []byte(row.Answers.String)
	}
	if !row.FeedbackAt.IsZero() {
		r.FeedbackAt = row.FeedbackAt.Time.UTC()
	}
	return r
}

// live restricts a query of results to one organization's results that are not deleted: every
// query of result data goes through it.
func live(q *bun.SelectQuery, orgID string) *bun.SelectQuery {
	return q.Where("r.org_id = ?", orgID).Where("r.deleted_at IS NULL")
}

func (s *Store) CreateResult(ctx context.Context, r assessment.Result) error {
	row := toResultRow(r)
	_, err := s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Result(ctx context.Context, orgID, id string) (assessment.Result, error) {
	var row resultRow
	if err := live(s.db.NewSelect().Model(&row), orgID).Where("r.id = ?", id).Scan(ctx); err != nil {
		return assessment.Result{}, translate(err)
	}
	return row.result(), nil
}

func (s *Store) ResultOrganization(ctx context.Context, id string) (string, error) {
	var orgID string
	err := s.db.NewSelect().Model((*resultRow)(nil)).Column("org_id").
		Where("r.id = ?", id).Where("r.deleted_at IS NULL").Scan(ctx, &orgID)
	if err != nil {
		return "", translate(err)
	}
	return orgID, nil
}

func (s *Store) Results(ctx context.Context, f assessment.ResultFilter) ([]assessment.Result, error) {
	var rows []resultRow
	q := live(s.db.NewSelect().Model(&rows), f.OrgID).OrderExpr("r.id ASC").Limit(int64(f.Limit))
	if f.UserID != "" {
		q = q.Where("r.user_id = ?", f.UserID)
	}
	if f.GroupID != "" {
		q = q.Where("r.group_id = ?", f.GroupID)
	}
	if !f.ReleasedAt.IsZero() {
		q = q.Where("r.feedback_at IS NOT NULL").Where("r.feedback_at <= ?", f.ReleasedAt.UTC())
	}
	if f.After != "" {
		q = q.Where("r.id > ?", f.After)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	list := make([]assessment.Result, len(rows))
	for i, row := range rows {
		list[i] = row.result()
	}
	return list, nil
}

func (s *Store) UpdateResults(ctx context.Context, orgID string, ids []string, update func(assessment.Result) (assessment.Result, error)) ([]assessment.Result, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var updated []assessment.Result
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		rows, err := s.lockResults(ctx, tx, orgID, ids)
		if err != nil {
			return err
		}
		updated = make([]assessment.Result, len(ids))
		for i, id := range ids {
			row := rows[id]
			r, err := update(row.result())
			if err != nil {
				return err
			}
			// The identity of the record and its history stay as they are, whatever update returned.
			r.ID, r.OrgID, r.UserID, r.TestID = row.ID, row.OrgID, row.UserID, row.TestID
			r.GroupID, r.CreatedBy, r.CreatedAt = row.GroupID.String, row.CreatedBy, row.CreatedAt
			row = toResultRow(r)
			if _, err := tx.NewUpdate().Model(&row).Column(mutableResultColumns...).WherePK().Exec(ctx); err != nil {
				return err
			}
			updated[i] = row.result()
		}
		return nil
	})
	if err != nil {
		return nil, translate(err)
	}
	return updated, nil
}

// lockResults reads the organization's live results with the given ids, locked until the
// transaction ends, or fails with a *MissingError naming the first id (in the given order) that
// is not among them. Rows are locked in id order, so that two transactions over overlapping ids
// cannot deadlock.
func (s *Store) lockResults(ctx context.Context, tx bun.Tx, orgID string, ids []string) (map[string]resultRow, error) {
	var rows []resultRow
	q := live(tx.NewSelect().Model(&rows), orgID).Where("r.id IN (?)", bun.In(ids)).OrderExpr("r.id ASC")
	if err := s.forUpdate(q).Scan(ctx); err != nil {
		return nil, err
	}
	found := make(map[string]resultRow, len(rows))
	for _, row := range rows {
		found[row.ID] = row
	}
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			return nil, &assessment.MissingError{ID: id}
		}
	}
	return found, nil
}

func (s *Store) DeleteResult(ctx context.Context, orgID, id string, at time.Time) error {
	// One conditional update is the gate: of concurrent deletes, one changes the row, the others
	// none. The scores and answers go with it: the row stays for the audit trail (who, which
	// test, when), the health data does not.
	res, err := s.db.NewUpdate().Model((*resultRow)(nil)).Set("deleted_at = ?", at.UTC()).
		Set("scores = ''").Set("answers = NULL").
		Where("r.org_id = ?", orgID).Where("r.id = ?", id).Where("r.deleted_at IS NULL").Exec(ctx)
	if err != nil {
		return translate(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(err)
	} else if n == 0 {
		return assessment.ErrNotFound
	}
	return nil
}

func (s *Store) PurgeResults(ctx context.Context, appliedBefore time.Time, limit int) (int, error) {
	// A bounded batch by id, so that one call holds no long lock however much has expired.
	batch := s.db.NewSelect().Model((*resultRow)(nil)).Column("r.id").
		Where("r.applied_at < ?", appliedBefore.UTC()).OrderExpr("r.id ASC").Limit(int64(limit))
	res, err := s.db.NewDelete().Model((*resultRow)(nil)).Where("r.id IN (?)", batch).Exec(ctx)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, translate(err)
	}
	return int(n), nil
}
