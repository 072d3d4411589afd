package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// setUpLogin creates a platform admin with the CLI and a first-party app client.
func setUpLogin(t *testing.T, vars map[string]string) oauth2.Config {
	t.Helper()
	code, out, errOut := cli(t, vars, "s3cret passphrase!\n", "admin", "create", "--email", "Root@Example.test", "--name", "Root", "--password-stdin")
	if code != 0 || !strings.Contains(out, `"platform:admin"`) || strings.Contains(out, "passphrase") {
		t.Fatalf("admin create: %d %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, vars, "", "clients", "create", "--name", "app", "--grant", "password", "--grant", "refresh_token", "--scope", "api")
	if code != 0 {
		t.Fatalf("clients create: %s", errOut)
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	json.Unmarshal([]byte(out), &c)
	return oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Scopes: []string{"openid", "api"}}
}

func getMe(t *testing.T, base, access string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// waitRefused polls /api/auth/me until the token is refused and returns how long it took.
func waitRefused(t *testing.T, base, access string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if getMe(t, base, access) == 401 {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("access token still accepted %s after its session was revoked", limit)
	return 0
}

func TestLoginRefreshRevokeEndToEnd(t *testing.T) {
	vars := embeddedVars(t)
	cfg := setUpLogin(t, vars)
	base, _ := startServer(t, vars)
	cfg.Endpoint = oauth2.Endpoint{TokenURL: base + "/oauth/token"}
	ctx := context.Background()
	tok, err := cfg.PasswordCredentialsToken(ctx, "root@example.test", "s3cret passphrase!")
	if err != nil {
		t.Fatal(err)
	}
	if getMe(t, base, tok.AccessToken) != 200 {
		t.Fatal("me refused a fresh token")
	}
	// Revoking the access token ends its session: the refresh token dies at once, and the
	// resource API refuses the access token within 5 s through the revocation feed.
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", err, res)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	if _, err := cfg.TokenSource(ctx, &expired).Token(); err == nil {
		t.Error("refresh after revocation succeeded")
	}
	took := waitRefused(t, base, tok.AccessToken, 5*time.Second)
	t.Logf("revoked access token refused after %s", took)
}

// TestResourceRoleVerifiesOffline runs the token server and the resource API as two servers, the
// API knowing only the JWKS URL and the shared database (SPEC §1).
func TestResourceRoleVerifiesOffline(t *testing.T) {
	tokenVars := embeddedVars(t)
	cfg := setUpLogin(t, tokenVars)
	tokenVars["PORTARIA_ISSUER"] = "http://" + tokenVars["PORTARIA_ADDR"]
	apiVars := map[string]string{}
	for k, v := range tokenVars {
		apiVars[k] = v
	}
	apiVars["PORTARIA_ADDR"] = freeAddr(t)
	apiVars["PORTARIA_JWKS_URL"] = tokenVars["PORTARIA_ISSUER"] + "/.well-known/jwks.json"

	tokenBase, _ := startServerRole(t, tokenVars, "token")
	apiBase, _ := startServerRole(t, apiVars, "api")
	cfg.Endpoint = oauth2.Endpoint{TokenURL: tokenBase + "/oauth/token"}
	tok, err := cfg.PasswordCredentialsToken(context.Background(), "root@example.test", "s3cret passphrase!")
	if err != nil {
		t.Fatal(err)
	}
	if code := getMe(t, apiBase, tok.AccessToken); code != 200 {
		t.Fatalf("api role refused the token: %d", code)
	}
	if code := getMe(t, tokenBase, tok.AccessToken); code != 200 {
		t.Errorf("me is served by both roles: %d", code)
	}
	// The resource API is the api role's, not the token server's (404).
	for base, want := range map[string]int{apiBase: 200, tokenBase: 404} {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/users?limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s/api/users: %d, want %d", base, res.StatusCode, want)
		}
	}
	if res, _ := http.Post(apiBase+"/oauth/token", "application/x-www-form-urlencoded", nil); res.StatusCode != 404 {
		t.Errorf("api role must not serve the token endpoint: %d", res.StatusCode)
	}
	form := url.Values{"token": {tok.RefreshToken}}
	req, _ := http.NewRequest(http.MethodPost, tokenBase+"/oauth/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v", err)
	}
	took := waitRefused(t, apiBase, tok.AccessToken, 5*time.Second)
	t.Logf("the api role refused the revoked session's access token after %s", took)
}

func TestAdminCreateNeedsThePasswordOnStdin(t *testing.T) {
	vars := embeddedVars(t)
	if code, _, errOut := cli(t, vars, "", "admin", "create", "--email", "a@x.test", "--name", "A"); code == 0 || !strings.Contains(errOut, "password-stdin") {
		t.Errorf("without --password-stdin: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, vars, "password123\n", "admin", "create", "--email", "a@x.test", "--name", "A", "--password-stdin"); code == 0 || !strings.Contains(errOut, "password") {
		t.Errorf("a common password: %d %s", code, errOut)
	}
	if code, _, _ := cli(t, vars, "a long enough passphrase\n", "admin", "create", "--email", "a@x.test", "--name", "A", "--password-stdin"); code != 0 {
		t.Errorf("create: %d", code)
	}
	if code, _, errOut := cli(t, vars, "a long enough passphrase\n", "admin", "create", "--email", "A@X.TEST", "--name", "A", "--password-stdin"); code == 0 || errOut == "" {
		t.Errorf("the same e-mail in other case must conflict: %d", code)
	}
}

// A shutdown lets the requests in flight finish (SPEC §2): logins that are hashing passwords
// when SIGTERM arrives still get their tokens, and run returns 0.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	vars := embeddedVars(t)
	cfg := setUpLogin(t, vars)
	// One account per login: concurrent logins of one account would meet its throttle. Four: twice
	// the hashing slots of a two-core machine keeps logins queued and in flight at the shutdown,
	// while each still gets a slot within the 2 s wait under -race on a loaded machine.
	const n = 4
	for i := range n {
		email := fmt.Sprintf("user%d@example.test", i)
		if code, _, errOut := cli(t, vars, "s3cret passphrase!\n", "admin", "create", "--email", email, "--name", "U", "--password-stdin"); code != 0 {
			t.Fatal(errOut)
		}
	}
	base, stop := startServer(t, vars)
	cfg.Endpoint = oauth2.Endpoint{TokenURL: base + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
	errs := make(chan error, n)
	started := make(chan struct{}, n)
	for i := range n {
		go func() {
			started <- struct{}{}
			_, err := cfg.PasswordCredentialsToken(context.Background(), fmt.Sprintf("user%d@example.test", i), "s3cret passphrase!")
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	// Let every request connect; argon2id (at most GOMAXPROCS at a time, ~25 ms each) keeps most
	// of them in flight when the shutdown starts.
	time.Sleep(100 * time.Millisecond)
	if code := stop(); code != 0 {
		t.Errorf("serve exited with %d", code)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a login in flight failed during shutdown: %v", err)
		}
	}
}
