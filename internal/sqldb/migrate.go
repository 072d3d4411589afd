package sqldb

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"

	"github.com/uptrace/bun/migrate"
)

// MigrationSet is one domain's migrations: an embedded tree with one folder per dialect
// ("sqlite", "postgres") holding bun SQL files named NNNN_name.tx.up.sql.
type MigrationSet struct {
	Name string // short, [a-z_]; names the set's bookkeeping table
	FS   fs.FS
	Dir  string // the folder of FS holding one folder per dialect ("sqlite", "postgres"); "" for FS's root
}

// Migrate applies the pending migrations of each set in order. A migration is marked applied only
// after it succeeded, and each runs in its own transaction. On PostgreSQL an advisory lock keeps
// several instances starting together from running the same migration twice.
func (db *DB) Migrate(ctx context.Context, sets ...MigrationSet) error {
	if db.Dialect == Postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", Translate(err))
		}
		defer conn.Close()
		h := fnv.New64a()
		h.Write([]byte("portaria migrations"))
		lock := int64(h.Sum64() >> 1)
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", lock); err != nil {
			return fmt.Errorf("migrate: take lock: %w", Translate(err))
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", lock)
	}
	for _, set := range sets {
		if err := db.migrateSet(ctx, set); err != nil {
			return fmt.Errorf("migrate %s: %w", set.Name, err)
		}
	}
	return nil
}

func (db *DB) migrateSet(ctx context.Context, set MigrationSet) error {
	sub, err := fs.Sub(set.FS, path.Join(set.Dir, string(db.Dialect)))
	if err != nil {
		return err
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		return err
	}
	m := migrate.NewMigrator(db.DB, ms,
		migrate.WithTableName(set.Name+"_migrations"),
		migrate.WithLocksTableName(set.Name+"_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true),
	)
	if err := m.Init(ctx); err != nil {
		return Translate(err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		return Translate(err)
	}
	return nil
}
