package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SessionListLimit is the most sessions SessionIndex.List returns, and so Sessions.List: a user
// with more is an anomaly, and the oldest are the ones left out.
const SessionListLimit = 200

// SessionIndex is a durable index of sessions by user (a SQL table). The store keeps sessions by
// sid only and cannot enumerate a user's; the index can. It is a copy for listing, never the
// authority: a session is live only if the store says so.
type SessionIndex interface {
	// Add records s, failing with ErrExists if its ID is already there.
	Add(ctx context.Context, s Session) error
	// Remove drops session sid; an unknown sid is not an error.
	Remove(ctx context.Context, sid string) error
	// RemoveUser drops the sessions of userID created at or before before (to the millisecond).
	RemoveUser(ctx context.Context, userID string, before time.Time) error
	// List returns up to SessionListLimit unexpired sessions of userID, newest first.
	List(ctx context.Context, userID string) ([]Session, error)
}

// SessionInfo is what a user sees of one of their sessions.
type SessionInfo struct {
	ID         string
	ClientID   string
	CreatedAt  time.Time
	LastUsedAt time.Time // the last refresh, or CreatedAt if there was none
	AMR        []string
	AuthTime   time.Time
	ExpiresAt  time.Time
}

// errNoIndex: List needs SessionOptions.Index, a wiring mistake.
var errNoIndex = errors.New("tokens: sessions have no index")

// List returns the live sessions of userID, newest first. Index entries whose session has ended
// without Revoke (reuse, an expired or lost family, a RevokeUser whose index cleanup failed) are
// skipped and dropped from the index on the way.
func (s *Sessions) List(ctx context.Context, userID string) ([]SessionInfo, error) {
	if s.index == nil {
		return nil, fmt.Errorf("list sessions: %w", errNoIndex)
	}
	if userID == "" {
		return nil, errors.New("list sessions: empty user id")
	}
	entries, err := s.index.List(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	notBefore, err := s.notBefore(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out := make([]SessionInfo, 0, len(entries))
	for _, e := range entries {
		sess, err := s.family(ctx, e.ID)
		if err == nil && sess.CreatedAt.UnixMilli() <= notBefore {
			err = ErrSessionNotFound
		}
		if errors.Is(err, ErrSessionNotFound) {
			// Best effort: an entry left behind is skipped again next time.
			s.index.Remove(ctx, e.ID)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		if sess.UserID != userID {
			continue // a corrupt entry: the store is the authority
		}
		lastUsed, err := s.lastUsed(ctx, sess)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, SessionInfo{
			ID: sess.ID, ClientID: sess.ClientID, CreatedAt: sess.CreatedAt, LastUsedAt: lastUsed,
			AMR: sess.AMR, AuthTime: sess.AuthTime, ExpiresAt: sess.ExpiresAt,
		})
	}
	return out, nil
}

// lastUsed returns the time of the session's last refresh, or its CreatedAt.
func (s *Sessions) lastUsed(ctx context.Context, sess Session) (time.Time, error) {
	v, err := s.store.Get(ctx, lastUsedKey(sess.ID))
	if errors.Is(err, ErrNotFound) {
		return sess.CreatedAt, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("corrupt last use of session %s: %w", sess.ID, err)
	}
	return time.UnixMilli(max(ms, sess.CreatedAt.UnixMilli())).UTC(), nil
}

// RevokeOwn revokes session sid on behalf of userID: only a live session of that user. Any other
// sid, another user's included, is ErrSessionNotFound, so that nobody learns which sids exist.
// It needs no index.
func (s *Sessions) RevokeOwn(ctx context.Context, userID, sid string) error {
	sess, err := s.Get(ctx, sid)
	if err != nil {
		return err
	}
	if userID == "" || sess.UserID != userID {
		return ErrSessionNotFound
	}
	return s.Revoke(ctx, sid)
}
