package tokens

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultRevocationInterval = 2 * time.Second
	revocationPageSize        = 500
	// revocationFallbackTTL keeps an entry that carries no expiry: dropping it at once would
	// silently undo a revocation.
	revocationFallbackTTL = 24 * time.Hour
)

// RevocationCache is the resource API's in-memory copy of the revocation feed (SECURITY.md C3):
// revoked sessions and per-user "not before" marks, pulled from a RevocationLog every few
// seconds so that revocation takes effect within seconds while access tokens are still verified
// offline. Reads are lock-free (they sit on every API request); memory stays bounded because an
// entry is dropped once every token it could void has expired. It is safe for concurrent use.
type RevocationCache struct {
	src      RevocationLog
	interval time.Duration
	now      func() time.Time

	// OnError, if set before Run, receives each failed refresh, for the caller's logger. The
	// cache itself never logs.
	OnError func(error)

	mu     sync.Mutex // serializes refreshes
	cursor int64      // Seq of the last entry applied
	state  atomic.Pointer[revocationState]
	loaded atomic.Bool
}

// revocationState is immutable once published.
type revocationState struct {
	sessions   map[string]time.Time      // sid → when the entry may be dropped
	users      map[string]userRevocation // user id → latest mark
	nextExpiry time.Time                 // earliest drop time; zero: nothing to drop
}

type userRevocation struct {
	notBefore int64 // tokens with iat ≤ notBefore (Unix seconds) are revoked
	expiresAt time.Time
}

// NewRevocationCache returns an empty cache over src (only Since is used), refreshed every
// interval by Run (default 2s). now defaults to time.Now.
func NewRevocationCache(src RevocationLog, interval time.Duration, now func() time.Time) *RevocationCache {
	if interval <= 0 {
		interval = defaultRevocationInterval
	}
	if now == nil {
		now = time.Now
	}
	return &RevocationCache{src: src, interval: interval, now: now}
}

// Run refreshes the cache at once and then every interval until ctx ends. A failed refresh
// keeps the last state; its error goes to OnError.
func (c *RevocationCache) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil && c.OnError != nil {
			c.OnError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh pulls the entries after the cursor, page by page until the log has no more, and drops
// the entries that have expired. Entries read before an error are kept (the feed is ordered, so
// the cursor moves past exactly what was applied); the error is returned and Loaded does not
// change.
func (c *RevocationCache) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	var (
		fresh   []Revocation
		cursor  = c.cursor
		readErr error
	)
read:
	for {
		page, err := c.src.Since(ctx, cursor, revocationPageSize)
		if err != nil {
			readErr = fmt.Errorf("tokens: read revocations after %d: %w", cursor, err)
			break
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Seq <= cursor {
				readErr = fmt.Errorf("tokens: revocation log returned seq %d after cursor %d", r.Seq, cursor)
				break read
			}
			cursor = r.Seq
			fresh = append(fresh, r)
		}
	}
	dataErr := c.apply(fresh, c.now())
	c.cursor = cursor
	if readErr != nil {
		return readErr
	}
	c.loaded.Store(true)
	return dataErr
}

// apply publishes a new state holding the unexpired entries of the old one plus fresh, unless
// nothing would change. Entries of an unknown kind are skipped and reported.
func (c *RevocationCache) apply(fresh []Revocation, now time.Time) error {
	old := c.state.Load()
	if old != nil && len(fresh) == 0 && (old.nextExpiry.IsZero() || now.Before(old.nextExpiry)) {
		return nil
	}
	s := &revocationState{sessions: make(map[string]time.Time), users: make(map[string]userRevocation)}
	if old != nil {
		for sid, exp := range old.sessions {
			s.addSession(sid, exp, now)
		}
		for user, m := range old.users {
			s.addUser(user, m, now)
		}
	}
	var unknown []string
	for _, r := range fresh {
		exp := r.ExpiresAt
		if exp.IsZero() {
			exp = now.Add(revocationFallbackTTL)
		}
		switch r.Kind {
		case RevokedSession:
			s.addSession(r.Subject, exp, now)
		case RevokedUser:
			s.addUser(r.Subject, userRevocation{notBefore: r.NotBefore.Unix(), expiresAt: exp}, now)
		default:
			unknown = append(unknown, string(r.Kind))
		}
	}
	c.state.Store(s)
	if len(unknown) > 0 {
		return fmt.Errorf("tokens: skipped revocations of unknown kinds %q", unknown)
	}
	return nil
}

func (s *revocationState) addSession(sid string, exp, now time.Time) {
	if !exp.After(now) {
		return
	}
	if cur, ok := s.sessions[sid]; !ok || exp.After(cur) {
		s.sessions[sid] = exp
	}
	s.noteExpiry(exp)
}

func (s *revocationState) addUser(user string, m userRevocation, now time.Time) {
	if !m.expiresAt.After(now) {
		return
	}
	if cur, ok := s.users[user]; ok {
		// The later mark voids everything the earlier one did; keep the later expiry too.
		m.notBefore = max(m.notBefore, cur.notBefore)
		if cur.expiresAt.After(m.expiresAt) {
			m.expiresAt = cur.expiresAt
		}
	}
	s.users[user] = m
	s.noteExpiry(m.expiresAt)
}

func (s *revocationState) noteExpiry(exp time.Time) {
	if s.nextExpiry.IsZero() || exp.Before(s.nextExpiry) {
		s.nextExpiry = exp
	}
}

// Revoked reports whether cl's session is revoked, or cl was issued at or before its user's
// latest not-before mark. Before the first successful Refresh it knows nothing and says false:
// gate readiness on Loaded.
func (c *RevocationCache) Revoked(cl AccessClaims) bool {
	s := c.state.Load()
	if s == nil {
		return false
	}
	if cl.SessionID != "" {
		if _, ok := s.sessions[cl.SessionID]; ok {
			return true
		}
	}
	m, ok := s.users[cl.Subject]
	return ok && cl.IssuedAt <= m.notBefore
}

// Loaded reports whether a Refresh has succeeded at least once (readiness).
func (c *RevocationCache) Loaded() bool { return c.loaded.Load() }
