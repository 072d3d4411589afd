package tokens_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/tokens"
)

// TestClockSkewBetweenHosts is RL-05: a resource server whose clock disagrees with the token
// server's by 25 s, either way, refuses no token the token server considers valid when
// PORTARIA_CLOCK_SKEW is 30 s (docs/deploy.md), and one 90 s off refuses them: a fresh token's
// iat is in its future, or a token at the end of its life expired in its past. With the default
// 5 s, 25 s behind already refuses fresh tokens.
func TestClockSkewBetweenHosts(t *testing.T) {
	var offset atomic.Int64 // the resource server's clock minus the token server's
	for _, skew := range []time.Duration{30 * time.Second, 0} {
		e := newVTEnv(t, vtConfig{alg: keys.ES256, verifier: func(o *tokens.VerifierOptions) {
			issuerNow := o.Now
			o.Skew, o.Now = skew, func() time.Time { return issuerNow().Add(time.Duration(offset.Load())) }
		}})
		for _, tc := range []struct {
			name   string
			offset time.Duration
			age    time.Duration // how long before the verification the token was issued
			ok30   bool          // with a 30 s skew
			ok5    bool          // with the default 5 s
		}{
			{"fresh, resource server 25 s behind", -25 * time.Second, 0, true, false},
			{"fresh, resource server 25 s ahead", 25 * time.Second, 0, true, true},
			{"1 s from its end, resource server 25 s behind", -25 * time.Second, vtTTL - time.Second, true, true},
			{"1 s from its end, resource server 25 s ahead", 25 * time.Second, vtTTL - time.Second, true, false},
			{"fresh, resource server 90 s behind", -90 * time.Second, 0, false, false},
			{"1 s from its end, resource server 90 s ahead", 90 * time.Second, vtTTL - time.Second, false, false},
		} {
			offset.Store(0)
			tok, _ := e.mint()
			e.clock.Add(tc.age)
			offset.Store(int64(tc.offset))
			_, err := e.v.Verify(e.ctx, tok)
			want := tc.ok30
			if skew == 0 {
				want = tc.ok5
			}
			if want && err != nil || !want && !errors.Is(err, tokens.ErrInvalidToken) {
				t.Errorf("skew %v, a token %s: %v, want accepted %v", skew, tc.name, err, want)
			}
			e.clock.Add(-tc.age)
		}
	}
}
