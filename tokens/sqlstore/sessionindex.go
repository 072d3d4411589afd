package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/tokens"
)

// SessionIndex is tokens.SessionIndex in the session_index table. Expired rows are hidden from
// List and removed by Sweep.
type SessionIndex struct {
	db    *sqldb.DB
	stmts *statements
	now   func() time.Time
}

var _ tokens.SessionIndex = (*SessionIndex)(nil)

// NewSessionIndex returns the index on db, whose Migrations must have run. now decides which
// sessions have expired (time.Now if nil).
func NewSessionIndex(db *sqldb.DB, now func() time.Time) *SessionIndex {
	if now == nil {
		now = time.Now
	}
	return &SessionIndex{db: db, stmts: &statements{db: db}, now: now}
}

// Add inserts s; the primary key on sid makes a second Add of one sid fail with tokens.ErrExists.
func (x *SessionIndex) Add(ctx context.Context, s tokens.Session) error {
	if s.ID == "" || s.UserID == "" || s.ClientID == "" {
		return errors.New("session index add: id, user and client are required")
	}
	if s.CreatedAt.IsZero() || s.ExpiresAt.IsZero() {
		return errors.New("session index add: created_at and expires_at are required")
	}
	scope, err := encodeList(s.Scope)
	if err != nil {
		return fmt.Errorf("session index add: %w", err)
	}
	amr, err := encodeList(s.AMR)
	if err != nil {
		return fmt.Errorf("session index add: %w", err)
	}
	var authTime int64
	if !s.AuthTime.IsZero() {
		authTime = s.AuthTime.UnixMilli()
	}
	_, err = x.stmts.ExecContext(ctx, `
		INSERT INTO session_index (sid, user_id, client_id, org, scope, amr, auth_time, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.UserID, s.ClientID, s.Org, scope, amr, authTime, s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli())
	if errors.Is(sqldb.Translate(err), sqldb.ErrUnique) {
		return fmt.Errorf("session index add %s: %w", s.ID, tokens.ErrExists)
	}
	if err != nil {
		return fail("session index add", err)
	}
	return nil
}

// Remove deletes the row of sid, if there is one.
func (x *SessionIndex) Remove(ctx context.Context, sid string) error {
	if _, err := x.db.ExecContext(ctx, `DELETE FROM session_index WHERE sid = ?`, sid); err != nil {
		return fail("session index remove", err)
	}
	return nil
}

// RemoveUser deletes the rows of userID created at or before before.
func (x *SessionIndex) RemoveUser(ctx context.Context, userID string, before time.Time) error {
	_, err := x.db.ExecContext(ctx,
		`DELETE FROM session_index WHERE user_id = ? AND created_at <= ?`, userID, before.UnixMilli())
	if err != nil {
		return fail("session index remove user", err)
	}
	return nil
}

// List returns up to tokens.SessionListLimit unexpired sessions of userID, newest first; sessions
// created in the same millisecond come in a stable (sid) order.
func (x *SessionIndex) List(ctx context.Context, userID string) ([]tokens.Session, error) {
	rows, err := x.db.QueryContext(ctx, `
		SELECT sid, user_id, client_id, org, scope, amr, auth_time, created_at, expires_at
		FROM session_index
		WHERE user_id = ? AND expires_at > ?
		ORDER BY created_at DESC, sid DESC
		LIMIT ?`,
		userID, x.now().UnixMilli(), tokens.SessionListLimit)
	if err != nil {
		return nil, fail("session index list", err)
	}
	defer rows.Close()
	var out []tokens.Session
	for rows.Next() {
		var (
			s                              tokens.Session
			scope, amr                     string
			authTime, createdAt, expiresAt int64
		)
		if err := rows.Scan(&s.ID, &s.UserID, &s.ClientID, &s.Org, &scope, &amr, &authTime, &createdAt, &expiresAt); err != nil {
			return nil, fail("session index list", err)
		}
		if s.Scope, err = decodeList(scope); err != nil {
			return nil, fmt.Errorf("session index list: session %s: %w", s.ID, err)
		}
		if s.AMR, err = decodeList(amr); err != nil {
			return nil, fmt.Errorf("session index list: session %s: %w", s.ID, err)
		}
		if authTime != 0 {
			s.AuthTime = time.UnixMilli(authTime).UTC()
		}
		s.CreatedAt = time.UnixMilli(createdAt).UTC()
		s.ExpiresAt = time.UnixMilli(expiresAt).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fail("session index list", err)
	}
	return out, nil
}

// Sweep deletes the rows of expired sessions and returns how many it deleted; the server calls
// it periodically, like (*Store).Sweep. Sessions ended early are removed by Revoke, RevokeUser
// or tokens.Sessions.List.
func (x *SessionIndex) Sweep(ctx context.Context) (int64, error) {
	res, err := x.db.ExecContext(ctx,
		`DELETE FROM session_index WHERE expires_at <= ?`, x.now().UnixMilli())
	if err != nil {
		return 0, fail("session index sweep", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fail("session index sweep", err)
	}
	return n, nil
}

// encodeList stores a list as a JSON array, never null.
func encodeList(l []string) (string, error) {
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	return string(b), err
}

// decodeList reads a JSON array; an empty one is nil, as in a Session that never had the list.
func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}
