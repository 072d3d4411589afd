package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/portaria/portaria/identity"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"no values give zero", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"the median of an even count is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"the median of an odd count is the middle", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"p90 of 1..100 is 90", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100 is 99", hundred, 99, 99 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
		{"a tiny percentile is the minimum", hundred, 0.001, 1 * time.Millisecond},
		{"p99 of ten values is the largest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedianOfRounds(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3,1,2 = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4,1,3,2 = %v, want 2.5", got)
	}
}

func newTestBaseline(t *testing.T) (*baseline, *httptest.Server, credentials) {
	t.Helper()
	creds := credentials{ID: "client+one", Secret: randomToken(32)}
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	b, err := newBaseline(srv.URL, creds)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = b
	return b, srv, creds
}

func TestBaselineIssuesAVerifiableAccessToken(t *testing.T) {
	b, srv, creds := newTestBaseline(t)
	req, err := tokenRequest(url.Values{"grant_type": {"client_credentials"}})(srv.URL, creds)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, Cache-Control %q; want 200 and no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 900 || tr.Scope != "api:read" {
		t.Errorf("response = %+v", tr)
	}
	payload, err := jws.Verify([]byte(tr.AccessToken), jws.WithKey(jwa.ES256(), &b.key.PublicKey))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	msg, err := jws.Parse([]byte(tr.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != "at+jwt" {
		t.Errorf("typ = %q, want at+jwt", typ)
	}
	if kid, _ := h.KeyID(); kid != b.kid {
		t.Errorf("kid = %q, want %q", kid, b.kid)
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != srv.URL || c.Subject != creds.ID || c.ClientID != creds.ID || c.Audience != srv.URL+"/api" ||
		c.ExpiresAt-c.IssuedAt != 900 || len(c.ID) != 22 || c.Scope != "api:read" {
		t.Errorf("claims = %+v", c)
	}
}

func TestBaselineRefusesBadRequests(t *testing.T) {
	_, srv, creds := newTestBaseline(t)
	post := func(form url.Values, user, pass string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		want       int
	}{
		{"a wrong secret is invalid_client", cc, url.QueryEscape(creds.ID), "wrong", http.StatusUnauthorized},
		{"an unknown client is invalid_client", cc, "someone", creds.Secret, http.StatusUnauthorized},
		{"no client authentication is invalid_client", cc, "", "", http.StatusUnauthorized},
		{"another grant is unsupported", url.Values{"grant_type": {"password"}}, url.QueryEscape(creds.ID), creds.Secret, http.StatusBadRequest},
		{"a form over 64 KiB is refused", url.Values{"grant_type": {"client_credentials"}, "x": {strings.Repeat("a", 70<<10)}}, url.QueryEscape(creds.ID), creds.Secret, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(tt.form, tt.user, tt.pass); got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

// The baseline plays both parts here: the test needs no portaria binary, and only checks that a
// round yields positive figures and a ratio, never how fast anything is.
func TestMeasureComputesARatioOfTwoTargets(t *testing.T) {
	_, srv, creds := newTestBaseline(t)
	sc, _ := findScenario("client_credentials")
	opts := options{duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, rounds: 1}
	runners := []runner{
		newDriver(target{name: "baseline", url: srv.URL, acct: account{client: creds}}, sc.baseline, 4),
		newDriver(target{name: "target", url: srv.URL, acct: account{client: creds}}, sc.target, 4),
	}
	var progress strings.Builder
	results, err := measure(context.Background(), opts, runners, &progress)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, results)
	rep := summarize(sc.name, opts, results, 0.8)
	if rep.Ratio <= 0 || rep.Concurrency != 4 {
		t.Errorf("ratio = %v, concurrency %d; want a positive ratio and 4", rep.Ratio, rep.Concurrency)
	}
	if _, err := json.Marshal(summary{Scenarios: []report{rep}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress:\n%s", progress.String())
}

func checkResults(t *testing.T, results []targetResult) {
	t.Helper()
	for _, r := range results {
		if r.errors != 0 || r.firstError != "" {
			t.Errorf("%s: %d errors, first %q", r.name, r.errors, r.firstError)
		}
		if r.rps <= 0 || r.requests <= 0 || len(r.roundRPS) != 1 {
			t.Errorf("%s: rps %v, requests %d, rounds %v; want positive figures for one round", r.name, r.rps, r.requests, r.roundRPS)
		}
		if r.p50 <= 0 || r.p50 > r.p90 || r.p90 > r.p99 {
			t.Errorf("%s: p50 %v, p90 %v, p99 %v; want 0 < p50 ≤ p90 ≤ p99", r.name, r.p50, r.p90, r.p99)
		}
	}
}

func TestMeasureStopsWhenTheContextIsCancelled(t *testing.T) {
	_, srv, creds := newTestBaseline(t)
	sc, _ := findScenario("client_credentials")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	opts := options{duration: time.Hour, warmup: time.Hour, rounds: 100}
	d := newDriver(target{name: "baseline", url: srv.URL, acct: account{client: creds}}, sc.baseline, 2)
	if _, err := measure(ctx, opts, []runner{d}, io.Discard); err == nil {
		t.Fatal("measure with a cancelled context succeeded")
	}
}

func verifyStatus(t *testing.T, srv *httptest.Server, authorization string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/verify", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		var a verifyAnswer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.Subject == "" || a.SessionID == "" || a.Scope != "api" {
			t.Errorf("answer %+v, %v; want the token's sub, sid and scope", a, err)
		}
	}
	return resp.StatusCode
}

func TestVerifyAcceptsTheBaselinesTokenOnly(t *testing.T) {
	b, srv, _ := newTestBaseline(t)
	tok, err := b.userToken()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Errorf("typ = %q, want at+jwt", typ)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", tok)
	}
	header, payload, sig := parts[0], parts[1], parts[2]
	tamperedPayload := base64.RawURLEncoding.EncodeToString(bytes.Replace(mustDecode(t, payload), []byte(`"scope":"api"`), []byte(`"scope":"all"`), 1))

	other := *b
	other.issuer = "http://elsewhere.example"
	foreign, err := other.userToken()
	if err != nil {
		t.Fatal(err)
	}
	expired := *b
	expired.now = func() time.Time { return time.Now().Add(-verifyTTL - time.Minute) }
	old, err := expired.userToken()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := header + "." + payload + "."

	tests := []struct {
		name          string
		authorization string
		want          int
	}{
		{"its own token is accepted", "Bearer " + tok, http.StatusOK},
		{"the scheme is case-insensitive", "bearer " + tok, http.StatusOK},
		{"a changed payload is refused", "Bearer " + header + "." + tamperedPayload + "." + sig, http.StatusUnauthorized},
		{"an empty signature is refused", "Bearer " + unsigned, http.StatusUnauthorized},
		{"another issuer is refused", "Bearer " + foreign, http.StatusUnauthorized},
		{"an expired token is refused", "Bearer " + old, http.StatusUnauthorized},
		{"no token is refused", "", http.StatusUnauthorized},
		{"Basic is refused", "Basic " + tok, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifyStatus(t, srv, tt.authorization); got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rotatingServer is a token endpoint that rotates refresh tokens strictly: each may be presented
// once, and the chains of different logins never mix.
type rotatingServer struct {
	mu     sync.Mutex
	live   map[string]bool
	logins int
}

func (s *rotatingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("username") != "u@example.com" || r.PostForm.Get("password") != "pw" || r.PostForm.Get("scope") != "api" {
			writeError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		s.logins++
	case "refresh_token":
		if !s.live[r.PostForm.Get("refresh_token")] {
			writeError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(s.live, r.PostForm.Get("refresh_token"))
	default:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	next := randomToken(16)
	s.live[next] = true
	json.NewEncoder(w).Encode(tokenResponse{AccessToken: "at", RefreshToken: next, TokenType: "Bearer", ExpiresIn: 900})
}

func TestRefreshWorkersEachFollowTheirOwnChain(t *testing.T) {
	rs := &rotatingServer{live: map[string]bool{}}
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	sc, _ := findScenario("refresh")
	acct := account{client: credentials{ID: "c", Secret: "s"}, username: "u@example.com", password: "pw"}
	d := newDriver(target{name: "portaria", url: srv.URL, acct: acct}, sc.target, 4)
	defer d.close()
	opts := options{duration: 200 * time.Millisecond, warmup: 50 * time.Millisecond, rounds: 1}
	results, err := measure(context.Background(), opts, []runner{d}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, results)
	if rs.logins != 4 {
		t.Errorf("%d logins, want one per worker", rs.logins)
	}
}

func TestSessionsAboutToExpireLogInAgainBetweenRounds(t *testing.T) {
	var logins atomic.Int32
	l := load{login: func(context.Context, *http.Client, target) (session, error) {
		logins.Add(1)
		return session{request: func(context.Context) (*http.Request, error) { return nil, nil }, expires: time.Now().Add(time.Minute)}, nil
	}}
	d := newDriver(target{name: "t"}, l, 2)
	if err := d.login(context.Background(), time.Now()); err != nil || logins.Load() != 2 {
		t.Fatalf("first login: %d logins, %v; want 2", logins.Load(), err)
	}
	if err := d.login(context.Background(), time.Now().Add(30*time.Second)); err != nil || logins.Load() != 2 {
		t.Fatalf("%d logins, %v; want none while the sessions last", logins.Load(), err)
	}
	if err := d.login(context.Background(), time.Now().Add(2*time.Minute)); err != nil || logins.Load() != 4 {
		t.Fatalf("%d logins, %v; want both sessions renewed", logins.Load(), err)
	}
}

func TestHashLoopReportsARate(t *testing.T) {
	tiny := identity.PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	var out bytes.Buffer
	if err := runHashLoop(context.Background(), tiny, 50*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	var hs hashStats
	if err := json.Unmarshal(out.Bytes(), &hs); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if hs.Hashes <= 1 || hs.ElapsedNS < int64(50*time.Millisecond) || len(hs.Latencies) != hs.Hashes {
		t.Errorf("hashes %d in %v, %d latencies; want many hashes in at least 50ms", hs.Hashes, time.Duration(hs.ElapsedNS), len(hs.Latencies))
	}
}

func TestHashLoopHashesAtLeastOnce(t *testing.T) {
	tiny := identity.PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if hs := hashLoop(ctx, tiny, time.Hour); hs.Hashes != 1 || hs.ElapsedNS <= 0 {
		t.Errorf("hashes %d in %dns, want one, timed", hs.Hashes, hs.ElapsedNS)
	}
}

func TestTableHasARatioLinePerScenario(t *testing.T) {
	opts := options{duration: time.Second, rounds: 1}
	result := func(name string, conns int, rps float64) targetResult {
		return targetResult{name: name, concurrency: conns, rps: rps, roundRPS: []float64{rps}, requests: int(rps)}
	}
	sum := summary{Scenarios: []report{
		summarize("refresh", opts, []targetResult{result("baseline", 32, 1000), result("portaria", 32, 600)}, 0.5),
		summarize("password", opts, []targetResult{result("argon2id", 0, 40), result("portaria", 4, 30)}, 0.9),
	}}
	var out strings.Builder
	if err := sum.writeText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ratio refresh             portaria/baseline  0.60 (min 0.50): pass",
		"ratio password            portaria/argon2id  0.75 (min 0.90): below target",
		"(argon2id: hashes per second",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no line %q:\n%s", want, out.String())
		}
	}
}

func TestFlagsRefuseWhatDoesNotGoTogether(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"client credentials without a target", []string{"-client-id", "x"}},
		{"a user without a target", []string{"-username", "u@example.com"}},
		{"a password without a user", []string{"-target", "http://127.0.0.1:1", "-client-id", "x", "-client-secret", "y", "-password-stdin"}},
		{"an unknown scenario", []string{"-scenario", "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(context.Background(), tt.args, strings.NewReader("pw\n"), io.Discard, io.Discard); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
		})
	}
}

func TestFlagsReadThePasswordFromStdin(t *testing.T) {
	args := []string{"-scenario", "all", "-target", "http://127.0.0.1:1/", "-client-id", "x", "-client-secret", "y", "-username", "u", "-password-stdin"}
	c, err := parseFlags(args, strings.NewReader("secret word\r\nrest"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.password != "secret word" || c.target != "http://127.0.0.1:1" {
		t.Errorf("password %q, target %q", c.password, c.target)
	}
}

func TestTailKeepsTheLastLines(t *testing.T) {
	tb := &tailBuffer{max: 16}
	for _, line := range []string{"first line\n", "second line\n", "third\n", "fourth\n"} {
		if n, err := tb.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := tb.String(); got != "third\nfourth\n" {
		t.Errorf("tail = %q, want the last whole lines", got)
	}
}
