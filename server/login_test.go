package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portaria/portaria/identity"
)

const userPassword = "correct horse battery staple"

// loginFixture adds an organization, a user in it and a first-party app client.
type loginFixture struct {
	*fixture
	org          identity.Organization
	user         identity.User
	app          identity.Client
	appSecret    string
	oauth2Config oauth2.Config
}

func newLoginFixture(t testing.TB, opts ...fixtureOption) *loginFixture {
	t.Helper()
	f := newFixture(t, opts...)
	ctx := context.Background()
	org, err := f.ids.CreateOrganization(ctx, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: org.ID, Email: "ana@acme.test", Name: "Ana", Password: userPassword,
		Active: true, EmailVerified: true, Permissions: []string{"users:read", "groups:read"}})
	if err != nil {
		t.Fatal(err)
	}
	app, secret := f.client(t, identity.NewClient{Name: "app", Grants: []string{"password", "refresh_token"}, Scopes: []string{"api"}})
	return &loginFixture{fixture: f, org: org, user: u, app: app, appSecret: secret, oauth2Config: oauth2.Config{
		ClientID: app.ID, ClientSecret: secret,
		Endpoint: oauth2.Endpoint{TokenURL: f.srv.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "email", "profile", "api"},
	}}
}

func (f *loginFixture) login(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", userPassword)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *loginFixture) refresh(t *testing.T, refreshToken, extra string) (*http.Response, map[string]any) {
	t.Helper()
	res := f.post(t, "/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(refreshToken)+extra, f.app.ID, f.appSecret)
	return res, decode(t, res)
}

func (f *loginFixture) me(t *testing.T, access string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPasswordLoginWithStandardClients(t *testing.T) {
	f := newLoginFixture(t)
	tok := f.login(t)
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("token %+v: want a refresh token and an ID token", tok)
	}
	header, claims := jwtParts(t, tok.AccessToken)
	if header["typ"] != "at+jwt" || claims["sub"] != f.user.ID || claims["org"] != f.org.ID || claims["sid"] == nil ||
		claims["client_id"] != f.app.ID || claims["auth_time"] == nil {
		t.Errorf("access token claims %v", claims)
	}
	// DP-02: the claims are an allowlist; nothing about the user (name, e-mail, results) rides
	// in a token anyone holding it can decode.
	names := slices.Sorted(maps.Keys(claims))
	if allowed := []string{"amr", "aud", "auth_time", "client_id", "exp", "iat", "iss", "jti", "org", "perms", "scope", "sid", "sub"}; !slices.Equal(names, allowed) {
		t.Errorf("access token claims %v, want exactly %v", names, allowed)
	}
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr %v", claims["amr"])
	}
	if perms, _ := claims["perms"].([]any); len(perms) != 2 {
		t.Errorf("perms %v", claims["perms"])
	}

	// go-oidc discovers the issuer and verifies the ID token.
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, f.issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: f.app.ID, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var idClaims struct {
		Email string `json:"email"`
		Name  string `json:"name"`
		SID   string `json:"sid"`
	}
	idt.Claims(&idClaims)
	if idt.Subject != f.user.ID || idClaims.Email != "ana@acme.test" || idClaims.Name != "Ana" || idClaims.SID != claims["sid"] {
		t.Errorf("id token %v %+v", idt.Subject, idClaims)
	}
	// The ID token is not an access token (JW-02).
	if res := f.me(t, tok.Extra("id_token").(string)); res.StatusCode != 401 {
		t.Errorf("ID token accepted as an access token: %d", res.StatusCode)
	}

	// The TokenSource refreshes an expired token with the rotating refresh token.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := f.oauth2Config.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Error("refresh must rotate both tokens")
	}
	if _, c2 := jwtParts(t, fresh.AccessToken); c2["sid"] != claims["sid"] {
		t.Error("sid must stay the same for the whole refresh family")
	}

	// userinfo (OIDC) through go-oidc.
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(fresh))
	if err != nil {
		t.Fatal(err)
	}
	if info.Subject != f.user.ID || info.Email != "ana@acme.test" || !info.EmailVerified {
		t.Errorf("userinfo %+v", info)
	}
}

func TestMeDescribesTheCaller(t *testing.T) {
	f := newLoginFixture(t)
	tok := f.login(t)
	res := f.me(t, tok.AccessToken)
	if res.StatusCode != 200 {
		t.Fatalf("me: %d", res.StatusCode)
	}
	var me struct {
		User         map[string]any `json:"user"`
		Organization map[string]any `json:"organization"`
		Permissions  []string       `json:"permissions"`
		Session      struct {
			ID       string   `json:"id"`
			AuthTime string   `json:"auth_time"`
			AMR      []string `json:"amr"`
		} `json:"session"`
	}
	json.NewDecoder(res.Body).Decode(&me)
	if me.User["id"] != f.user.ID || me.User["email"] != "ana@acme.test" || me.Organization["id"] != f.org.ID ||
		len(me.Permissions) != 2 || me.Session.ID == "" || len(me.Session.AMR) != 1 {
		t.Errorf("me %+v", me)
	}
	if _, err := time.Parse(time.RFC3339, me.Session.AuthTime); err != nil {
		t.Errorf("auth_time %q is not RFC 3339", me.Session.AuthTime)
	}
	if _, ok := me.User["password_hash"]; ok {
		t.Error("me leaks the password hash")
	}
	// The access cookie works like the header.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/auth/me", nil)
	req.AddCookie(&http.Cookie{Name: "accessToken", Value: tok.AccessToken})
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 200 {
		t.Errorf("cookie: %d", res.StatusCode)
	}
	// No token, a bad token, a machine token.
	if res := f.me(t, ""); res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") ||
		res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("no token: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	if res := f.me(t, tok.AccessToken+"x"); res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("bad token: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	machine := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret))
	if res := f.me(t, machine["access_token"].(string)); res.StatusCode != 403 {
		t.Errorf("machine token on me: %d", res.StatusCode)
	}
}

func TestPasswordGrantRefusals(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	other, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: f.org.ID, Email: "bia@acme.test", Name: "Bia", Password: userPassword, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	f.ids.SetUserActive(ctx, other.ID, false)
	svc, svcSecret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	pw := func(user, pass string) string {
		return "grant_type=password&username=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(pass)
	}
	cases := []struct {
		name       string
		body       string
		user, pass string
		status     int
		code       string
	}{
		{"a wrong password", pw("ana@acme.test", "wrong password!"), f.app.ID, f.appSecret, 400, "invalid_grant"},
		{"an unknown user", pw("nobody@acme.test", userPassword), f.app.ID, f.appSecret, 400, "invalid_grant"},
		{"a deactivated user", pw("bia@acme.test", userPassword), f.app.ID, f.appSecret, 400, "invalid_grant"},
		{"a client without the password grant", pw("ana@acme.test", userPassword), svc.ID, svcSecret, 400, "unauthorized_client"},
		{"a wrong client secret, even with the right password", pw("ana@acme.test", userPassword), f.app.ID, "nope", 401, "invalid_client"},
		{"a missing password", "grant_type=password&username=ana%40acme.test", f.app.ID, f.appSecret, 400, "invalid_request"},
		{"a scope the client lacks", pw("ana@acme.test", userPassword) + "&scope=admin", f.app.ID, f.appSecret, 400, "invalid_scope"},
	}
	bodies := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := f.post(t, "/oauth/token", tc.body, tc.user, tc.pass)
			body := decode(t, res)
			if res.StatusCode != tc.status || body["error"] != tc.code || body["access_token"] != nil {
				t.Errorf("status %d body %v, want %d %s", res.StatusCode, body, tc.status, tc.code)
			}
			b, _ := json.Marshal(body)
			bodies[tc.name] = string(b)
		})
	}
	// PW-04: the same answer for an unknown user, a wrong password and a deactivated user.
	if bodies["a wrong password"] != bodies["an unknown user"] || bodies["a wrong password"] != bodies["a deactivated user"] {
		t.Errorf("answers differ: %v", bodies)
	}
	// A deactivated organization's users cannot log in either.
	f.ids.SetOrganizationActive(ctx, f.org.ID, false)
	if res := f.post(t, "/oauth/token", pw("ana@acme.test", userPassword), f.app.ID, f.appSecret); res.StatusCode != 400 {
		t.Errorf("user of a deactivated organization: %d", res.StatusCode)
	}
}

func TestExpiredPasswordGetsAChangeTokenAndNoTokens(t *testing.T) {
	f := newLoginFixture(t)
	if err := f.ids.ExpirePassword(context.Background(), f.user.ID); err != nil {
		t.Fatal(err)
	}
	res := f.post(t, "/oauth/token", "grant_type=password&username=ana%40acme.test&password="+url.QueryEscape(userPassword), f.app.ID, f.appSecret)
	body := decode(t, res)
	if res.StatusCode != 403 || body["error"] != "password_expired" || body["password_change_token"] == nil ||
		body["access_token"] != nil || body["refresh_token"] != nil {
		t.Errorf("status %d body %v", res.StatusCode, body)
	}
	// A wrong password still gets the generic answer: no oracle.
	res = f.post(t, "/oauth/token", "grant_type=password&username=ana%40acme.test&password=wrong-password", f.app.ID, f.appSecret)
	if body := decode(t, res); body["error"] != "invalid_grant" {
		t.Errorf("wrong password on an expired account: %v", body)
	}
}

func TestRefreshRules(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	t.Run("another client cannot use the token, which stays valid", func(t *testing.T) {
		tok := f.login(t)
		other, otherSecret := f.client(t, identity.NewClient{Name: "other", Grants: []string{"password", "refresh_token"}})
		res := f.post(t, "/oauth/token", "grant_type=refresh_token&refresh_token="+tok.RefreshToken, other.ID, otherSecret)
		if body := decode(t, res); res.StatusCode != 400 || body["error"] != "invalid_grant" {
			t.Errorf("other client: %d %v", res.StatusCode, body)
		}
		if res, _ := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 200 {
			t.Errorf("own client after the attempt: %d", res.StatusCode)
		}
	})
	t.Run("a refresh without client authentication is invalid_client", func(t *testing.T) {
		tok := f.login(t)
		res := f.post(t, "/oauth/token", "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "", "")
		if res.StatusCode != 401 {
			t.Errorf("status %d", res.StatusCode)
		}
	})
	t.Run("a narrower scope narrows the access token, a wider one is refused without burning the token", func(t *testing.T) {
		tok := f.login(t)
		res, body := f.refresh(t, tok.RefreshToken, "&scope=openid+admin")
		if res.StatusCode != 400 || body["error"] != "invalid_scope" {
			t.Fatalf("wider: %d %v", res.StatusCode, body)
		}
		res, body = f.refresh(t, tok.RefreshToken, "&scope=api")
		if res.StatusCode != 200 || body["scope"] != "api" {
			t.Fatalf("narrower: %d %v", res.StatusCode, body)
		}
		if _, claims := jwtParts(t, body["access_token"].(string)); claims["scope"] != "api" {
			t.Errorf("access token scope %v", claims["scope"])
		}
	})
	t.Run("new permissions show in the refreshed token, deactivation ends the session", func(t *testing.T) {
		tok := f.login(t)
		f.ids.SetUserActive(ctx, f.user.ID, false)
		defer f.ids.SetUserActive(ctx, f.user.ID, true)
		if res, body := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
			t.Errorf("deactivated user refreshed: %d %v", res.StatusCode, body)
		}
	})
	t.Run("reuse after the grace window revokes the family", func(t *testing.T) {
		tok := f.login(t)
		_, b1 := f.refresh(t, tok.RefreshToken, "")
		rt2 := b1["refresh_token"].(string)
		// Within the grace window the same successor comes back.
		if _, again := f.refresh(t, tok.RefreshToken, ""); again["refresh_token"] != rt2 {
			t.Fatalf("within grace: %v", again)
		}
		f.clock.Advance(6 * time.Second)
		if res, body := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("reuse after grace: %d %v", res.StatusCode, body)
		}
		if res, _ := f.refresh(t, rt2, ""); res.StatusCode != 400 {
			t.Errorf("the successor must die with its family: %d", res.StatusCode)
		}
	})
}

// RT-03 over HTTP: 50 concurrent refreshes of one token, all within the grace window, get 200 and
// the one and only successor; no 5xx.
func testConcurrentRefresh(t *testing.T, opts ...fixtureOption) {
	f := newLoginFixture(t, opts...)
	for run := 0; run < 5; run++ {
		tok := f.login(t)
		const n = 50
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]string, n)
		statuses := make([]int, n)
		for i := range n {
			wg.Go(func() {
				<-start
				res := f.post(t, "/oauth/token", "grant_type=refresh_token&refresh_token="+tok.RefreshToken, f.app.ID, f.appSecret)
				statuses[i] = res.StatusCode
				var body map[string]any
				json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				results[i], _ = body["refresh_token"].(string)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if statuses[i] != 200 || results[i] == "" || results[i] != results[0] {
				t.Fatalf("run %d request %d: status %d successor %q (first %q)", run, i, statuses[i], results[i], results[0])
			}
		}
	}
}

func TestConcurrentRefreshOnSQLite(t *testing.T) { testConcurrentRefresh(t) }
func TestConcurrentRefreshOnRedis(t *testing.T)  { testConcurrentRefresh(t, withRedisTokens()) }

// RT-06 and F15: revoking every session of a user (what support staff, a password reset or a
// deactivation do) refuses the refresh tokens of all devices at once and, once the resource
// API's revocation set has refreshed (every 2 s in production), their access tokens.
func TestRevokingAUserEndsEverySession(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	devices := []*oauth2.Token{f.login(t), f.login(t), f.login(t)}
	f.clock.Advance(10 * time.Millisecond) // the mark is later than every login
	if err := f.sessions.RevokeUser(ctx, f.user.ID); err != nil {
		t.Fatal(err)
	}
	for i, tok := range devices {
		if res, body := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
			t.Errorf("device %d refreshed after the revocation: %d %v", i, res.StatusCode, body)
		}
		if res := f.me(t, tok.AccessToken); res.StatusCode != 200 {
			t.Errorf("device %d: access tokens are checked offline until the revocation set refreshes: %d", i, res.StatusCode)
		}
	}
	if err := f.revoked.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for i, tok := range devices {
		if res := f.me(t, tok.AccessToken); res.StatusCode != 401 {
			t.Errorf("device %d: access token accepted after the revocation set refreshed: %d", i, res.StatusCode)
		}
	}
	// Introspection asks the token store, not the feed: inactive at once.
	res := f.post(t, "/oauth/introspect", "token="+devices[0].AccessToken, f.app.ID, f.appSecret)
	if body := decode(t, res); len(body) != 1 || body["active"] != false {
		t.Errorf("introspection of a revoked session's token: %v", body)
	}
}

func TestIntrospectionAndRevocationEndpoints(t *testing.T) {
	f := newLoginFixture(t)
	tok := f.login(t)
	other, otherSecret := f.client(t, identity.NewClient{Name: "other", Grants: []string{"password", "refresh_token"}})
	introspect := func(token, user, pass string) (int, map[string]any) {
		res := f.post(t, "/oauth/introspect", "token="+url.QueryEscape(token), user, pass)
		return res.StatusCode, decode(t, res)
	}
	if code, body := introspect(tok.AccessToken, f.app.ID, f.appSecret); code != 200 || body["active"] != true || body["sub"] != f.user.ID {
		t.Errorf("active access token: %d %v", code, body)
	}
	if code, body := introspect(tok.RefreshToken, f.app.ID, f.appSecret); code != 200 || body["active"] != true || body["token_type"] != "refresh_token" {
		t.Errorf("own refresh token: %d %v", code, body)
	}
	if _, body := introspect(tok.RefreshToken, other.ID, otherSecret); len(body) != 1 || body["active"] != false {
		t.Errorf("another client's refresh token must look inactive: %v", body)
	}
	if _, body := introspect("garbage", f.app.ID, f.appSecret); len(body) != 1 || body["active"] != false {
		t.Errorf("garbage: %v", body)
	}
	if code, _ := introspect(tok.AccessToken, "", ""); code != 401 {
		t.Errorf("introspection without client authentication: %d", code)
	}

	// Revocation answers 200 for anything, and a client revokes only its own tokens.
	for _, tc := range []struct{ token, user, pass string }{
		{"random-string", f.app.ID, f.appSecret},
		{tok.RefreshToken, other.ID, otherSecret},
	} {
		if res := f.post(t, "/oauth/revoke", "token="+url.QueryEscape(tc.token), tc.user, tc.pass); res.StatusCode != 200 {
			t.Errorf("revoke: %d", res.StatusCode)
		}
	}
	if code, body := introspect(tok.RefreshToken, f.app.ID, f.appSecret); body["active"] != true {
		t.Fatalf("another client's revocation must not touch the token: %d %v", code, body)
	}
	if res := f.post(t, "/oauth/revoke", "token="+url.QueryEscape(tok.RefreshToken), f.app.ID, f.appSecret); res.StatusCode != 200 {
		t.Fatalf("revoke own: %d", res.StatusCode)
	}
	if res, _ := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 400 {
		t.Errorf("revoked refresh token still works: %d", res.StatusCode)
	}
	if _, body := introspect(tok.AccessToken, f.app.ID, f.appSecret); body["active"] != false {
		t.Errorf("the family's access token must be inactive: %v", body)
	}

	// A single-use token is consumed by introspection.
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	once := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials&single_use=true", c.ID, secret))["access_token"].(string)
	if _, body := introspect(once, c.ID, secret); body["active"] != true {
		t.Errorf("first introspection of a single-use token: %v", body)
	}
	if _, body := introspect(once, c.ID, secret); body["active"] != false {
		t.Errorf("second introspection of a single-use token: %v", body)
	}
}

func TestSingleUseTokensWorkOnceAtTheResourceAPI(t *testing.T) {
	f := newLoginFixture(t)
	res := f.post(t, "/oauth/token", "grant_type=password&single_use=true&username=ana%40acme.test&password="+url.QueryEscape(userPassword), f.app.ID, f.appSecret)
	access := decode(t, res)["access_token"].(string)
	const n = 20
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { codes <- f.me(t, access).StatusCode })
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == 200 {
			ok++
		} else if c != 401 {
			t.Errorf("status %d", c)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent uses of a single-use token succeeded, want 1", ok, n)
	}
}
