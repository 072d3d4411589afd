// Package sqlstore implements assessment.Store on SQLite and PostgreSQL through bun.
package sqlstore

import (
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/uptrace/bun"
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations creates the assessment tables; apply it with (*sqldb.DB).Migrate before New. It
// needs no other set: the tables refer to identity's records by id only.
var Migrations = sqldb.MigrationSet{Name: "assessment", FS: migrationFiles, Dir: "migrations"}

// Store is the SQL assessment.Store.
type Store struct {
	db *sqldb.DB
}

var _ assessment.Store = (*Store)(nil)

// New returns a Store on a database migrated with Migrations.
func New(db *sqldb.DB) *Store {
	return &Store{db: db}
}

// forUpdate makes q lock the rows it reads until the transaction ends. SQLite transactions begin
// IMMEDIATE (one writer at a time); PostgreSQL needs the row lock.
func (s *Store) forUpdate(q *bun.SelectQuery) *bun.SelectQuery {
	if s.db.Dialect == sqldb.Postgres {
		return q.For("UPDATE")
	}
	return q
}

// translate maps database errors to assessment's, once for both dialects. Other errors, those of
// an updater included, pass as they are.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return assessment.ErrNotFound
	}
	err = sqldb.Translate(err)
	switch {
	case errors.Is(err, sqldb.ErrUnique):
		return fmt.Errorf("%w: %w", assessment.ErrExists, err)
	case errors.Is(err, sqldb.ErrForeignKey):
		// results.test_id is the only foreign key a write can break.
		return &assessment.ValidationError{Fields: []assessment.FieldError{
			{Field: "test_id", Message: "does not name an existing test"},
		}}
	case errors.Is(err, sqldb.ErrUnavailable):
		return fmt.Errorf("%w: %w", assessment.ErrUnavailable, err)
	}
	return err
}
