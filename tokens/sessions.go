package tokens

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors of Sessions.
var (
	// ErrInvalidGrant: the refresh token is unknown, malformed, expired, revoked, was issued to
	// another client, or was reused (RFC 6749 invalid_grant).
	ErrInvalidGrant = errors.New("tokens: invalid refresh token")
	// ErrSessionNotFound: no live session (never started, revoked or expired).
	ErrSessionNotFound = errors.New("tokens: session not found")
)

// Session is a login: one refresh-token family. Every refresh token of the family, and every
// access token minted from them, carries its ID as sid.
type Session struct {
	ID        string // sid, the family id
	UserID    string
	ClientID  string
	Org       string
	Scope     []string // granted at login; a refresh may narrow it, never widen it
	AMR       []string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time // absolute: rotation never extends it
}

// SessionOptions configures Sessions.
type SessionOptions struct {
	// Grace is how long after a refresh token's first use a repeated use still gets the same
	// successor instead of revoking the family (PORTARIA_REFRESH_GRACE). 0 disables it.
	Grace time.Duration
	// SuccessorKey is a server secret of at least 32 bytes from which each token's successor is
	// derived. Every instance must share it; changing it breaks only repeated uses in flight.
	SuccessorKey []byte
	// Log receives a revocation entry whenever a session or a user's sessions are revoked.
	Log RevocationLog
	// MaxAccessTTL is how long after a revocation an access token issued before it can still be
	// accepted: the longest access-token lifetime plus the verifiers' clock skew. Revocation
	// entries are dropped from the feed after it (default 24 h).
	MaxAccessTTL time.Duration
	// MaxLifetime is the longest lifetime of any family; Start shortens longer ones. The per-user
	// revocation mark lives this long (default 30 days).
	MaxLifetime time.Duration
	// IdleTimeout, if positive, ends a session whose refresh token goes unused this long
	// (RT-05); each rotation starts it again, within the absolute lifetime. 0: only the absolute
	// lifetime applies.
	IdleTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnReuse, if not nil, is called once when reuse of a refresh token revokes a family: the
	// refresh_token_reuse security event.
	OnReuse func(ctx context.Context, s Session)
	// Index, if not nil, keeps each user's sessions listable (List): Start adds to it, Revoke and
	// RevokeUser remove from it, and Refresh records the time of use in the store (with the
	// rotation's other writes, so a failure of that write fails the refresh). Without it
	// sessions cannot be listed.
	Index SessionIndex
}

// Sessions keeps refresh-token families on a Store.
//
// A refresh token is sid + "." + 256 bits, base64url; the store holds only SHA-256 hashes of
// tokens. All keys of a family carry the sid as a Redis hash tag, so they share a Cluster slot:
//
//	fam:{sid}          the Session; TTL = the family's remaining absolute lifetime
//	rt:{sid}:<hash>    a live (unused) refresh token of the family; the value names the user and
//	                   the family's expiry (tokenRecord), never the token
//	used:{sid}:<hash>  tombstone of a used token: the time of its first use
//	nb:{user}          per-user "not before" mark set by RevokeUser
//	lu:{sid}           time of the family's last refresh, unix ms (only with an Index)
//
// Every refresh checks fam:{sid} and nb:{user} before it succeeds, so deleting the family kills
// every token of it at once, and a mark kills every family of the user.
//
// Rotation: Take of rt:{sid}:<hash> is the atomic gate; exactly one caller gets the record. The
// winner then reads fam:{sid} and nb:{user} (the user comes from the record) in one GetMany, and
// writes the successor's record, the tombstone and lu:{sid} in one SetMany: three round trips.
// The successor is derived, not random: sid + "." + base64url(HMAC-SHA256(SuccessorKey, token)).
// A repeated use within Grace of the first use recomputes the same successor, as long as the
// successor is still unused; the raw successor is never stored. Any other use of a used token
// revokes the family (RFC 9700 §4.14.2). Since the checks follow the gate, a token taken by a
// caller that may not use it (another client) or cannot check it (a failed read) is put back;
// see rotate.
type Sessions struct {
	store        Store
	grace        time.Duration
	idle         time.Duration
	key          []byte
	log          RevocationLog
	maxAccessTTL time.Duration
	maxLifetime  time.Duration
	now          func() time.Time
	onReuse      func(ctx context.Context, s Session)
	index        SessionIndex
}

// NewSessions returns Sessions on store. It panics if opts has no Log or a SuccessorKey shorter
// than 32 bytes: both are wiring mistakes.
func NewSessions(store Store, opts SessionOptions) *Sessions {
	if len(opts.SuccessorKey) < 32 {
		panic("tokens: the refresh successor key must be at least 32 bytes")
	}
	if store == nil || opts.Log == nil {
		panic("tokens: sessions need a store and a revocation log")
	}
	if opts.Grace < 0 {
		opts.Grace = 0
	}
	if opts.MaxAccessTTL <= 0 {
		opts.MaxAccessTTL = 24 * time.Hour
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = 30 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sessions{
		store:        store,
		grace:        opts.Grace,
		idle:         max(opts.IdleTimeout, 0),
		key:          append([]byte(nil), opts.SuccessorKey...),
		log:          opts.Log,
		maxAccessTTL: opts.MaxAccessTTL,
		maxLifetime:  opts.MaxLifetime,
		now:          opts.Now,
		onReuse:      opts.OnReuse,
		index:        opts.Index,
	}
}

// Start begins a session and returns its first refresh token. It sets sess.ID and
// sess.CreatedAt, and sess.ExpiresAt to ttl from now (at most MaxLifetime). Times are kept to the
// millisecond.
func (s *Sessions) Start(ctx context.Context, sess Session, ttl time.Duration) (string, Session, error) {
	if ttl <= 0 {
		return "", Session{}, fmt.Errorf("start session: non-positive lifetime %s", ttl)
	}
	if sess.UserID == "" || sess.ClientID == "" {
		return "", Session{}, errors.New("start session: user and client are required")
	}
	ttl = min(ttl, s.maxLifetime)
	now := truncMilli(s.now())
	sess.ID = RandomID()
	sess.CreatedAt = now
	sess.ExpiresAt = truncMilli(now.Add(ttl))
	sess.AuthTime = truncMilli(sess.AuthTime)
	ttl = sess.ExpiresAt.Sub(now)

	record, err := json.Marshal(encodeFamily(sess))
	if err != nil {
		return "", Session{}, fmt.Errorf("start session: %w", err)
	}
	if err := s.store.Put(ctx, familyKey(sess.ID), record, ttl); err != nil {
		return "", Session{}, fmt.Errorf("start session: %w", err)
	}
	token := sess.ID + "." + RandomSecret()
	if err := s.store.Put(ctx, tokenKey(sess.ID, token), tokenRecord(sess), s.tokenTTL(ttl)); err != nil {
		return "", Session{}, fmt.Errorf("start session: %w", err)
	}
	if s.index != nil {
		if err := s.index.Add(ctx, sess); err != nil {
			// Nobody will hold the token: drop the family rather than leave a session that
			// List cannot show. Should the delete fail too, the family is unusable and expires.
			s.store.Delete(context.WithoutCancel(ctx), familyKey(sess.ID))
			return "", Session{}, fmt.Errorf("start session: %w", err)
		}
	}
	return token, sess, nil
}

// Refresh rotates refreshToken, presented by clientID, and returns its successor and the session.
// A token of another client is refused and stays valid for its own. Store errors are returned as
// they are (ErrUnavailable for an outage), never as success.
//
// The common path is three store round trips: Take of the token record (the gate), GetMany of
// the family and the user's not-before mark (whose key comes from the token record), and SetMany
// of the successor's record, the tombstone and the time of use.
func (s *Sessions) Refresh(ctx context.Context, refreshToken, clientID string) (string, Session, error) {
	sid, ok := parseRefreshToken(refreshToken)
	if !ok {
		return "", Session{}, ErrInvalidGrant
	}
	successor := s.successor(refreshToken)
	record, err := s.store.Take(ctx, tokenKey(sid, refreshToken))
	switch {
	case err == nil:
		return s.rotate(ctx, sid, refreshToken, record, clientID, successor)
	case errors.Is(err, ErrNotFound):
		return s.reused(ctx, sid, refreshToken, clientID, successor)
	default:
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
}

// rotate finishes a refresh whose Take won record, the token's record: the token is consumed
// from here on, whatever happens.
//
// The family and the not-before mark are checked after the Take, so the Take also consumes a
// token that turns out to be dead: its family was revoked, has expired, or its user was revoked.
// Such a token could never be used again anyway. What must not happen is that a live token is
// lost without a successor, which would log its holder out without cause, so:
//   - a token presented by another client is put back: it stays valid for its own client;
//   - when the family or the mark cannot be read (an outage, a timeout), the token is put back
//     too, and the error is returned. Should the store refuse the restoring write as well, the
//     token is lost and its holder must log in again; that is the trade-off of checking after
//     the gate, the same one a failed write of the successor has always had. Callers that
//     found the record missing meanwhile wait for it to come back (reused).
//
// The record is put back only before anything was written for the successor. After SetMany
// fails, some of its writes may have landed: the error is returned and nothing is undone, since
// a record put back next to a successor that might already have been handed out and used would
// let the chain fork. A retry of the token then finds the successor (grace) or finds nothing
// and is refused.
func (s *Sessions) rotate(ctx context.Context, sid, token string, record []byte, clientID, successor string) (string, Session, error) {
	rec, ok := parseTokenRecord(record)
	var sess Session
	var err error
	if ok {
		sess, err = s.liveAs(ctx, sid, rec.userID)
	} else {
		// A record written before token records named their user: two reads. Its successor
		// is written in the current form.
		sess, err = s.live(ctx, sid)
	}
	if errors.Is(err, ErrSessionNotFound) {
		return "", Session{}, ErrInvalidGrant
	}
	if err != nil {
		s.restore(ctx, sid, token, record, rec.expiresAt)
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
	now := s.now()
	remaining := sess.ExpiresAt.Sub(now)
	if remaining <= 0 {
		return "", Session{}, ErrInvalidGrant
	}
	if sess.ClientID != clientID {
		if err := s.restore(ctx, sid, token, record, sess.ExpiresAt); err != nil {
			return "", Session{}, fmt.Errorf("refresh: put back a token of another client: %w", err)
		}
		return "", Session{}, ErrInvalidGrant
	}

	// One batch: the successor's record, then the tombstone, so that a tombstone always means
	// that the successor exists, or existed and has been used; then the time of use for List.
	at := strconv.AppendInt(nil, now.UnixMilli(), 10)
	entries := []Entry{
		{Key: tokenKey(sid, successor), Value: tokenRecord(sess), TTL: s.tokenTTL(remaining)},
		{Key: usedKey(sid, token), Value: at, TTL: remaining},
	}
	if s.index != nil {
		entries = append(entries, Entry{Key: lastUsedKey(sid), Value: at, TTL: remaining})
	}
	if err := s.store.SetMany(ctx, entries); err != nil {
		return "", Session{}, fmt.Errorf("refresh: store successor: %w", err)
	}
	return successor, sess, nil
}

// tokenTTL is how long an unused refresh token lives: the family's remaining lifetime, or the
// idle timeout when that is shorter.
func (s *Sessions) tokenTTL(remaining time.Duration) time.Duration {
	if s.idle > 0 && s.idle < remaining {
		return s.idle
	}
	return remaining
}

// restore puts back the record of token, which this caller took but could not use, until
// expiresAt (the family's end). It is not cancelled with ctx: a client that went away must not
// cost the holder the token. A zero expiresAt (unknown) restores nothing.
func (s *Sessions) restore(ctx context.Context, sid, token string, record []byte, expiresAt time.Time) error {
	remaining := expiresAt.Sub(s.now())
	if expiresAt.IsZero() || remaining <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	if err := s.store.Put(ctx, tokenKey(sid, token), record, remaining); err != nil && !errors.Is(err, ErrExists) {
		return err
	}
	return nil
}

// restoreTimeout bounds the write that puts a token back after its request ended.
const restoreTimeout = 2 * time.Second

// raceBackoff is how long a caller that lost the race for a token waits, in all about a quarter
// of a second, for the winner to write the successor. The winner does so right after its Take, so
// the first few milliseconds normally suffice; the long tail covers a loaded store, since giving
// up too early would answer a legitimate concurrent refresh with invalid_grant and log the user
// out. Only such races and guessed tokens under a live sid ever wait.
var raceBackoff = []time.Duration{
	2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
	32 * time.Millisecond, 64 * time.Millisecond, 64 * time.Millisecond, 64 * time.Millisecond,
}

// reused handles a token whose record is gone: used before (or being used right now), expired,
// never issued, or taken for a moment by a caller that puts it back (rotate). Each look is one
// GetMany of the family, the token's tombstone, its successor's record and its own record.
func (s *Sessions) reused(ctx context.Context, sid, token, clientID, successor string) (string, Session, error) {
	keys := []string{familyKey(sid), usedKey(sid, token), tokenKey(sid, successor), tokenKey(sid, token)}
	var sess Session
	checked := false
	for attempt := 0; ; attempt++ {
		v, err := s.store.GetMany(ctx, keys...)
		if err != nil {
			return "", Session{}, fmt.Errorf("refresh: %w", err)
		}
		family, tombstone, next, own := v[0], v[1], v[2], v[3]
		// The family is read on every look, so that one revoked meanwhile is noticed.
		sess, err = s.decodeFamily(sid, family)
		if errors.Is(err, ErrSessionNotFound) {
			return "", Session{}, ErrInvalidGrant
		}
		if err != nil {
			return "", Session{}, fmt.Errorf("refresh: %w", err)
		}
		if !checked {
			// Checked before anything else, as for a live token: a dead family, or a token
			// shown by another client, is refused without revoking anything.
			notBefore, err := s.notBefore(ctx, sess.UserID)
			if err != nil {
				return "", Session{}, fmt.Errorf("refresh: %w", err)
			}
			if sess.CreatedAt.UnixMilli() <= notBefore || sess.ClientID != clientID {
				return "", Session{}, ErrInvalidGrant
			}
			checked = true
		}
		remaining := sess.ExpiresAt.Sub(s.now())
		if remaining <= 0 {
			return "", Session{}, ErrInvalidGrant
		}
		switch {
		case own != nil:
			// Put back by a caller that could not use it: compete for it again.
			record, err := s.store.Take(ctx, tokenKey(sid, token))
			if err == nil {
				return s.rotate(ctx, sid, token, record, clientID, successor)
			}
			if !errors.Is(err, ErrNotFound) {
				return "", Session{}, fmt.Errorf("refresh: %w", err)
			}
		case tombstone != nil:
			return s.usedAgain(ctx, sess, tombstone, next != nil, successor)
		case next != nil:
			// No tombstone, but a successor: the winner is between its two writes (or failed
			// after the first), so this use is concurrent with the first. Record the first use
			// if the winner has not, so that the grace window runs.
			if s.grace == 0 {
				return "", Session{}, s.reuse(ctx, sess)
			}
			if err := s.markUsed(ctx, sess.ID, token, remaining); err != nil {
				return "", Session{}, err
			}
			return successor, sess, nil
		}
		if attempt == len(raceBackoff) {
			// Never issued (a guessed secret under a known sid), or expired: no revocation, since
			// only a holder of a real token may end the family.
			return "", Session{}, ErrInvalidGrant
		}
		select {
		case <-time.After(raceBackoff[attempt]):
		case <-ctx.Done():
			return "", Session{}, fmt.Errorf("refresh: %w", ctx.Err())
		}
	}
}

// usedAgain answers a repeated use of a token first used at the time in tombstone; successorLive
// tells whether the successor's record was there, read right after the tombstone.
func (s *Sessions) usedAgain(ctx context.Context, sess Session, tombstone []byte, successorLive bool, successor string) (string, Session, error) {
	firstUse, err := strconv.ParseInt(string(tombstone), 10, 64)
	if err != nil {
		return "", Session{}, fmt.Errorf("refresh: corrupt tombstone: %w", err)
	}
	// Grace covers only the immediately previous token: once the successor has been used in
	// turn, this token is a grandparent and its use is reuse.
	if s.grace > 0 && s.now().UnixMilli()-firstUse <= s.grace.Milliseconds() && successorLive {
		return successor, sess, nil
	}
	return "", Session{}, s.reuse(ctx, sess)
}

// reuse ends a family whose used token came back and returns ErrInvalidGrant, or the error that
// kept it from publishing the revocation. Of concurrent callers only the one whose delete removed
// the family publishes the revocation and reports the event.
func (s *Sessions) reuse(ctx context.Context, sess Session) error {
	deleted, err := s.store.Delete(ctx, familyKey(sess.ID))
	if err != nil {
		return fmt.Errorf("refresh: revoke reused family: %w", err)
	}
	if !deleted {
		return ErrInvalidGrant
	}
	if err := s.log.Append(ctx, s.revocation(RevokedSession, sess.ID)); err != nil {
		return fmt.Errorf("refresh: revoke reused family: %w", err)
	}
	if s.onReuse != nil {
		s.onReuse(ctx, sess)
	}
	return ErrInvalidGrant
}

// markUsed writes the tombstone of token unless one is there: a caller that saw the successor
// but no tombstone records the first use, without moving a time the winner recorded.
func (s *Sessions) markUsed(ctx context.Context, sid, token string, remaining time.Duration) error {
	firstUse := strconv.AppendInt(nil, s.now().UnixMilli(), 10)
	if err := s.store.Put(ctx, usedKey(sid, token), firstUse, remaining); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("refresh: mark token used: %w", err)
	}
	return nil
}

// Get returns the live session sid, or ErrSessionNotFound.
func (s *Sessions) Get(ctx context.Context, sid string) (Session, error) {
	if !validSID(sid) {
		return Session{}, ErrSessionNotFound
	}
	sess, err := s.live(ctx, sid)
	if err != nil && !errors.Is(err, ErrSessionNotFound) {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	return sess, err
}

// SessionOf returns the live session refreshToken belongs to, without consuming it: for
// /oauth/revoke, which must check that the token is the caller's. A used token of a live family
// also names its session. Anything else is ErrSessionNotFound.
func (s *Sessions) SessionOf(ctx context.Context, refreshToken string) (Session, error) {
	sid, ok := parseRefreshToken(refreshToken)
	if !ok {
		return Session{}, ErrSessionNotFound
	}
	sess, err := s.live(ctx, sid)
	if errors.Is(err, ErrSessionNotFound) {
		return Session{}, err
	}
	if err != nil {
		return Session{}, fmt.Errorf("session of token: %w", err)
	}
	for _, key := range []string{tokenKey(sid, refreshToken), usedKey(sid, refreshToken)} {
		_, err := s.store.Get(ctx, key)
		if err == nil {
			return sess, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Session{}, fmt.Errorf("session of token: %w", err)
		}
	}
	return Session{}, ErrSessionNotFound
}

// Revoke ends session sid: its refresh tokens stop working at once, and a revocation entry tells
// resource servers to refuse its access tokens. It is idempotent, and publishes the entry even
// for a session already gone, whose access tokens may still be alive.
func (s *Sessions) Revoke(ctx context.Context, sid string) error {
	if !validSID(sid) {
		return ErrSessionNotFound
	}
	if _, err := s.store.Delete(ctx, familyKey(sid)); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if err := s.log.Append(ctx, s.revocation(RevokedSession, sid)); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	// Last: a session still in the index is already dead, and List drops it; the error only
	// asks for a retry, which is safe.
	if s.index != nil {
		if err := s.index.Remove(ctx, sid); err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
	}
	return nil
}

// RevokeUser ends every session of userID started at or before now, on every device, and tells
// resource servers to refuse the user's access tokens issued until now. It does not enumerate
// families: it sets a "not before" mark that every refresh checks against the family's
// CreatedAt, and that outlives every family (MaxLifetime). Both times are compared to the
// millisecond with ≤, so a session started in the same millisecond as the revocation, even
// just after it, dies too: erring on the side of revoking. It fails, and must be reported as not
// done, if the store or the log cannot be written.
func (s *Sessions) RevokeUser(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("revoke user sessions: empty user id")
	}
	now := truncMilli(s.now())
	mark := strconv.AppendInt(nil, now.UnixMilli(), 10)
	if err := s.store.Set(ctx, notBeforeKey(userID), mark, s.maxLifetime); err != nil {
		return fmt.Errorf("revoke user sessions: %w", err)
	}
	if err := s.log.Append(ctx, s.revocation(RevokedUser, userID)); err != nil {
		return fmt.Errorf("revoke user sessions: %w", err)
	}
	// As in Revoke, the index is cleaned last and only for List's sake.
	if s.index != nil {
		if err := s.index.RemoveUser(ctx, userID, now); err != nil {
			return fmt.Errorf("revoke user sessions: %w", err)
		}
	}
	return nil
}

// live reads the family record and checks its expiry and the user's not-before mark.
func (s *Sessions) live(ctx context.Context, sid string) (Session, error) {
	sess, err := s.family(ctx, sid)
	if err != nil {
		return Session{}, err
	}
	notBefore, err := s.notBefore(ctx, sess.UserID)
	if err != nil {
		return Session{}, err
	}
	if sess.CreatedAt.UnixMilli() <= notBefore {
		return Session{}, ErrSessionNotFound
	}
	return sess, nil
}

// liveAs is live in one round trip, for a family whose user is known beforehand (from a token
// record): it reads the family and the mark of userID together. Should the family name another
// user, which only corrupt records can cause, the mark of the family's user is read as well.
func (s *Sessions) liveAs(ctx context.Context, sid, userID string) (Session, error) {
	v, err := s.store.GetMany(ctx, familyKey(sid), notBeforeKey(userID))
	if err != nil {
		return Session{}, err
	}
	sess, err := s.decodeFamily(sid, v[0])
	if err != nil {
		return Session{}, err
	}
	var notBefore int64
	if sess.UserID == userID {
		notBefore, err = decodeNotBefore(v[1])
	} else {
		notBefore, err = s.notBefore(ctx, sess.UserID)
	}
	if err != nil {
		return Session{}, err
	}
	if sess.CreatedAt.UnixMilli() <= notBefore {
		return Session{}, ErrSessionNotFound
	}
	return sess, nil
}

// family reads the family record and checks its expiry, but not the user's not-before mark.
func (s *Sessions) family(ctx context.Context, sid string) (Session, error) {
	record, err := s.store.Get(ctx, familyKey(sid))
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrSessionNotFound
	}
	if err != nil {
		return Session{}, err
	}
	return s.decodeFamily(sid, record)
}

// decodeFamily decodes a family record as read (nil: missing) and checks its expiry.
func (s *Sessions) decodeFamily(sid string, record []byte) (Session, error) {
	if record == nil {
		return Session{}, ErrSessionNotFound
	}
	var f familyRecord
	if err := json.Unmarshal(record, &f); err != nil {
		return Session{}, fmt.Errorf("corrupt session %s: %w", sid, err)
	}
	sess := f.session(sid)
	if !s.now().Before(sess.ExpiresAt) {
		return Session{}, ErrSessionNotFound
	}
	return sess, nil
}

// notBefore returns the user's not-before mark in unix milliseconds: sessions created at or
// before it are dead. Without a mark it returns math.MinInt64.
func (s *Sessions) notBefore(ctx context.Context, userID string) (int64, error) {
	mark, err := s.store.Get(ctx, notBeforeKey(userID))
	switch {
	case errors.Is(err, ErrNotFound):
		return math.MinInt64, nil
	case err != nil:
		return 0, err
	}
	return decodeNotBefore(mark)
}

// decodeNotBefore decodes a not-before mark as read (nil: none).
func decodeNotBefore(mark []byte) (int64, error) {
	if mark == nil {
		return math.MinInt64, nil
	}
	notBefore, err := strconv.ParseInt(string(mark), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("corrupt not-before mark: %w", err)
	}
	return notBefore, nil
}

func (s *Sessions) revocation(kind RevocationKind, subject string) Revocation {
	now := s.now()
	return Revocation{Kind: kind, Subject: subject, NotBefore: now, ExpiresAt: now.Add(s.maxAccessTTL)}
}

// successor derives the token that replaces token: the same on every instance and every call,
// so repeated uses within the grace window get the one successor without it being stored.
func (s *Sessions) successor(token string) string {
	sid, _, _ := strings.Cut(token, ".")
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(token))
	return sid + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// liveRecord is the value of a marker whose presence is all that matters (one-time tokens, and
// refresh-token records written before they named their user).
var liveRecord = []byte{1}

// tokenRecordPrefix starts the value of a refresh-token record in its current form:
// "t1:" <family expiry, unix ms> ":" <user id>. The user id lets Refresh read the family and the
// user's not-before mark in one round trip; the expiry lets a token taken but not used be put
// back with its TTL. Neither is secret, and the raw token is never stored.
const tokenRecordPrefix = "t1:"

// tokenRecord is the value of a refresh-token record of sess.
func tokenRecord(sess Session) []byte {
	b := append([]byte(tokenRecordPrefix), strconv.FormatInt(sess.ExpiresAt.UnixMilli(), 10)...)
	b = append(b, ':')
	return append(b, sess.UserID...)
}

// storedToken is a decoded refresh-token record.
type storedToken struct {
	userID    string
	expiresAt time.Time
}

// parseTokenRecord decodes a refresh-token record; ok is false for the older form (liveRecord),
// which names nothing, and for anything else it cannot read.
func parseTokenRecord(record []byte) (t storedToken, ok bool) {
	rest, found := strings.CutPrefix(string(record), tokenRecordPrefix)
	if !found {
		return storedToken{}, false
	}
	ms, user, found := strings.Cut(rest, ":")
	if !found {
		return storedToken{}, false
	}
	expiresAt, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return storedToken{}, false
	}
	return storedToken{userID: user, expiresAt: time.UnixMilli(expiresAt).UTC()}, true
}

// familyRecord is the stored form of a Session; times are unix milliseconds.
type familyRecord struct {
	UserID    string   `json:"user_id"`
	ClientID  string   `json:"client_id"`
	Org       string   `json:"org,omitempty"`
	Scope     []string `json:"scope,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt int64    `json:"expires_at"`
}

func encodeFamily(s Session) familyRecord {
	f := familyRecord{
		UserID: s.UserID, ClientID: s.ClientID, Org: s.Org, Scope: s.Scope, AMR: s.AMR,
		CreatedAt: s.CreatedAt.UnixMilli(), ExpiresAt: s.ExpiresAt.UnixMilli(),
	}
	if !s.AuthTime.IsZero() {
		f.AuthTime = s.AuthTime.UnixMilli()
	}
	return f
}

func (f familyRecord) session(sid string) Session {
	s := Session{
		ID: sid, UserID: f.UserID, ClientID: f.ClientID, Org: f.Org, Scope: f.Scope, AMR: f.AMR,
		CreatedAt: time.UnixMilli(f.CreatedAt).UTC(), ExpiresAt: time.UnixMilli(f.ExpiresAt).UTC(),
	}
	if f.AuthTime != 0 {
		s.AuthTime = time.UnixMilli(f.AuthTime).UTC()
	}
	return s
}

// truncMilli drops what the store cannot keep: sub-millisecond precision, the monotonic reading and
// the location. The zero time stays zero.
func truncMilli(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// Keys. The sid or user id in braces is the Redis Cluster hash tag.
func familyKey(sid string) string       { return "fam:{" + sid + "}" }
func tokenKey(sid, token string) string { return "rt:{" + sid + "}:" + hashToken(token) }
func usedKey(sid, token string) string  { return "used:{" + sid + "}:" + hashToken(token) }
func notBeforeKey(userID string) string { return "nb:{" + userID + "}" }
func lastUsedKey(sid string) string     { return "lu:{" + sid + "}" }

// hashToken is what the store keeps of a token: SHA-256, base64url. Tokens carry 256 random (or
// HMAC) bits, so a fast unkeyed hash is enough; a leaked store yields no usable token.
func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

var strictBase64 = base64.RawURLEncoding.Strict()

// decodesTo reports whether s is canonical unpadded base64url of exactly n bytes.
func decodesTo(s string, n int) bool {
	b, err := strictBase64.DecodeString(s)
	return err == nil && len(b) == n
}

func validSID(sid string) bool { return len(sid) == 22 && decodesTo(sid, 16) }

// parseRefreshToken checks the shape of a refresh token, sid "." secret, before any store call,
// and returns its sid.
func parseRefreshToken(token string) (sid string, ok bool) {
	sid, secret, ok := strings.Cut(token, ".")
	if !ok || !validSID(sid) || len(secret) != 43 || !decodesTo(secret, 32) {
		return "", false
	}
	return sid, true
}
