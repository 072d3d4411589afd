package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portaria/portaria/identity"
)

// BenchmarkClientCredentials measures the token endpoint's handler, without the network.
func BenchmarkClientCredentials(b *testing.B) {
	f := newFixture(b)
	c, secret, err := f.ids.CreateClient(b.Context(), identity.NewClient{Name: "bench", Grants: []string{"client_credentials"}, Scopes: []string{"a"}})
	if err != nil {
		b.Fatal(err)
	}
	h := f.srv.Config.Handler
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.ID, secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkPasswordGrant measures a whole password login through the handler, with the tests'
// cheap argon2id parameters: what a login costs besides the hash.
func BenchmarkPasswordGrant(b *testing.B) {
	f := newLoginFixture(b)
	body := "grant_type=password&scope=api&username=" + url.QueryEscape("ana@acme.test") + "&password=" + url.QueryEscape(userPassword)
	b.ReportAllocs()
	for b.Loop() {
		postToken(b, f.srv.Config.Handler, body, f.app.ID, f.appSecret)
	}
}

// BenchmarkRefreshGrant measures the refresh grant through the handler, in a chain as a client
// refreshes, with the token state in SQLite and in Redis.
func BenchmarkRefreshGrant(b *testing.B) {
	for name, opts := range map[string][]fixtureOption{"sqlite": nil, "redis": {withRedisTokens()}} {
		b.Run(name, func(b *testing.B) {
			f := newLoginFixture(b, opts...)
			body := "grant_type=password&scope=api&username=" + url.QueryEscape("ana@acme.test") + "&password=" + url.QueryEscape(userPassword)
			rt := postToken(b, f.srv.Config.Handler, body, f.app.ID, f.appSecret).RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				rt = postToken(b, f.srv.Config.Handler, "grant_type=refresh_token&refresh_token="+url.QueryEscape(rt), f.app.ID, f.appSecret).RefreshToken
			}
		})
	}
}

// postToken posts body to the token endpoint of h with HTTP Basic client authentication and
// returns the answer, failing b unless it is 200.
func postToken(b *testing.B, h http.Handler, body, clientID, secret string) tokenAnswer {
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var answer tokenAnswer
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer.RefreshToken == "" {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return answer
}

// tokenAnswer is what the benchmarks read of a token response.
type tokenAnswer struct {
	RefreshToken string `json:"refresh_token"`
}
