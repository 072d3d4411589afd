package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"
)

// RateLimit counts events per key in fixed windows on the token store, so every instance shares
// the counts: password-reset requests per account and per IP, mfa-info look-ups per IP.
type RateLimit struct {
	store Store
	now   func() time.Time
}

// NewRateLimit returns a RateLimit on store; now is the clock (time.Now if nil).
func NewRateLimit(store Store, now func() time.Time) *RateLimit {
	if now == nil {
		now = time.Now
	}
	return &RateLimit{store: store, now: now}
}

// Hit counts one event for key (scope names what is limited) and reports whether it is within
// limit events per window, and if not, when the window ends. Keys are hashed: no e-mail or IP is
// stored as such. A store error is returned: callers fail closed.
func (r *RateLimit) Hit(ctx context.Context, scope, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	if limit < 1 || window <= 0 {
		return false, 0, errors.New("tokens: rate limit needs a positive limit and window")
	}
	now := r.now()
	start := now.Truncate(window)
	h := sha256.Sum256([]byte(key))
	k := "rl:" + scope + ":{" + base64.RawURLEncoding.EncodeToString(h[:12]) + "}:" + start.UTC().Format("20060102T150405")
	n, err := r.store.Incr(ctx, k, window)
	if err != nil {
		return false, 0, err
	}
	if n > int64(limit) {
		return false, start.Add(window).Sub(now), nil
	}
	return true, 0, nil
}
