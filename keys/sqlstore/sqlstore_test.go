package sqlstore_test

import (
	"context"
	"testing"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/keys/keystest"
	"github.com/portaria/portaria/keys/sqlstore"
)

func open(t *testing.T, dsn string) keys.Store {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return sqlstore.New(db)
}

func TestSQLite(t *testing.T) {
	keystest.Run(t, func(t *testing.T) keys.Store { return open(t, testenv.SQLiteURL(t)) })
}

func TestPostgres(t *testing.T) {
	keystest.Run(t, func(t *testing.T) keys.Store { return open(t, testenv.PostgresURL(t)) })
}
