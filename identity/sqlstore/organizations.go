package sqlstore

import (
	"context"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/uptrace/bun"
)

type organizationRow struct {
	bun.BaseModel `bun:"table:organizations"`

	ID        string    `bun:"id,pk"`
	Name      string    `bun:"name"`
	Active    bool      `bun:"active"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

func toOrganizationRow(o identity.Organization) organizationRow {
	return organizationRow{ID: o.ID, Name: o.Name, Active: o.Active, CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC()}
}

func (r organizationRow) organization() identity.Organization {
	return identity.Organization{ID: r.ID, Name: r.Name, Active: r.Active, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

func (s *Store) CreateOrganization(ctx context.Context, o identity.Organization) error {
	row := toOrganizationRow(o)
	_, err := s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Organization(ctx context.Context, id string) (identity.Organization, error) {
	var row organizationRow
	if err := s.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		return identity.Organization{}, translate(err)
	}
	return row.organization(), nil
}

func (s *Store) UpdateOrganization(ctx context.Context, id string, update func(identity.Organization) (identity.Organization, error)) (identity.Organization, error) {
	var updated identity.Organization
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row organizationRow
		if err := s.forUpdate(tx.NewSelect().Model(&row).Where("id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		o, err := update(row.organization())
		if err != nil {
			return err
		}
		o.ID, o.CreatedAt = row.ID, row.CreatedAt.UTC()
		row = toOrganizationRow(o)
		if _, err := tx.NewUpdate().Model(&row).Column("name", "active", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		updated = row.organization()
		return nil
	})
	if err != nil {
		return identity.Organization{}, translate(err)
	}
	return updated, nil
}

func (s *Store) Organizations(ctx context.Context, after string, limit int) ([]identity.Organization, error) {
	var rows []organizationRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("id ASC").Limit(int64(limit))
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, translate(err)
	}
	list := make([]identity.Organization, len(rows))
	for i, r := range rows {
		list[i] = r.organization()
	}
	return list, nil
}
