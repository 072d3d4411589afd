package sqlstore_test

import (
	"testing"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/identitytest"
	"github.com/portaria/portaria/identity/sqlstore"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

func TestSQLite(t *testing.T) {
	identitytest.Run(t, func(t *testing.T) identity.Store { return open(t, testenv.SQLiteURL(t)) })
}

func TestPostgres(t *testing.T) {
	identitytest.Run(t, func(t *testing.T) identity.Store { return open(t, testenv.PostgresURL(t)) })
}

func open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	db, err := sqldb.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return sqlstore.New(db)
}
