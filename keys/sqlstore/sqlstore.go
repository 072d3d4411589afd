// Package sqlstore keeps the signing-key ring in SQL (SQLite or PostgreSQL) in the table
// signing_keys, whose unique generation column makes rotation a compare-and-swap.
package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/keys"
)

//go:embed migrations
var migrations embed.FS

// Migrations creates the signing_keys table.
var Migrations = sqldb.MigrationSet{Name: "keys", FS: migrations, Dir: "migrations"}

// Store implements keys.Store.
type Store struct {
	db *sqldb.DB
}

var _ keys.Store = (*Store)(nil)

// New returns a store over db; run Migrations first.
func New(db *sqldb.DB) *Store { return &Store{db: db} }

type keyRow struct {
	bun.BaseModel `bun:"table:signing_keys"`

	KID           string    `bun:"kid,pk"`
	Generation    int64     `bun:"generation,notnull"`
	Alg           string    `bun:"alg,notnull"`
	PublicJWK     string    `bun:"public_jwk,notnull"`
	PrivateSealed []byte    `bun:"private_sealed,notnull"`
	CreatedAt     time.Time `bun:"created_at,notnull"`
	ActivatesAt   time.Time `bun:"activates_at,notnull"`
}

// ListKeys returns every key in ascending generation.
func (s *Store) ListKeys(ctx context.Context) ([]keys.StoredKey, error) {
	var rows []keyRow
	if err := s.db.NewSelect().Model(&rows).Order("generation").Scan(ctx); err != nil {
		return nil, sqldb.Translate(err)
	}
	out := make([]keys.StoredKey, len(rows))
	for i, r := range rows {
		out[i] = keys.StoredKey{
			KID:           r.KID,
			Generation:    r.Generation,
			Alg:           keys.Alg(r.Alg),
			PublicJWK:     []byte(r.PublicJWK),
			PrivateSealed: r.PrivateSealed,
			CreatedAt:     r.CreatedAt.UTC(),
			ActivatesAt:   r.ActivatesAt.UTC(),
		}
	}
	return out, nil
}

// InsertKey adds k; a taken generation (or kid) fails with keys.ErrConflict.
func (s *Store) InsertKey(ctx context.Context, k keys.StoredKey) error {
	row := keyRow{
		KID:           k.KID,
		Generation:    k.Generation,
		Alg:           string(k.Alg),
		PublicJWK:     string(k.PublicJWK),
		PrivateSealed: k.PrivateSealed,
		CreatedAt:     k.CreatedAt.UTC(),
		ActivatesAt:   k.ActivatesAt.UTC(),
	}
	_, err := s.db.NewInsert().Model(&row).Exec(ctx)
	if err = sqldb.Translate(err); errors.Is(err, sqldb.ErrUnique) {
		return fmt.Errorf("%w: generation %d: %w", keys.ErrConflict, k.Generation, err)
	}
	return err
}

// DeleteKeys removes the keys with the given kids.
func (s *Store) DeleteKeys(ctx context.Context, kids []string) error {
	if len(kids) == 0 {
		return nil
	}
	_, err := s.db.NewDelete().Model((*keyRow)(nil)).Where("kid IN (?)", bun.In(kids)).Exec(ctx)
	return sqldb.Translate(err)
}
