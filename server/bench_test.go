package server_test

import (
	"net/http"
	"net/http/httptest"
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
