package sqlstore_test

import (
	"testing"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/sqlstore"
	"github.com/portaria/portaria/tokens/tokenstest"
)

func TestSQLite(t *testing.T) {
	tokenstest.Run(t, func(t *testing.T) tokens.Store {
		return sqlstore.New(open(t, testenv.SQLiteURL(t)), time.Now)
	})
}

func TestPostgres(t *testing.T) {
	tokenstest.Run(t, func(t *testing.T) tokens.Store {
		return sqlstore.New(open(t, testenv.PostgresURL(t)), time.Now)
	})
}

func TestValuesSurviveReopeningTheSQLiteFile(t *testing.T) {
	ctx := t.Context()
	path := testenv.SQLiteURL(t)
	db := open(t, path)
	s := sqlstore.New(db, time.Now)
	if err := s.Put(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "counter", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = sqlstore.New(open(t, path), time.Now)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after reopening: got (%q, %v), want (\"v\", nil)", got, err)
	}
	if n, err := s.Incr(ctx, "counter", time.Hour); err != nil || n != 2 {
		t.Fatalf("Incr after reopening: got (%d, %v), want (2, nil)", n, err)
	}
}

func TestSweepDeletesOnlyExpiredRows(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s := sqlstore.New(open(t, testenv.SQLiteURL(t)), clock)
	for key, ttl := range map[string]time.Duration{"short1": time.Minute, "short2": time.Minute, "long": time.Hour} {
		if err := s.Put(ctx, key, []byte(key), ttl); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry: got (%d, %v), want (0, nil)", n, err)
	}

	now = now.Add(time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep after a minute: got (%d, %v), want (2, nil)", n, err)
	}
	if got, err := s.Get(ctx, "long"); err != nil || string(got) != "long" {
		t.Fatalf("Get of the live key after Sweep: got (%q, %v)", got, err)
	}
}

// open opens and migrates the database at dsn, closing it when the test ends.
func open(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestRevocationLogSQLite(t *testing.T) {
	tokenstest.RunRevocationLog(t, func(t *testing.T) tokens.RevocationLog {
		return sqlstore.NewRevocationLog(open(t, testenv.SQLiteURL(t)), time.Now)
	})
}

func TestRevocationLogPostgres(t *testing.T) {
	tokenstest.RunRevocationLog(t, func(t *testing.T) tokens.RevocationLog {
		return sqlstore.NewRevocationLog(open(t, testenv.PostgresURL(t)), time.Now)
	})
}

// A reader's cursor is the last seq it saw: a seq handed out again after Sweep deleted the newest
// entries would hide the new entry from that reader.
func TestRevocationLogSweepKeepsLiveEntriesAndNeverReusesSeqs(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	l := sqlstore.NewRevocationLog(open(t, testenv.SQLiteURL(t)), clock)
	appendEntry := func(subject string, life time.Duration) {
		t.Helper()
		err := l.Append(ctx, tokens.Revocation{Kind: tokens.RevokedSession, Subject: subject, NotBefore: now, ExpiresAt: now.Add(life)})
		if err != nil {
			t.Fatal(err)
		}
	}
	appendEntry("long", time.Hour)
	appendEntry("short", time.Minute)
	before, err := l.Since(ctx, 0, 10)
	if err != nil || len(before) != 2 {
		t.Fatalf("Since before expiry: got (%v, %v), want 2 entries", before, err)
	}

	now = now.Add(time.Minute)
	if got, err := l.Since(ctx, 0, 10); err != nil || len(got) != 1 || got[0].Subject != "long" {
		t.Fatalf("Since after a minute: got (%v, %v), want only the long entry", got, err)
	}
	if n, err := l.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep: got (%d, %v), want (1, nil)", n, err)
	}
	appendEntry("new", time.Hour)
	got, err := l.Since(ctx, before[1].Seq, 10)
	if err != nil || len(got) != 1 || got[0].Subject != "new" {
		t.Fatalf("Since(seq of the swept entry): got (%v, %v), want the new entry", got, err)
	}
}

func TestSessionIndexSQLite(t *testing.T) {
	tokenstest.RunSessionIndex(t, func(t *testing.T) tokens.SessionIndex {
		return sqlstore.NewSessionIndex(open(t, testenv.SQLiteURL(t)), time.Now)
	})
}

func TestSessionIndexPostgres(t *testing.T) {
	tokenstest.RunSessionIndex(t, func(t *testing.T) tokens.SessionIndex {
		return sqlstore.NewSessionIndex(open(t, testenv.PostgresURL(t)), time.Now)
	})
}

func TestSessionIndexSweepDeletesOnlyExpiredRows(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	x := sqlstore.NewSessionIndex(open(t, testenv.SQLiteURL(t)), clock)
	for sid, life := range map[string]time.Duration{"short1": time.Minute, "short2": time.Minute, "long": time.Hour} {
		err := x.Add(ctx, tokens.Session{ID: sid, UserID: "user-1", ClientID: "web", CreatedAt: now, ExpiresAt: now.Add(life)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := x.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before expiry: got (%d, %v), want (0, nil)", n, err)
	}

	now = now.Add(time.Minute)
	if n, err := x.Sweep(ctx); err != nil || n != 2 {
		t.Fatalf("Sweep after a minute: got (%d, %v), want (2, nil)", n, err)
	}
	if got, err := x.List(ctx, "user-1"); err != nil || len(got) != 1 || got[0].ID != "long" {
		t.Fatalf("List after Sweep: got (%v, %v), want the live session", got, err)
	}
}
