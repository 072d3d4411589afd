package server_test

// Enumeration resistance (SECURITY.md PW-04, PR-01, F12): the endpoints that take an e-mail
// before anyone is authenticated answer a known and an unknown e-mail with the same status, the
// same body and, within a bound, the same time.

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// rawAnswer is what a caller can observe of an answer, apart from its timing.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// rawDo sends a request and reads the whole answer; body is a form (token endpoint, with Basic
// credentials) when user is set, else JSON or nothing.
func (f *loginFixture) rawDo(t *testing.T, method, path, body, user, pass string) rawAnswer {
	t.Helper()
	return f.rawDoWith(t, method, path, body, user, pass)
}

// rawDoWith is rawDo with extra header name/value pairs.
func (f *loginFixture) rawDoWith(t *testing.T, method, path, body, user, pass string, header ...string) rawAnswer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, r)
	switch {
	case user != "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
	case body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{status: res.StatusCode, header: res.Header, body: b}
}

// sameAnswer fails unless a and b have the same status, body and headers, except those that
// differ between any two answers (Date, and the request id).
func sameAnswer(t *testing.T, what string, a, b rawAnswer) {
	t.Helper()
	if a.status != b.status || !bytes.Equal(a.body, b.body) {
		t.Errorf("%s: answers differ:\n%d %s\n%d %s", what, a.status, a.body, b.status, b.body)
	}
	for _, h := range []http.Header{a.header, b.header} {
		h.Del("Date")
		h.Del("X-Request-Id")
	}
	if fmt.Sprint(a.header) != fmt.Sprint(b.header) {
		t.Errorf("%s: headers differ:\n%v\n%v", what, a.header, b.header)
	}
}

func forgotBody(email string) string { return `{"email":"` + email + `"}` }

func passwordForm(email, password string) string {
	return "grant_type=password&username=" + url.QueryEscape(email) + "&password=" + url.QueryEscape(password)
}

func TestEnumerationAnswersAreIdentical(t *testing.T) {
	f := newLoginFixture(t)

	t.Run("password/forgot: a known and an unknown e-mail", func(t *testing.T) {
		known := f.rawDo(t, "POST", "/api/auth/password/forgot", forgotBody("ana@acme.test"), "", "")
		unknown := f.rawDo(t, "POST", "/api/auth/password/forgot", forgotBody("nobody@acme.test"), "", "")
		if known.status != 202 {
			t.Errorf("forgot: %d %s", known.status, known.body)
		}
		sameAnswer(t, "forgot", known, unknown)
	})

	t.Run("token endpoint: a wrong password and an unknown user", func(t *testing.T) {
		wrong := f.rawDo(t, "POST", "/oauth/token", passwordForm("ana@acme.test", "not the password"), f.app.ID, f.appSecret)
		unknown := f.rawDo(t, "POST", "/oauth/token", passwordForm("nobody@acme.test", "not the password"), f.app.ID, f.appSecret)
		if wrong.status != 400 {
			t.Errorf("wrong password: %d %s", wrong.status, wrong.body)
		}
		sameAnswer(t, "token endpoint", wrong, unknown)
	})

	t.Run("cookie login: a wrong password and an unknown user", func(t *testing.T) {
		wrong := f.rawDo(t, "POST", "/api/auth/login", `{"email":"ana@acme.test","password":"not the password"}`, "", "")
		unknown := f.rawDo(t, "POST", "/api/auth/login", `{"email":"nobody@acme.test","password":"not the password"}`, "", "")
		if wrong.status != 401 {
			t.Errorf("wrong password: %d %s", wrong.status, wrong.body)
		}
		sameAnswer(t, "cookie login", wrong, unknown)
	})

	// mfa-info masks the e-mail asked about and gives an unknown e-mail 2FA methods chosen by a
	// keyed hash of it (docs/decisions.md), so its answer is byte for byte that of some account:
	// among unknown e-mails with Ana's mask, those answering like an account without 2FA answer
	// exactly as Ana does, and, once she turns 2FA on, those answering like an account with 2FA do.
	t.Run("mfa-info: a known and an unknown e-mail", func(t *testing.T) {
		info := func(email string) rawAnswer {
			return f.rawDo(t, "GET", "/api/auth/mfa-info?email="+url.QueryEscape(email), "", "", "")
		}
		decoys := map[bool]rawAnswer{} // by whether the decoy shows 2FA
		for i := 0; i < 200 && len(decoys) < 2; i++ {
			a := info(fmt.Sprintf("a%d@acme.test", i))
			if a.status != 200 {
				t.Fatalf("mfa-info of an unknown e-mail: %d %s", a.status, a.body)
			}
			decoys[bytes.Contains(a.body, []byte(`"mfa_required":true`))] = a
		}
		if len(decoys) != 2 {
			t.Fatalf("200 unknown e-mails all answer alike: %v", decoys)
		}
		sameAnswer(t, "mfa-info without 2FA", info("ana@acme.test"), decoys[false])
		f.enrolTOTP(t)
		sameAnswer(t, "mfa-info with 2FA", info("ana@acme.test"), decoys[true])
	})
}

// timedPairs runs n rounds of a and b, in a random order within each round so that neither
// always runs on a warmer or colder machine, after a short warm-up; between (if set) runs after
// each round. It returns each kind's durations, sorted.
func timedPairs(n int, a, b func(), between func(i int)) (da, db []time.Duration) {
	timed := func(fn func()) time.Duration {
		start := time.Now()
		fn()
		return time.Since(start)
	}
	for range 10 {
		a()
		b()
	}
	for i := range n {
		if rand.IntN(2) == 0 {
			da = append(da, timed(a))
			db = append(db, timed(b))
		} else {
			db = append(db, timed(b))
			da = append(da, timed(a))
		}
		if between != nil {
			between(i)
		}
	}
	slices.Sort(da)
	slices.Sort(db)
	return da, db
}

func median(d []time.Duration) time.Duration { return d[len(d)/2] }

// timingBound is how far apart the medians may be. SECURITY.md asks for < 5 ms between the
// medians (PW-04, PR-01, F12); the bound is that plus 10 % of the slower median, so that on a
// loaded shared machine under -race, where every request stretches to several milliseconds and
// its noise with it, load alone does not fail the test, while on a quiet machine (medians of a
// few milliseconds) it stays within half a millisecond of the SECURITY figure. Medians, not means:
// requests stalled by the scheduler or the garbage collector move a mean, not a median. A purely
// relative bound (say 25 % + 2 ms) was rejected: the paths compared differ by design by a
// fraction of a millisecond (a store read for a known account), which -race multiplies, and such
// a bound would fail on that alone.
//
// With the fixture's cheap argon2id parameters a password check costs microseconds, so this test
// measures everything around the hash; that an unknown user costs the same argon2id evaluation
// as a known one holds by construction (the dummy hash has the service's parameters, asserted by
// identity's TestDummyHashIsAValidHashThatNeverMatches).
func timingBound(a, b time.Duration) time.Duration {
	return 5*time.Millisecond + max(a, b)/10
}

// timingAttempts: a leak is systematic and shows in every measurement; a burst of load on a
// shared machine seldom spans several. A comparison over the bound is measured again, and fails
// only if every attempt is over it.
const timingAttempts = 3

func TestEnumerationTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison: not in -short mode")
	}
	// The account lock would turn the wrong-password attempts into 429s: lift it, and let the
	// clock end the per-IP window (100 failures in 10 min) between rounds instead.
	f := newLoginFixture(t, withAccountFailures(1<<30))
	const n = 200
	for _, tc := range enumerationCases(t, f) {
		t.Run(tc.name, func(t *testing.T) {
			var failures []string
			for attempt := 1; attempt <= timingAttempts; attempt++ {
				if tc.between != nil {
					f.clock.Advance(11 * time.Minute) // earlier failures leave the IP window
				}
				known, unknown := timedPairs(n, tc.known, tc.unknown, tc.between)
				mk, mu := median(known), median(unknown)
				diff, bound := (mk - mu).Abs(), timingBound(mk, mu)
				t.Logf("attempt %d, %d pairs: median known %v, unknown %v, difference %v (bound %v), ratio %.2f; p90 known %v, unknown %v",
					attempt, n, mk, mu, diff, bound, float64(mk)/float64(mu), known[n*9/10], unknown[n*9/10])
				if diff < bound {
					return
				}
				failures = append(failures, fmt.Sprintf("%v (known %v, unknown %v)", diff, mk, mu))
			}
			t.Errorf("medians differ by more than the bound in every attempt: %s", strings.Join(failures, "; "))
		})
	}
}

// enumerationCase is a pair of requests that must not tell a known account from an unknown one,
// and what to do between rounds so that rate limits do not answer for them.
type enumerationCase struct {
	name           string
	known, unknown func()
	between        func(i int)
}

// enumerationCases are the requests F12 and PW-04 compare: password/forgot and mfa-info for a
// known and an unknown e-mail, and the token endpoint for a wrong password and an unknown user.
// f must not lock accounts (withAccountFailures).
func enumerationCases(t *testing.T, f *loginFixture) []enumerationCase {
	expect := func(what string, a rawAnswer, status int) {
		if a.status != status {
			t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
		}
	}
	return []enumerationCase{
		{
			name: "password/forgot",
			known: func() {
				expect("forgot, known", f.rawDo(t, "POST", "/api/auth/password/forgot", forgotBody("ana@acme.test"), "", ""), 202)
			},
			unknown: func() {
				expect("forgot, unknown", f.rawDo(t, "POST", "/api/auth/password/forgot", forgotBody("nobody@acme.test"), "", ""), 202)
			},
			// Forgot is rate-limited per account and IP in 15-minute windows: each pair gets its own.
			between: func(int) { f.clock.Advance(15 * time.Minute) },
		},
		{
			name: "mfa-info",
			known: func() {
				expect("mfa-info, known", f.rawDo(t, "GET", "/api/auth/mfa-info?email=ana%40acme.test", "", "", ""), 200)
			},
			unknown: func() {
				expect("mfa-info, unknown", f.rawDo(t, "GET", "/api/auth/mfa-info?email=nobody%40acme.test", "", "", ""), 200)
			},
			// mfa-info is rate-limited per IP per minute.
			between: func(int) { f.clock.Advance(time.Minute) },
		},
		{
			name: "token endpoint, wrong password vs unknown user",
			known: func() {
				expect("wrong password", f.rawDo(t, "POST", "/oauth/token", passwordForm("ana@acme.test", "not the password"), f.app.ID, f.appSecret), 400)
			},
			unknown: func() {
				expect("unknown user", f.rawDo(t, "POST", "/oauth/token", passwordForm("nobody@acme.test", "not the password"), f.app.ID, f.appSecret), 400)
			},
			between: func(i int) {
				if i%30 == 29 { // with the warm-up, at most 80 failures from this IP per window
					f.clock.Advance(11 * time.Minute)
				}
			},
		},
	}
}

// kolmogorovSmirnov is the two-sample Kolmogorov–Smirnov statistic of a and b (both sorted), the
// largest gap between their empirical distribution functions, and its asymptotic p-value: how
// likely two samples of one distribution are to differ that much.
func kolmogorovSmirnov(a, b []time.Duration) (d, p float64) {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		x := min(a[i], b[j])
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	ne := float64(len(a)*len(b)) / float64(len(a)+len(b))
	lambda := (math.Sqrt(ne) + 0.12 + 0.11/math.Sqrt(ne)) * d
	if lambda < 0.2 {
		return d, 1 // the series below converges slowly there, to 1
	}
	sum, sign := 0.0, 1.0
	for k := 1; k <= 100; k++ {
		term := sign * math.Exp(-2*float64(k*k)*lambda*lambda)
		sum += term
		if math.Abs(term) < 1e-12 {
			break
		}
		sign = -sign
	}
	return d, min(max(2*sum, 0), 1)
}

// The statistic and its p-value on samples whose answer is known: uniform samples shifted by 5 %
// and 10 % of their range (D = 0.05, p ≈ 0.16; D = 0.10, p ≈ 8·10⁻⁵), and identical ones.
func TestKolmogorovSmirnov(t *testing.T) {
	sample := func(shift int) []time.Duration {
		s := make([]time.Duration, 1000)
		for i := range s {
			s[i] = time.Duration(i+shift) * time.Millisecond
		}
		return s
	}
	for _, tc := range []struct {
		shift         int
		d, pMin, pMax float64
	}{
		{0, 0, 1, 1},
		{50, 0.05, 0.15, 0.17},
		{100, 0.10, 0.00007, 0.00009},
	} {
		d, p := kolmogorovSmirnov(sample(0), sample(tc.shift))
		if math.Abs(d-tc.d) > 1e-9 || p < tc.pMin || p > tc.pMax {
			t.Errorf("shift %d: D=%v p=%v, want D=%v and p in [%v, %v]", tc.shift, d, p, tc.d, tc.pMin, tc.pMax)
		}
	}
}
