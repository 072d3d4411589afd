package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/tokens"
)

// RevocationLog is the revocation feed (tokens.RevocationLog) in the revocations table. Entries
// are ordered by seq, which readers use as their cursor; expired entries are hidden from Since
// and removed by Sweep.
type RevocationLog struct {
	db  *sqldb.DB
	now func() time.Time
}

var _ tokens.RevocationLog = (*RevocationLog)(nil)

// NewRevocationLog returns the feed on db, whose Migrations must have run. now decides which
// entries have expired (time.Now if nil).
func NewRevocationLog(db *sqldb.DB, now func() time.Time) *RevocationLog {
	if now == nil {
		now = time.Now
	}
	return &RevocationLog{db: db, now: now}
}

// Append adds r to the feed. r.Seq is ignored: the database assigns it.
//
// A reader that has seen seq n never looks below n again, so an entry must never become visible
// after one with a higher seq. PostgreSQL draws sequence values before commit, so two concurrent
// inserts could commit out of order; Append therefore holds a lock that only other appends wait
// on (readers are not blocked) until its insert commits. Revocations are rare, so serialising
// them costs nothing. SQLite serialises every write already.
func (l *RevocationLog) Append(ctx context.Context, r tokens.Revocation) error {
	if r.Kind != tokens.RevokedSession && r.Kind != tokens.RevokedUser {
		return fmt.Errorf("revocation log append: unknown kind %q", r.Kind)
	}
	if r.Subject == "" {
		return errors.New("revocation log append: empty subject")
	}
	if r.NotBefore.IsZero() || r.ExpiresAt.IsZero() {
		return errors.New("revocation log append: not_before and expires_at are required")
	}
	const insert = `INSERT INTO revocations (kind, subject, not_before, expires_at) VALUES (?, ?, ?, ?)`
	args := []any{string(r.Kind), r.Subject, r.NotBefore.UnixMilli(), r.ExpiresAt.UnixMilli()}
	var err error
	if l.db.Dialect == sqldb.Postgres {
		err = l.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE revocations IN EXCLUSIVE MODE`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, insert, args...)
			return err
		})
	} else {
		_, err = l.db.ExecContext(ctx, insert, args...)
	}
	if err != nil {
		return fail("revocation log append", err)
	}
	return nil
}

// Since returns up to limit unexpired entries with seq > cursor, in seq order.
func (l *RevocationLog) Since(ctx context.Context, cursor int64, limit int) ([]tokens.Revocation, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("revocation log since: limit must be positive, got %d", limit)
	}
	rows, err := l.db.QueryContext(ctx, `
		SELECT seq, kind, subject, not_before, expires_at FROM revocations
		WHERE seq > ? AND expires_at > ?
		ORDER BY seq LIMIT ?`,
		cursor, l.now().UnixMilli(), limit)
	if err != nil {
		return nil, fail("revocation log since", err)
	}
	defer rows.Close()
	var out []tokens.Revocation
	for rows.Next() {
		var (
			r                    tokens.Revocation
			kind                 string
			notBefore, expiresAt int64
		)
		if err := rows.Scan(&r.Seq, &kind, &r.Subject, &notBefore, &expiresAt); err != nil {
			return nil, fail("revocation log since", err)
		}
		r.Kind = tokens.RevocationKind(kind)
		r.NotBefore = time.UnixMilli(notBefore).UTC()
		r.ExpiresAt = time.UnixMilli(expiresAt).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("revocation log since", err)
	}
	return out, nil
}

// Sweep deletes the expired entries and returns how many it deleted; the server calls it
// periodically, like (*Store).Sweep. Sequence numbers are never reused, so cursors stay valid.
func (l *RevocationLog) Sweep(ctx context.Context) (int64, error) {
	res, err := l.db.ExecContext(ctx,
		`DELETE FROM revocations WHERE expires_at <= ?`, l.now().UnixMilli())
	if err != nil {
		return 0, fail("revocation log sweep", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fail("revocation log sweep", err)
	}
	return n, nil
}

// fail wraps a driver error, marking an unreachable database with tokens.ErrUnavailable so that
// callers fail closed.
func fail(op string, err error) error {
	err = sqldb.Translate(err)
	if errors.Is(err, sqldb.ErrUnavailable) {
		return fmt.Errorf("%s: %w: %w", op, tokens.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
