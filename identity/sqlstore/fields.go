package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/uptrace/bun"
)

type fieldRow struct {
	bun.BaseModel `bun:"table:custom_fields,alias:f"`

	ID        string    `bun:"id,pk"`
	OrgID     string    `bun:"org_id"`
	Name      string    `bun:"name"`
	Type      string    `bun:"type"`
	Required  bool      `bun:"required"`
	Options   string    `bun:"options"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

func toFieldRow(f identity.Field) (fieldRow, error) {
	opts, err := json.Marshal(nonNil(f.Options))
	if err != nil {
		return fieldRow{}, err
	}
	return fieldRow{ID: f.ID, OrgID: f.OrgID, Name: f.Name, Type: f.Type, Required: f.Required,
		Options: string(opts), CreatedAt: f.CreatedAt.UTC(), UpdatedAt: f.UpdatedAt.UTC()}, nil
}

func (r fieldRow) field() (identity.Field, error) {
	f := identity.Field{ID: r.ID, OrgID: r.OrgID, Name: r.Name, Type: r.Type, Required: r.Required,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if err := json.Unmarshal([]byte(r.Options), &f.Options); err != nil {
		return identity.Field{}, fmt.Errorf("field %s: options: %w", r.ID, err)
	}
	return f, nil
}

type fieldValueRow struct {
	bun.BaseModel `bun:"table:user_field_values"`

	UserID  string `bun:"user_id,pk"`
	FieldID string `bun:"field_id,pk"`
	Value   string `bun:"value"`
}

func (s *Store) CreateField(ctx context.Context, f identity.Field) error {
	row, err := toFieldRow(f)
	if err != nil {
		return err
	}
	_, err = s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Field(ctx context.Context, orgID, id string) (identity.Field, error) {
	var row fieldRow
	if err := s.db.NewSelect().Model(&row).Where("f.org_id = ? AND f.id = ?", orgID, id).Scan(ctx); err != nil {
		return identity.Field{}, translate(err)
	}
	return row.field()
}

func (s *Store) Fields(ctx context.Context, orgID string) ([]identity.Field, error) {
	var rows []fieldRow
	if err := s.db.NewSelect().Model(&rows).Where("f.org_id = ?", orgID).OrderExpr("f.id ASC").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	fields := make([]identity.Field, len(rows))
	for i, r := range rows {
		f, err := r.field()
		if err != nil {
			return nil, err
		}
		fields[i] = f
	}
	return fields, nil
}

func (s *Store) UpdateField(ctx context.Context, orgID, id string, update func(identity.Field) (identity.Field, error)) (identity.Field, error) {
	var updated identity.Field
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row fieldRow
		if err := s.forUpdate(tx.NewSelect().Model(&row).Where("f.org_id = ? AND f.id = ?", orgID, id)).Scan(ctx); err != nil {
			return err
		}
		f, err := row.field()
		if err != nil {
			return err
		}
		if f, err = update(f); err != nil {
			return err
		}
		f.ID, f.OrgID, f.Type, f.CreatedAt = row.ID, row.OrgID, row.Type, row.CreatedAt.UTC()
		if row, err = toFieldRow(f); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&row).Column("name", "required", "options", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		updated = f
		return nil
	})
	if err != nil {
		return identity.Field{}, translate(err)
	}
	return updated, nil
}

func (s *Store) DeleteField(ctx context.Context, orgID, id string) error {
	return translate(s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*fieldRow)(nil)).Where("org_id = ? AND id = ?", orgID, id).Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return identity.ErrNotFound
		}
		// ON DELETE CASCADE does the same; deleting explicitly does not depend on it.
		_, err = tx.NewDelete().Model((*fieldValueRow)(nil)).Where("field_id = ?", id).Exec(ctx)
		return err
	}))
}

// writeFieldValues makes the stored values of the user's fields exactly values.
func writeFieldValues(ctx context.Context, tx bun.IDB, userID string, values map[string]json.RawMessage) error {
	if _, err := tx.NewDelete().Model((*fieldValueRow)(nil)).Where("user_id = ?", userID).Exec(ctx); err != nil {
		return err
	}
	if len(values) == 0 {
		return nil
	}
	rows := make([]fieldValueRow, 0, len(values))
	for _, id := range slices.Sorted(maps.Keys(values)) {
		rows = append(rows, fieldValueRow{UserID: userID, FieldID: id, Value: string(values[id])})
	}
	_, err := tx.NewInsert().Model(&rows).Exec(ctx)
	return err
}

// fieldsEqual reports whether two sets of values are the same, byte for byte.
func fieldsEqual(a, b map[string]json.RawMessage) bool {
	return maps.EqualFunc(a, b, func(x, y json.RawMessage) bool { return string(x) == string(y) })
}
