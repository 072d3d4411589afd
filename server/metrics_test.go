package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
)

func TestMetricsCountRequestsTokensReuseAndFailures(t *testing.T) {
	body := metricsAfterTraffic(t)
	for _, want := range []string{
		`portaria_tokens_issued_total{grant="client_credentials"} 1`,
		`portaria_tokens_issued_total{grant="password"} 1`,
		`portaria_tokens_issued_total{grant="refresh_token"} 1`,
		`portaria_refresh_reuse_total 1`,
		`portaria_login_failures_total{reason="credentials"} 1`,
		`portaria_http_requests_total{method="POST",route="/oauth/token",status="200"}`,
		`portaria_http_request_duration_seconds_bucket{route="/oauth/token"`,
		`go_goroutines`,
		`portaria_key_rotations_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// metricsAfterTraffic scrapes /metrics of a new server after one request of each kind it counts:
// a client_credentials grant, a wrong password, a login, a refresh and a reuse of the used token
// after the grace window.
func metricsAfterTraffic(t *testing.T) string {
	t.Helper()
	f := newLoginFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret)
	f.post(t, "/oauth/token", "grant_type=password&username=ana%40acme.test&password=wrong-password", f.app.ID, f.appSecret)
	tok := f.login(t)
	f.refresh(t, tok.RefreshToken, "")
	f.clock.Advance(6 * time.Second)
	f.refresh(t, tok.RefreshToken, "") // reuse after the grace window

	return string(f.rawDo(t, http.MethodGet, "/metrics", "", "", "").body)
}
