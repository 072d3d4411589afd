//go:build long

package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
)

// F12 on SECURITY.md's terms (`make test-long`): 1,000 samples of each side, with OWASP's argon2id
// parameters as in production, and neither the medians (within 5 ms) nor the whole distributions
// (a two-sample Kolmogorov–Smirnov test, p > 0.01) may tell a known account from an unknown one.
// The bodies are compared by TestEnumerationAnswersAreIdentical. Run without -race, which slows
// the two sides' Go code unequally.
func TestEnumerationTimingDistributions(t *testing.T) {
	f := newLoginFixture(t, withAccountFailures(1<<30), withPasswordParams(identity.DefaultPasswordParams()))
	const n = 1000
	for _, tc := range enumerationCases(t, f) {
		t.Run(tc.name, func(t *testing.T) {
			var failures []string
			for attempt := 1; attempt <= timingAttempts; attempt++ {
				f.clock.Advance(11 * time.Minute) // earlier failures leave the IP window
				known, unknown := timedPairs(n, tc.known, tc.unknown, tc.between)
				mk, mu := median(known), median(unknown)
				d, p := kolmogorovSmirnov(known, unknown)
				t.Logf("attempt %d, %d pairs: median known %v, unknown %v (difference %v); p90 %v, %v; KS D=%.3f p=%.3f",
					attempt, n, mk, mu, (mk - mu).Abs(), known[n*9/10], unknown[n*9/10], d, p)
				if (mk-mu).Abs() < 5*time.Millisecond && p > 0.01 {
					return
				}
				failures = append(failures, fmt.Sprintf("medians %v and %v, KS p=%.4f", mk, mu, p))
			}
			t.Errorf("known and unknown told apart in every attempt: %s", strings.Join(failures, "; "))
		})
	}
}
