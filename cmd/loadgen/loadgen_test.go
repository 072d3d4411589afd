package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
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
	req, err := scenarioTable()[0].request(srv.URL, creds)(context.Background())
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
	opts := options{scenario: sc, duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, rounds: 1, concurrency: 4}
	targets := []target{
		{name: "baseline", url: srv.URL, creds: creds},
		{name: "target", url: srv.URL, creds: creds},
	}
	var progress strings.Builder
	results, err := measure(context.Background(), opts, targets, &progress)
	if err != nil {
		t.Fatal(err)
	}
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
	rep := summarize(opts, results, 0.8)
	if rep.Ratio <= 0 {
		t.Errorf("ratio = %v, want positive", rep.Ratio)
	}
	var out strings.Builder
	if err := rep.writeText(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "ratio target/baseline") {
		t.Errorf("the table has no ratio line:\n%s", out.String())
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress:\n%s\n%s", progress.String(), out.String())
}

func TestMeasureStopsWhenTheContextIsCancelled(t *testing.T) {
	_, srv, creds := newTestBaseline(t)
	sc, _ := findScenario("client_credentials")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	opts := options{scenario: sc, duration: time.Hour, warmup: time.Hour, rounds: 100, concurrency: 2}
	if _, err := measure(ctx, opts, []target{{name: "baseline", url: srv.URL, creds: creds}}, io.Discard); err == nil {
		t.Fatal("measure with a cancelled context succeeded")
	}
}

func TestFlagsRefuseCredentialsWithoutTarget(t *testing.T) {
	if code := run(context.Background(), []string{"-client-id", "x"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	if code := run(context.Background(), []string{"-scenario", "nope"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("exit status %d, want 2", code)
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
