// Package sqlstore implements identity.Store on SQLite and PostgreSQL through bun.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations creates the identity tables; apply it with (*sqldb.DB).Migrate before New.
var Migrations = sqldb.MigrationSet{Name: "identity", FS: migrationFiles, Dir: "migrations"}

// Store is the SQL identity.Store.
type Store struct {
	db *sqldb.DB
}

var _ identity.Store = (*Store)(nil)

// New returns a Store on a database migrated with Migrations.
func New(db *sqldb.DB) *Store {
	return &Store{db: db}
}

type clientRow struct {
	bun.BaseModel `bun:"table:clients"`

	ID                string         `bun:"id,pk"`
	Name              string         `bun:"name"`
	Public            bool           `bun:"public"`
	Grants            string         `bun:"grants"`
	Scopes            string         `bun:"scopes"`
	OrgID             sql.NullString `bun:"org_id"`
	AccessTTLSeconds  int64          `bun:"access_ttl_seconds"`
	RefreshTTLSeconds int64          `bun:"refresh_ttl_seconds"`
	SecretHash        []byte         `bun:"secret_hash"`
	CreatedAt         time.Time      `bun:"created_at"`
	UpdatedAt         time.Time      `bun:"updated_at"`
}

// mutableClientColumns are written by UpdateClient: all but id and created_at.
var mutableClientColumns = []string{"name", "public", "grants", "scopes", "org_id",
	"access_ttl_seconds", "refresh_ttl_seconds", "secret_hash", "updated_at"}

func toRow(c identity.Client) (clientRow, error) {
	grants, err := json.Marshal(nonNil(c.Grants))
	if err != nil {
		return clientRow{}, err
	}
	scopes, err := json.Marshal(nonNil(c.Scopes))
	if err != nil {
		return clientRow{}, err
	}
	return clientRow{
		ID:                c.ID,
		Name:              c.Name,
		Public:            c.Public,
		Grants:            string(grants),
		Scopes:            string(scopes),
		OrgID:             sql.NullString{String: c.OrgID, Valid: c.OrgID != ""},
		AccessTTLSeconds:  int64(c.AccessTTL / time.Second),
		RefreshTTLSeconds: int64(c.RefreshTTL / time.Second),
		SecretHash:        c.SecretHash,
		CreatedAt:         c.CreatedAt.UTC(),
		UpdatedAt:         c.UpdatedAt.UTC(),
	}, nil
}

func (r clientRow) client() (identity.Client, error) {
	c := identity.Client{
		ID:         r.ID,
		Name:       r.Name,
		Public:     r.Public,
		OrgID:      r.OrgID.String,
		AccessTTL:  time.Duration(r.AccessTTLSeconds) * time.Second,
		RefreshTTL: time.Duration(r.RefreshTTLSeconds) * time.Second,
		SecretHash: r.SecretHash,
		CreatedAt:  r.CreatedAt.UTC(),
		UpdatedAt:  r.UpdatedAt.UTC(),
	}
	if err := json.Unmarshal([]byte(r.Grants), &c.Grants); err != nil {
		return identity.Client{}, fmt.Errorf("client %s: grants: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.Scopes), &c.Scopes); err != nil {
		return identity.Client{}, fmt.Errorf("client %s: scopes: %w", r.ID, err)
	}
	if len(c.SecretHash) == 0 {
		c.SecretHash = nil
	}
	return c, nil
}

// nonNil stores an empty list as [] rather than null, so that it reads back as an empty list.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) CreateClient(ctx context.Context, c identity.Client) error {
	row, err := toRow(c)
	if err != nil {
		return err
	}
	_, err = s.db.NewInsert().Model(&row).Exec(ctx)
	return translate(err)
}

func (s *Store) Client(ctx context.Context, id string) (identity.Client, error) {
	var row clientRow
	if err := s.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		return identity.Client{}, translate(err)
	}
	return row.client()
}

func (s *Store) Clients(ctx context.Context) ([]identity.Client, error) {
	var rows []clientRow
	if err := s.db.NewSelect().Model(&rows).Order("id").Scan(ctx); err != nil {
		return nil, translate(err)
	}
	clients := make([]identity.Client, 0, len(rows))
	for _, r := range rows {
		c, err := r.client()
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

func (s *Store) UpdateClient(ctx context.Context, id string, update func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	var updated identity.Client
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var row clientRow
		if err := s.forUpdate(tx.NewSelect().Model(&row).Where("id = ?", id)).Scan(ctx); err != nil {
			return err
		}
		c, err := row.client()
		if err != nil {
			return err
		}
		if c, err = update(c); err != nil {
			return err
		}
		c.ID, c.CreatedAt = row.ID, row.CreatedAt.UTC()
		if row, err = toRow(c); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&row).Column(mutableClientColumns...).WherePK().Exec(ctx); err != nil {
			return err
		}
		updated = c
		return nil
	})
	if err != nil {
		// translate leaves the updater's own errors as they are.
		return identity.Client{}, translate(err)
	}
	return updated, nil
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res, err := s.db.NewDelete().Model((*clientRow)(nil)).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return translate(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(err)
	} else if n == 0 {
		return identity.ErrNotFound
	}
	return nil
}

// forUpdate makes q lock the rows it reads until the transaction ends. SQLite transactions begin
// IMMEDIATE (one writer at a time); PostgreSQL needs the row lock.
func (s *Store) forUpdate(q *bun.SelectQuery) *bun.SelectQuery {
	if s.db.Dialect == sqldb.Postgres {
		return q.For("UPDATE")
	}
	return q
}

// translate maps database errors to identity's, once for both dialects. Other errors pass as they are.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return identity.ErrNotFound
	}
	err = sqldb.Translate(err)
	switch {
	case errors.Is(err, sqldb.ErrUnique):
		return fmt.Errorf("%w: %w", identity.ErrExists, err)
	case errors.Is(err, sqldb.ErrForeignKey):
		// org_id, of clients and users, is the only foreign key a write can break.
		return &identity.ValidationError{Fields: []identity.FieldError{
			{Field: "org_id", Message: "does not name an existing organization"},
		}}
	case errors.Is(err, sqldb.ErrUnavailable):
		return fmt.Errorf("%w: %w", identity.ErrUnavailable, err)
	}
	return err
}
