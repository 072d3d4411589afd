package sqlstore

import (
	"context"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/uptrace/bun"
)

type testRow struct {
	bun.BaseModel `bun:"table:tests"`

	ID          string    `bun:"id,pk"`
	Name        string    `bun:"name"`
	Description string    `bun:"description"`
	Version     string    `bun:"version"`
	ScoreSchema string    `bun:"score_schema"`
	Active      bool      `bun:"active"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

func toTestRow(t assessment.Test) testRow {
	return testRow{ID: t.ID, Name: t.Name, Description: t.Description, Version: t.Version,
		ScoreSchema: string(t.ScoreSchema), Active: t.Active, CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC()}
}

func (r testRow) test() assessment.Test {
	return assessment.Test{ID: r.ID, Name: r.Name, Description: r.Description, Version: r.Version,
		ScoreSchema: []byte(r.ScoreSchema), Active: r.Active, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func (s *Store) CreateTest(ctx context.Context, t assessment.Test) error {
	row := toTestRow(t)
	_, err := s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Test(ctx context.Context, id string) (assessment.Test, error) {
	var row testRow
	if err := s.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		return assessment.Test{}, translate(err)
	}
	return row.test(), nil
}

func (s *Store) Tests(ctx context.Context, after string, limit int, includeInactive bool) ([]assessment.Test, error) {
	var rows []testRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if !includeInactive {
		q = q.Where("active")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	list := make([]assessment.Test, len(rows))
	for i, r := range rows {
		list[i] = r.test()
	}
	return list, nil
}

func (s *Store) UpdateTest(ctx context.Context, id string, update func(assessment.Test) (assessment.Test, error)) (assessment.Test, error) {
	var updated assessment.Test
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row testRow
		if err := s.forUpdate(tx.NewSelect().Model(&row).Where("id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		t, err := update(row.test())
		if err != nil {
			return err
		}
		t.ID, t.CreatedAt = row.ID, row.CreatedAt
		row = toTestRow(t)
		if _, err := tx.NewUpdate().Model(&row).ExcludeColumn("id", "created_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		updated = row.test()
		return nil
	})
	if err != nil {
		return assessment.Test{}, translate(err)
	}
	return updated, nil
}
