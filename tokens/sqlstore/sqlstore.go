// Package sqlstore keeps token state (tokens.Store) in Portaria's SQL database, SQLite or
// PostgreSQL. It is the embedded default: token state then survives a restart like everything else.
//
// Each key is one row of token_state with an absolute expiry in unix milliseconds, taken from the
// injected clock. Expired rows are invisible to every operation and are removed by Sweep. Each
// operation is a single statement, so the database's row locking makes it atomic; nothing is
// read first and written later. The batch operations are single statements too.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/tokens"
)

//go:embed sqlite/*.sql postgres/*.sql
var migrationFiles embed.FS

// Migrations creates the token_state, revocations and session_index tables; run it with
// (*sqldb.DB).Migrate before New, NewRevocationLog or NewSessionIndex.
var Migrations = sqldb.MigrationSet{Name: "tokens", FS: migrationFiles}

// Store is a tokens.Store on a SQL database.
type Store struct {
	db    *sqldb.DB
	stmts *statements
	now   func() time.Time
}

var _ tokens.Store = (*Store)(nil)

// New returns a Store on db, whose Migrations must have run. now is the clock that decides
// expiry (time.Now if nil); every server sharing the database must agree on the time.
func New(db *sqldb.DB, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, stmts: &statements{db: db}, now: now}
}

// Put inserts the key, or replaces a row that has expired; a live row makes the conditional
// update a no-op, which is how ErrExists is detected without a separate read.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	now, expiresAt, err := s.window(ttl)
	if err != nil {
		return err
	}
	res, err := s.stmts.ExecContext(ctx, `
		INSERT INTO token_state (key, value, counter, expires_at) VALUES (?, ?, 0, ?)
		ON CONFLICT (key) DO UPDATE
		SET value = excluded.value, counter = 0, expires_at = excluded.expires_at
		WHERE token_state.expires_at <= ?`,
		key, value, expiresAt, now)
	if err != nil {
		return s.fail("put", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.fail("put", err)
	}
	if n == 0 {
		return tokens.ErrExists
	}
	return nil
}

// Set inserts the key or overwrites whatever row is there, live or expired, value and expiry
// alike: one upsert.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_, expiresAt, err := s.window(ttl)
	if err != nil {
		return err
	}
	_, err = s.stmts.ExecContext(ctx, `
		INSERT INTO token_state (key, value, counter, expires_at) VALUES (?, ?, 0, ?)
		ON CONFLICT (key) DO UPDATE
		SET value = excluded.value, counter = 0, expires_at = excluded.expires_at`,
		key, value, expiresAt)
	if err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Get returns the live value under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.stmts.QueryRowContext(ctx,
		`SELECT value FROM token_state WHERE key = ? AND expires_at > ?`,
		key, s.nowMillis()).Scan(&value)
	return s.value("get", value, err)
}

// GetMany reads the live rows of keys with one query, prepared once for each number of keys up
// to maxUnionKeys; larger numbers are rare and each would keep a statement of its own.
func (s *Store) GetMany(ctx context.Context, keys ...string) ([][]byte, error) {
	values := make([][]byte, len(keys))
	if len(keys) == 0 {
		return values, nil
	}
	query, args := getManyQuery(keys, s.nowMillis())
	run := s.stmts.QueryContext
	if len(keys) > maxUnionKeys {
		run = s.db.QueryContext
	}
	rows, err := run(ctx, query, args...)
	if err != nil {
		return nil, s.fail("get many", err)
	}
	defer rows.Close()
	found := make(map[string][]byte, len(keys))
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			return nil, s.fail("get many", err)
		}
		found[key] = present(value)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("get many", err)
	}
	for i, key := range keys {
		values[i] = found[key]
	}
	return values, nil
}

// maxUnionKeys is the most keys getManyQuery reads with a UNION ALL of point lookups; SQLite
// bounds the terms of a compound query (500 by default).
const maxUnionKeys = 32

// getManyQuery is the query of GetMany and its arguments. A few keys are read with a UNION ALL of
// point lookups, which SQLite runs in less than half the time of the equivalent key IN (…), for
// which it builds a temporary index; more keys with key IN (…).
func getManyQuery(keys []string, now int64) (string, []any) {
	var q strings.Builder
	args := make([]any, 0, 2*len(keys))
	if len(keys) <= maxUnionKeys {
		for i, key := range keys {
			if i > 0 {
				q.WriteString(" UNION ALL ")
			}
			q.WriteString(`SELECT key, value FROM token_state WHERE key = ? AND expires_at > ?`)
			args = append(args, key, now)
		}
		return q.String(), args
	}
	q.WriteString(`SELECT key, value FROM token_state WHERE key IN (`)
	for i, key := range keys {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("?")
		args = append(args, key)
	}
	q.WriteString(`) AND expires_at > ?`)
	return q.String(), append(args, now)
}

// SetMany writes every entry with one multi-row upsert: a single statement, so all of them or
// none.
func (s *Store) SetMany(ctx context.Context, entries []tokens.Entry) error {
	for _, e := range entries {
		if err := checkTTL(e.TTL); err != nil {
			return err
		}
	}
	now := s.nowMillis()
	if err := upsert(ctx, s.db, entries, func(ttl time.Duration) int64 { return now + ttlMillis(ttl) }); err != nil {
		return s.fail("set many", err)
	}
	return nil
}

// upsert writes entries with one multi-row upsert, each row expiring at expiry(its TTL). A key
// given twice is written once, with its last entry (PostgreSQL refuses to update a row twice in
// one statement).
func upsert(ctx context.Context, db execer, entries []tokens.Entry, expiry func(time.Duration) int64) error {
	if len(entries) == 0 {
		return nil
	}
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[e.Key] = i
	}
	args := make([]any, 0, 3*len(last))
	for i, e := range entries {
		if last[e.Key] != i {
			continue
		}
		value := e.Value
		if value == nil {
			value = []byte{}
		}
		args = append(args, e.Key, value, expiry(e.TTL))
	}
	_, err := db.ExecContext(ctx, upsertQuery(len(last)), args...)
	return err
}

// upsertQuery is the upsert of rows rows.
func upsertQuery(rows int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO token_state (key, value, counter, expires_at) VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, 0, ?)")
	}
	q.WriteString(`
		ON CONFLICT (key) DO UPDATE
		SET value = excluded.value, counter = 0, expires_at = excluded.expires_at`)
	return q.String()
}

// execer is what upsert needs of a database or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Swap is one transaction: the guard is read, and on PostgreSQL share-locked so that a delete of
// it waits until the swap is over (SQLite transactions here take the write lock at BEGIN); the
// key is deleted only if it holds the wanted value; the writes expire no later than the guard.
// The reads follow the transaction.
func (s *Store) Swap(ctx context.Context, sw tokens.Swap) (tokens.Swapped, error) {
	for _, e := range sw.Writes {
		if err := checkTTL(e.TTL); err != nil {
			return tokens.Swapped{}, err
		}
	}
	s.stmts.prepare(ctx, s.swapGuardQuery(), swapTakeQuery, swapValueQuery, upsertQuery(len(sw.Writes)))
	var out tokens.Swapped
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		out, err = s.swapIn(ctx, tx, sw)
		return err
	})
	if err != nil {
		return tokens.Swapped{}, s.fail("swap", err)
	}
	if len(sw.Reads) > 0 {
		if out.Reads, err = s.GetMany(ctx, sw.Reads...); err != nil {
			return tokens.Swapped{}, err
		}
	}
	return out, nil
}

// swapIn is the transaction of Swap.
func (s *Store) swapIn(ctx context.Context, bunTx bun.Tx, sw tokens.Swap) (tokens.Swapped, error) {
	tx := s.stmts.in(bunTx)
	now := s.nowMillis()
	var out tokens.Swapped
	var guardExpiry int64
	err := tx.QueryRowContext(ctx, s.swapGuardQuery(), sw.Guard, now).Scan(&out.Guard, &guardExpiry)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return out, err
	}
	if err == nil {
		out.Guard = present(out.Guard)
		err = tx.QueryRowContext(ctx, swapTakeQuery, sw.Key, sw.Want, now).Scan(&out.Value)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return out, err
		}
		out.Done = err == nil
	}
	if out.Done {
		out.Value = present(out.Value)
		return out, upsert(ctx, tx, sw.Writes, func(ttl time.Duration) int64 { return min(now+ttlMillis(ttl), guardExpiry) })
	}
	err = tx.QueryRowContext(ctx, swapValueQuery, sw.Key, now).Scan(&out.Value)
	if err == nil {
		out.Value = present(out.Value)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return out, err
	}
	return out, nil
}

// The queries of Swap. The guard is read, on PostgreSQL with a lock that keeps it from being
// deleted until the transaction ends; SQLite has no such clause and needs none, since its
// transactions here lock the database.
const (
	swapTakeQuery  = `DELETE FROM token_state WHERE key = ? AND value = ? AND expires_at > ? RETURNING value`
	swapValueQuery = `SELECT value FROM token_state WHERE key = ? AND expires_at > ?`
)

func (s *Store) swapGuardQuery() string {
	if s.db.Dialect == sqldb.Postgres {
		return `SELECT value, expires_at FROM token_state WHERE key = ? AND expires_at > ? FOR SHARE`
	}
	return `SELECT value, expires_at FROM token_state WHERE key = ? AND expires_at > ?`
}

// present is a value read from a live row: non-nil, whatever the driver makes of an empty one.
func present(value []byte) []byte {
	if value == nil {
		return []byte{}
	}
	return value
}

// Take deletes the live row and returns its value in one statement: of concurrent callers only
// the one whose DELETE removed the row gets it back.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	var value []byte
	err := s.stmts.QueryRowContext(ctx,
		`DELETE FROM token_state WHERE key = ? AND expires_at > ? RETURNING value`,
		key, s.nowMillis()).Scan(&value)
	return s.value("take", value, err)
}

// Delete removes the live row under key and reports whether there was one. An expired row is
// left for Sweep: it is already invisible.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	res, err := s.stmts.ExecContext(ctx,
		`DELETE FROM token_state WHERE key = ? AND expires_at > ?`,
		key, s.nowMillis())
	if err != nil {
		return false, s.fail("delete", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.fail("delete", err)
	}
	return n > 0, nil
}

// Incr creates the counter at 1 with its window, or adds one to a live counter without touching
// its expiry, or restarts an expired one: one upsert, so concurrent increments never lose a count.
// All the CASE branches read the row as it was before the update.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	now, expiresAt, err := s.window(ttl)
	if err != nil {
		return 0, err
	}
	var count int64
	err = s.stmts.QueryRowContext(ctx, `
		INSERT INTO token_state (key, counter, expires_at) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			counter    = CASE WHEN token_state.expires_at <= ? THEN 1 ELSE token_state.counter + 1 END,
			expires_at = CASE WHEN token_state.expires_at <= ? THEN excluded.expires_at ELSE token_state.expires_at END,
			value      = CASE WHEN token_state.expires_at <= ? THEN NULL ELSE token_state.value END
		RETURNING counter`,
		key, expiresAt, now, now, now).Scan(&count)
	if err != nil {
		return 0, s.fail("incr", err)
	}
	return count, nil
}

// Decr takes one off the live counter under key, never below zero; its expiry is not touched.
func (s *Store) Decr(ctx context.Context, key string) (int64, error) {
	var count int64
	err := s.stmts.QueryRowContext(ctx, `
		UPDATE token_state SET counter = counter - 1
		WHERE key = ? AND expires_at > ? AND counter > 0
		RETURNING counter`,
		key, s.nowMillis()).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("decr", err)
	}
	return count, nil
}

// Ping reports whether the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Sweep deletes the expired rows and returns how many it deleted. Unlike Redis, a SQL database
// does not expire rows by itself, and expired rows are only ever hidden, so without Sweep the
// table would grow with every token ever issued. The server calls it periodically; the index on
// expires_at keeps it cheap.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM token_state WHERE expires_at <= ?`, s.nowMillis())
	if err != nil {
		return 0, s.fail("sweep", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("sweep", err)
	}
	return n, nil
}

// window returns the current time and the expiry of a key written now with ttl, both in unix
// milliseconds. A TTL below a millisecond is rounded up so that it never yields a dead key.
func (s *Store) window(ttl time.Duration) (now, expiresAt int64, err error) {
	if err := checkTTL(ttl); err != nil {
		return 0, 0, err
	}
	now = s.nowMillis()
	return now, now + ttlMillis(ttl), nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("token store: ttl must be positive, got %v", ttl)
	}
	return nil
}

// ttlMillis rounds a positive ttl up to whole milliseconds.
func ttlMillis(ttl time.Duration) int64 {
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

func (s *Store) nowMillis() int64 { return s.now().UnixMilli() }

// value turns the result of a single-row read into the Store's answer.
func (s *Store) value(op string, value []byte, err error) ([]byte, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tokens.ErrNotFound
	}
	if err != nil {
		return nil, s.fail(op, err)
	}
	return value, nil
}

func (s *Store) fail(op string, err error) error { return fail("token store "+op, err) }
