// Package sqldb opens Portaria's SQL database (SQLite or PostgreSQL through bun), runs the embedded
// migrations of each domain and translates driver errors into a few sentinel errors, once per dialect.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL flavour of a database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors every store translates driver errors into.
var (
	// ErrUnique: a unique or primary-key constraint refused the write.
	ErrUnique = errors.New("sqldb: unique constraint violated")
	// ErrForeignKey: a foreign-key constraint refused the write.
	ErrForeignKey = errors.New("sqldb: foreign key constraint violated")
	// ErrUnavailable: the database could not be reached or is shutting down.
	ErrUnavailable = errors.New("sqldb: database unavailable")
)

// DB is an open database and its dialect.
type DB struct {
	*bun.DB
	Dialect Dialect
}

// Open opens the database named by dsn: "postgres://…" or "postgresql://…" selects PostgreSQL
// through pgx; anything else is a SQLite file path (or "file:" URI).
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := pgconnConfig(dsn)
		if err != nil {
			return nil, err
		}
		sqldb := stdlib.OpenDB(*cfg)
		sqldb.SetMaxOpenConns(25)
		sqldb.SetMaxIdleConns(25)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{DB: bun.NewDB(sqldb, pgdialect.New()), Dialect: Postgres}
	default:
		path, err := sqliteDSN(dsn)
		if err != nil {
			return nil, err
		}
		sqldb, err := sql.Open(sqliteshim.ShimName, path)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		// SQLite has one writer; WAL lets readers go on while it writes. More connections
		// than a handful only add lock contention.
		sqldb.SetMaxOpenConns(8)
		sqldb.SetMaxIdleConns(8)
		db = &DB{DB: bun.NewDB(sqldb, sqlitedialect.New()), Dialect: SQLite}
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", db.Dialect, Translate(err))
	}
	return db, nil
}

func pgconnConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message can echo the URL, password included.
		return nil, errors.New("invalid PostgreSQL URL")
	}
	cfg.ConnectTimeout = 5 * time.Second
	return cfg, nil
}

// sqliteDSN turns a file path into a modernc.org/sqlite DSN with the settings Portaria relies on:
// WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE so that concurrent writers queue on the
// busy timeout instead of failing with "database is locked" when a read lock is upgraded.
func sqliteDSN(dsn string) (string, error) {
	path := strings.TrimPrefix(dsn, "file:")
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	if path == "" {
		return "", errors.New("empty SQLite path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("create database directory: %w", err)
		}
		// The file holds password and secret hashes and sealed keys: readable by its owner only.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return "", fmt.Errorf("create database file: %w", err)
		}
		f.Close()
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("parse SQLite options: %w", err)
	}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous(NORMAL)")
	v.Set("_txlock", "immediate")
	v.Set("_time_format", "sqlite")
	return "file:" + path + "?" + v.Encode(), nil
}

// Translate maps driver errors to the sentinels above, keeping the original in the chain.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %w", ErrUnique, err)
		case "23503":
			return fmt.Errorf("%w: %w", ErrForeignKey, err)
		case "57P01", "57P02", "57P03", "53300":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", ErrUnique, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", ErrForeignKey, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// A connection that broke mid-query (the server went away, a proxy cut it): the database is
	// unreachable for now, not the request wrong.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var netErr interface{ Timeout() bool }
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
