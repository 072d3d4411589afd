package tokens

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
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
	// OnReplay, if not nil, is called for every other use of a used refresh token that is
	// refused because its family has ended (revoked by an earlier reuse, a logout or an
	// administrator, or expired): together with OnReuse, one call per replay (SECURITY.md F3),
	// for as long as the token's tombstone lasts (the family's lifetime). The Session names the
	// family and the client presenting the token, and the user when known: a family already
	// deleted is known only to an instance that saw it.
	OnReplay func(ctx context.Context, s Session)
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
//	rt:{sid}:<hash>    a live (unused) refresh token of the family; the value names the client
//	                   it was issued to (tokenRecord), never the token
//	used:{sid}:<hash>  tombstone of a used token: the time of its first use
//	nb:{user}          per-user "not before" mark set by RevokeUser
//	lu:{sid}           time of the family's last refresh, unix ms (only with an Index)
//
// Every refresh checks fam:{sid} and nb:{user} before it succeeds, so deleting the family kills
// every token of it at once, and a mark kills every family of the user.
//
// Rotation: one Store.Swap is the atomic gate. If rt:{sid}:<hash> names the presenting client
// and fam:{sid} is live, it deletes the token's record and writes the successor's record, the
// tombstone and lu:{sid}, none of them outliving the family; it returns the family record, and
// in the same round trip reads nb:{user}. Exactly one of concurrent callers does the swap. The
// family's expiry on the server's clock and the mark are checked after it: a successor written
// into a family that fails them is never handed out, and could not be used anyway.
// The successor is derived, not random: sid + "." + base64url(HMAC-SHA256(SuccessorKey, token)).
// A repeated use within Grace of the first use recomputes the same successor, as long as the
// successor is still unused; the raw successor is never stored. Any other use of a used token
// revokes the family (RFC 9700 §4.14.2).
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
	onReplay     func(ctx context.Context, s Session)
	index        SessionIndex
	known        knownFamilies
	macs         sync.Pool // of HMAC-SHA256 keyed with key (successor)
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
		onReplay:     opts.OnReplay,
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
	if err := s.store.Put(ctx, tokenKey(sess.ID, token), tokenRecord(sess.ClientID), s.tokenTTL(ttl)); err != nil {
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
	s.known.put(sess.ID, knownFamily{record: record, sess: sess})
	return token, sess, nil
}

// Refresh rotates refreshToken, presented by clientID, and returns its successor and the session.
// A token of another client is refused and stays valid for its own. Store errors are returned as
// they are (ErrUnavailable for an outage), never as success.
//
// The common path is one store round trip: the Swap that takes the token, writes its successor
// and reads the family and the user's not-before mark. The mark's key names the user, and the
// successor's TTL depends on the family's expiry: this instance remembers both for the families
// it has seen, and the first refresh of a family here reads the family record first.
func (s *Sessions) Refresh(ctx context.Context, refreshToken, clientID string) (string, Session, error) {
	sid, ok := parseRefreshToken(refreshToken)
	if !ok {
		return "", Session{}, ErrInvalidGrant
	}
	known, err := s.knownFamily(ctx, sid)
	if errors.Is(err, ErrSessionNotFound) {
		return "", Session{}, s.ended(ctx, Session{ID: sid, ClientID: clientID}, refreshToken, nil)
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
	remaining := known.ExpiresAt.Sub(s.now())
	if remaining <= 0 {
		return "", Session{}, s.ended(ctx, known, refreshToken, nil)
	}
	return s.rotate(ctx, refresh{
		sid: sid, token: refreshToken, clientID: clientID, successor: s.successor(refreshToken),
		owner: known.UserID, remaining: remaining,
	})
}

// UserOf returns the user whose family refreshToken names, so that a caller can check the user
// before Refresh consumes the token: a check that fails (the user's database cut off) then leaves
// the token as it was. The family is taken as this instance remembers it, or read from the
// store; whether the token and its family are still valid is Refresh's to decide. A token that
// names no family is ErrInvalidGrant.
func (s *Sessions) UserOf(ctx context.Context, refreshToken string) (string, error) {
	sid, ok := parseRefreshToken(refreshToken)
	if !ok {
		return "", ErrInvalidGrant
	}
	known, err := s.knownFamily(ctx, sid)
	if errors.Is(err, ErrSessionNotFound) {
		return "", ErrInvalidGrant
	}
	if err != nil {
		return "", fmt.Errorf("user of refresh token: %w", err)
	}
	return known.UserID, nil
}

// refresh is one use of a refresh token: the token, its family, who presents it, and what
// follows from them.
type refresh struct {
	sid, token, clientID string
	successor            string        // derived from token (successor)
	owner                string        // the family's user, known before the swap
	remaining            time.Duration // the family's remaining lifetime
}

// knownFamily returns family sid as this instance remembers it, or as read from the store. What
// it remembers may be a family that has ended since: only the user and the expiry are used.
func (s *Sessions) knownFamily(ctx context.Context, sid string) (Session, error) {
	if f, ok := s.known.get(sid); ok {
		return f.sess, nil
	}
	return s.family(ctx, sid)
}

// rotate swaps the token for its successor. The swap is the atomic gate: of concurrent uses of
// one token exactly one does it, and it stores the successor's record, the tombstone and the
// time of use in the same step, so that a caller that finds the token gone always finds the
// tombstone and the successor next to it (reused). The swap happens only if the token's record
// names the client presenting it, so a token shown by another client is never consumed: it stays
// valid for its own client. Nothing is ever put back.
//
// After an error the swap may or may not have happened: the error is returned and nothing is
// undone. A retry of the token then finds the successor (grace) or finds nothing and is refused.
func (s *Sessions) rotate(ctx context.Context, r refresh) (string, Session, error) {
	res, err := s.swap(ctx, r, tokenRecord(r.clientID))
	if err == nil && olderRecord(res) {
		res, err = s.swapOlder(ctx, r, res)
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
	switch {
	case res.Guard == nil:
		// The family is gone: revoked, ended by reuse, or expired.
		return "", Session{}, s.ended(ctx, Session{ID: r.sid, UserID: r.owner, ClientID: r.clientID}, r.token, nil)
	case res.Done:
		return s.rotated(ctx, r, res)
	case res.Value == nil:
		return s.reused(ctx, r)
	}
	// The record names another client: the token stays valid for its own.
	return "", Session{}, ErrInvalidGrant
}

// swap is the Swap of a rotation: if the token's record is want and the family is live, take the
// token and write the successor's record (in the current form), then the tombstone, so that a
// tombstone always means that the successor exists or existed, then the time of use for List;
// and read the owner's mark. The store keeps the writes from outliving the family even if the
// clocks disagree.
func (s *Sessions) swap(ctx context.Context, r refresh, want []byte) (Swapped, error) {
	at := strconv.AppendInt(nil, s.now().UnixMilli(), 10)
	writes := []Entry{
		{Key: tokenKey(r.sid, r.successor), Value: tokenRecord(r.clientID), TTL: s.tokenTTL(r.remaining)},
		{Key: usedKey(r.sid, r.token), Value: at, TTL: r.remaining},
	}
	if s.index != nil {
		writes = append(writes, Entry{Key: lastUsedKey(r.sid), Value: at, TTL: r.remaining})
	}
	return s.store.Swap(ctx, Swap{
		Key: tokenKey(r.sid, r.token), Want: want, Guard: familyKey(r.sid),
		Writes: writes, Reads: []string{notBeforeKey(r.owner)},
	})
}

// olderRecord reports whether a swap found the token's record, in a live family, in a form
// written before records named their client, and so did not match.
func olderRecord(res Swapped) bool {
	return !res.Done && res.Guard != nil && res.Value != nil && !bytes.HasPrefix(res.Value, []byte(tokenRecordPrefix))
}

// swapOlder swaps a token whose record does not name its client, on the value found, once the
// family has said the client is the right one. A token of another client is left as it is.
func (s *Sessions) swapOlder(ctx context.Context, r refresh, found Swapped) (Swapped, error) {
	sess, err := s.decodeFamily(r.sid, found.Guard)
	if errors.Is(err, ErrSessionNotFound) || (err == nil && sess.ClientID != r.clientID) {
		return Swapped{Value: found.Value, Guard: found.Guard}, nil
	}
	if err != nil {
		return Swapped{}, err
	}
	return s.swap(ctx, r, found.Value)
}

// rotated finishes a rotation that res says was done, with the checks the store cannot make:
// the family's expiry on this server's clock, its client, and the user's not-before mark. A
// successor stored for a family that fails them is harmless: every use of it checks the same.
func (s *Sessions) rotated(ctx context.Context, r refresh, res Swapped) (string, Session, error) {
	sess, err := s.decodeFamily(r.sid, res.Guard)
	if errors.Is(err, ErrSessionNotFound) {
		return "", Session{}, ErrInvalidGrant
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
	notBefore, err := s.markOf(ctx, sess.UserID, r.owner, res.Reads)
	if err != nil {
		return "", Session{}, fmt.Errorf("refresh: %w", err)
	}
	if sess.CreatedAt.UnixMilli() <= notBefore || sess.ClientID != r.clientID {
		return "", Session{}, ErrInvalidGrant
	}
	return r.successor, sess, nil
}

// markOf decodes the not-before mark of userID from the swap's reads, which hold the mark of
// owner; only a corrupt record makes them differ, and then userID's mark is read.
func (s *Sessions) markOf(ctx context.Context, userID, owner string, reads [][]byte) (int64, error) {
	if userID != owner || len(reads) != 1 {
		return s.notBefore(ctx, userID)
	}
	return decodeNotBefore(reads[0])
}

// tokenTTL is how long an unused refresh token lives: the family's remaining lifetime, or the
// idle timeout when that is shorter.
func (s *Sessions) tokenTTL(remaining time.Duration) time.Duration {
	if s.idle > 0 && s.idle < remaining {
		return s.idle
	}
	return remaining
}

// raceBackoff is how long a caller that finds a token gone without a trace waits, in all about a
// quarter of a second, for one to appear. A swap leaves none of these gaps, but an instance of
// an older version takes a token and writes its successor in separate steps, or puts a token
// back; giving up too early would then answer a legitimate concurrent refresh with
// invalid_grant and log the user out. Only such races and guessed tokens under a live sid wait.
var raceBackoff = []time.Duration{
	2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
	32 * time.Millisecond, 64 * time.Millisecond, 64 * time.Millisecond, 64 * time.Millisecond,
}

// reused handles a token whose record is gone: used before (or being used right now), expired,
// never issued, or taken for a moment by an instance of an older version (raceBackoff). Each look
// is one GetMany of the family, the token's tombstone, its successor's record, its own record
// and the owner's not-before mark.
func (s *Sessions) reused(ctx context.Context, r refresh) (string, Session, error) {
	keys := []string{familyKey(r.sid), usedKey(r.sid, r.token), tokenKey(r.sid, r.successor), tokenKey(r.sid, r.token), notBeforeKey(r.owner)}
	for attempt := 0; ; attempt++ {
		v, err := s.store.GetMany(ctx, keys...)
		if err != nil {
			return "", Session{}, fmt.Errorf("refresh: %w", err)
		}
		family, tombstone, next, own := v[0], v[1], v[2], v[3]
		// The family and the mark are read on every look, so that a revocation meanwhile is
		// noticed; they are checked before anything else, as for a live token: a dead family,
		// or a token shown by another client, is refused without revoking anything.
		sess, err := s.decodeFamily(r.sid, family)
		if errors.Is(err, ErrSessionNotFound) {
			return "", Session{}, s.ended(ctx, Session{ID: r.sid, UserID: r.owner, ClientID: r.clientID}, r.token, tombstone)
		}
		if err != nil {
			return "", Session{}, fmt.Errorf("refresh: %w", err)
		}
		notBefore, err := s.markOf(ctx, sess.UserID, r.owner, v[4:])
		if err != nil {
			return "", Session{}, fmt.Errorf("refresh: %w", err)
		}
		if sess.ClientID != r.clientID {
			return "", Session{}, ErrInvalidGrant
		}
		remaining := sess.ExpiresAt.Sub(s.now())
		if sess.CreatedAt.UnixMilli() <= notBefore || remaining <= 0 {
			return "", Session{}, s.ended(ctx, sess, r.token, tombstone)
		}
		switch {
		case own != nil:
			// Back again: compete for it, on the value found, since the family has just named
			// this client.
			res, err := s.swap(ctx, r, own)
			if err != nil {
				return "", Session{}, fmt.Errorf("refresh: %w", err)
			}
			if res.Done {
				return s.rotated(ctx, r, res)
			}
		case tombstone != nil:
			return s.usedAgain(ctx, sess, tombstone, next != nil, r.successor)
		case next != nil:
			// No tombstone, but a successor: an older instance is between its two writes (or
			// failed after the first), so this use is concurrent with the first. Record the
			// first use if the winner has not, so that the grace window runs.
			if s.grace == 0 {
				return "", Session{}, s.reuse(ctx, sess)
			}
			if err := s.markUsed(ctx, sess.ID, r.token, remaining); err != nil {
				return "", Session{}, err
			}
			return r.successor, sess, nil
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
		// Another use of a used token ended the family first: this one is a replay too.
		if s.onReplay != nil {
			s.onReplay(ctx, sess)
		}
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

// ended refuses token of a family that has ended, and reports it to OnReplay if the token had
// been used: its tombstone is tombstone, or is read here when nil. A token never used (the last
// of a family logged out, say) is refused without a report. The report is best effort: a store
// error only skips it, since the answer is the same.
func (s *Sessions) ended(ctx context.Context, sess Session, token string, tombstone []byte) error {
	if s.onReplay == nil {
		return ErrInvalidGrant
	}
	if tombstone == nil {
		if _, err := s.store.Get(ctx, usedKey(sess.ID, token)); err != nil {
			return ErrInvalidGrant
		}
	}
	s.onReplay(ctx, sess)
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

// decodeFamily decodes a family record as read (nil: missing) and checks its expiry. A record
// already decoded on this instance is not decoded again: records never change.
func (s *Sessions) decodeFamily(sid string, record []byte) (Session, error) {
	if record == nil {
		return Session{}, ErrSessionNotFound
	}
	known, ok := s.known.get(sid)
	if !ok || !bytes.Equal(known.record, record) {
		var f familyRecord
		if err := json.Unmarshal(record, &f); err != nil {
			return Session{}, fmt.Errorf("corrupt session %s: %w", sid, err)
		}
		known = knownFamily{record: record, sess: f.session(sid)}
		s.known.put(sid, known)
	}
	if !s.now().Before(known.sess.ExpiresAt) {
		return Session{}, ErrSessionNotFound
	}
	return known.sess, nil
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
	// A keyed HMAC costs as much to set up as to run on a token: reuse them.
	mac, ok := s.macs.Get().(hash.Hash)
	if !ok {
		mac = hmac.New(sha256.New, s.key)
	}
	defer s.macs.Put(mac)
	mac.Reset()
	mac.Write([]byte(token))
	var sum [sha256.Size]byte
	return sid + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(sum[:0]))
}

// liveRecord is the value of a marker whose presence is all that matters (one-time tokens, and
// refresh-token records of the oldest form).
var liveRecord = []byte{1}

// tokenRecordPrefix starts the value of a refresh-token record in its current form:
// "t2:" <client id>. Naming the client lets a swap refuse a token of another client without
// consuming it. Older forms ("t1:" <family expiry> ":" <user id>, and liveRecord) do not, and
// are swapped on their value once the family has named the client (swapOlder). The raw token
// is never stored.
const tokenRecordPrefix = "t2:"

// tokenRecord is the value of a record of a refresh token issued to clientID.
func tokenRecord(clientID string) []byte {
	return append([]byte(tokenRecordPrefix), clientID...)
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
