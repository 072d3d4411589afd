package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidOneTimeToken: a one-time token is unknown, malformed, expired, already used, voided, or
// presented for another purpose or by another client.
var ErrInvalidOneTimeToken = errors.New("tokens: invalid one-time token")

// OneTime is what a one-time token stands for: an mfa_token, a password-reset or e-mail
// verification link, an invitation, a password_change_token.
type OneTime struct {
	Purpose   string // what the token may be used for; [a-z0-9_-]
	Subject   string // user id; with it, only the subject's newest token of the purpose is valid
	ClientID  string // if set, only this client may redeem the token
	Data      []byte // whatever the purpose needs to carry
	ExpiresAt time.Time
}

// OneTimeTokens issues and redeems single-use tokens on a Store. A token is 256 random bits,
// base64url; the store keeps only its SHA-256 under a key bound to the purpose, so a token of one
// purpose is unknown to every other. A token with a Subject is valid only while a per-subject
// pointer names it: issuing a newer token of the same purpose, or VoidSubject, voids the older
// ones ("a newer token or a successful login invalidates older ones").
type OneTimeTokens struct {
	store Store
	now   func() time.Time
}

// NewOneTimeTokens returns OneTimeTokens on store; now is the clock (time.Now if nil).
func NewOneTimeTokens(store Store, now func() time.Time) *OneTimeTokens {
	if now == nil {
		now = time.Now
	}
	return &OneTimeTokens{store: store, now: now}
}

// Issue stores ot for ttl and returns its token. ot.ExpiresAt is set from ttl.
func (o *OneTimeTokens) Issue(ctx context.Context, ot OneTime, ttl time.Duration) (string, error) {
	if !validPurpose(ot.Purpose) {
		return "", fmt.Errorf("issue one-time token: invalid purpose %q", ot.Purpose)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue one-time token: non-positive lifetime %s", ttl)
	}
	now := truncMilli(o.now())
	ot.ExpiresAt = truncMilli(now.Add(ttl))
	ttl = ot.ExpiresAt.Sub(now)
	record, err := json.Marshal(oneTimeRecord{
		Purpose: ot.Purpose, Subject: ot.Subject, ClientID: ot.ClientID, Data: ot.Data,
		ExpiresAt: ot.ExpiresAt.UnixMilli(),
	})
	if err != nil {
		return "", fmt.Errorf("issue one-time token: %w", err)
	}
	token := RandomSecret()
	hash := hashToken(token)
	if err := o.store.Put(ctx, oneTimeKey(ot.Purpose, hash), record, ttl); err != nil {
		return "", fmt.Errorf("issue one-time token: %w", err)
	}
	if ot.Subject != "" {
		// Older tokens of the subject still exist but no longer match the pointer. The pointer
		// lives as long as the newest token: once it is gone, so are the older ones.
		if err := o.store.Set(ctx, newestKey(ot.Purpose, ot.Subject), []byte(hash), ttl); err != nil {
			return "", fmt.Errorf("issue one-time token: %w", err)
		}
	}
	return token, nil
}

// Redeem consumes token for purpose, presented by clientID, and returns what it stands for. Of
// concurrent redemptions exactly one succeeds. A token of another purpose, or bound to another
// client, is refused and left unconsumed.
func (o *OneTimeTokens) Redeem(ctx context.Context, purpose, token, clientID string) (OneTime, error) {
	ot, err := o.check(ctx, purpose, token)
	if err != nil {
		return OneTime{}, err
	}
	if ot.ClientID != "" && ot.ClientID != clientID {
		return OneTime{}, ErrInvalidOneTimeToken
	}
	// Take is the gate: the checks above read the same value, but only one caller deletes it.
	if _, err := o.store.Take(ctx, oneTimeKey(purpose, hashToken(token))); err != nil {
		if errors.Is(err, ErrNotFound) {
			return OneTime{}, ErrInvalidOneTimeToken
		}
		return OneTime{}, fmt.Errorf("redeem one-time token: %w", err)
	}
	return ot, nil
}

// Peek returns what token stands for without consuming it, for flows that check a second factor
// before redeeming; it does not check the client (compare OneTime.ClientID).
func (o *OneTimeTokens) Peek(ctx context.Context, purpose, token string) (OneTime, error) {
	return o.check(ctx, purpose, token)
}

// Fail counts a wrong attempt made with token (say, a wrong one-time password with an mfa_token)
// and returns how many of limit remain. The attempt that reaches limit deletes the token. The
// count is atomic, so concurrent wrong attempts are all counted.
func (o *OneTimeTokens) Fail(ctx context.Context, purpose, token string, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("count failed attempt: limit must be positive, got %d", limit)
	}
	ot, err := o.check(ctx, purpose, token)
	if err != nil {
		return 0, err
	}
	ttl := ot.ExpiresAt.Sub(o.now())
	if ttl <= 0 {
		return 0, ErrInvalidOneTimeToken
	}
	hash := hashToken(token)
	n, err := o.store.Incr(ctx, failuresKey(purpose, hash), ttl)
	if err != nil {
		return 0, fmt.Errorf("count failed attempt: %w", err)
	}
	if n < int64(limit) {
		return limit - int(n), nil
	}
	if _, err := o.store.Delete(ctx, oneTimeKey(purpose, hash)); err != nil {
		return 0, fmt.Errorf("count failed attempt: %w", err)
	}
	return 0, nil
}

// VoidSubject voids every outstanding token of purpose issued to subject.
func (o *OneTimeTokens) VoidSubject(ctx context.Context, purpose, subject string) error {
	if !validPurpose(purpose) || subject == "" {
		return fmt.Errorf("void one-time tokens: invalid purpose %q or empty subject", purpose)
	}
	if _, err := o.store.Delete(ctx, newestKey(purpose, subject)); err != nil {
		return fmt.Errorf("void one-time tokens: %w", err)
	}
	return nil
}

// Burn records the use of a single-use access token with id jti that expires at until, and
// reports whether this was its first use. The marker lives until the token expires; an expired
// token is never accepted.
func (o *OneTimeTokens) Burn(ctx context.Context, jti string, until time.Time) (bool, error) {
	if jti == "" {
		return false, errors.New("burn token id: empty jti")
	}
	ttl := until.Sub(o.now())
	if ttl <= 0 {
		return false, nil
	}
	err := o.store.Put(ctx, "jti:"+jti, liveRecord, ttl)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrExists):
		return false, nil
	default:
		return false, fmt.Errorf("burn token id: %w", err)
	}
}

// check reads token's record and verifies everything but the client: purpose, expiry, and that
// it is the subject's newest.
func (o *OneTimeTokens) check(ctx context.Context, purpose, token string) (OneTime, error) {
	if !validPurpose(purpose) || len(token) != 43 || !decodesTo(token, 32) {
		return OneTime{}, ErrInvalidOneTimeToken
	}
	hash := hashToken(token)
	record, err := o.store.Get(ctx, oneTimeKey(purpose, hash))
	if errors.Is(err, ErrNotFound) {
		return OneTime{}, ErrInvalidOneTimeToken
	}
	if err != nil {
		return OneTime{}, fmt.Errorf("one-time token: %w", err)
	}
	var r oneTimeRecord
	if err := json.Unmarshal(record, &r); err != nil {
		return OneTime{}, fmt.Errorf("one-time token: corrupt record: %w", err)
	}
	ot := OneTime{
		Purpose: r.Purpose, Subject: r.Subject, ClientID: r.ClientID, Data: r.Data,
		ExpiresAt: time.UnixMilli(r.ExpiresAt).UTC(),
	}
	if ot.Purpose != purpose || !o.now().Before(ot.ExpiresAt) {
		return OneTime{}, ErrInvalidOneTimeToken
	}
	if ot.Subject != "" {
		newest, err := o.store.Get(ctx, newestKey(purpose, ot.Subject))
		switch {
		case errors.Is(err, ErrNotFound):
			return OneTime{}, ErrInvalidOneTimeToken // voided
		case err != nil:
			return OneTime{}, fmt.Errorf("one-time token: %w", err)
		case string(newest) != hash:
			return OneTime{}, ErrInvalidOneTimeToken // superseded by a newer token
		}
	}
	return ot, nil
}

// oneTimeRecord is the stored form of a OneTime; ExpiresAt is unix milliseconds.
type oneTimeRecord struct {
	Purpose   string `json:"purpose"`
	Subject   string `json:"subject,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Data      []byte `json:"data,omitempty"`
	ExpiresAt int64  `json:"expires_at"`
}

// Keys. The purpose is restricted to [a-z0-9_-] so that no two (purpose, subject) pairs make
// the same key.
func oneTimeKey(purpose, hash string) string   { return "ot:" + purpose + ":" + hash }
func failuresKey(purpose, hash string) string  { return "otfail:" + purpose + ":" + hash }
func newestKey(purpose, subject string) string { return "otnew:" + purpose + ":" + subject }

func validPurpose(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
