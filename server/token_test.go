package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portaria/portaria/identity"
)

func TestClientCredentialsWithAStandardClient(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "reports", Grants: []string{"client_credentials"}, Scopes: []string{"reports:read", "reports:write"}})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		t.Run(fmt.Sprintf("auth style %d", style), func(t *testing.T) {
			cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: secret, TokenURL: f.srv.URL + "/oauth/token",
				Scopes: []string{"reports:read"}, AuthStyle: style}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != "Bearer" || tok.RefreshToken != "" || tok.Extra("scope") != "reports:read" {
				t.Errorf("token answer: type %q refresh %q scope %v", tok.TokenType, tok.RefreshToken, tok.Extra("scope"))
			}
			// An independent verifier (go-oidc, not jwx) checks the signature against the served JWKS.
			ks := oidc.NewRemoteKeySet(context.Background(), f.srv.URL+"/.well-known/jwks.json")
			payload, err := ks.VerifySignature(context.Background(), tok.AccessToken)
			if err != nil {
				t.Fatalf("signature does not verify against the JWKS: %v", err)
			}
			var claims map[string]any
			json.Unmarshal(payload, &claims)
			header, _ := jwtParts(t, tok.AccessToken)
			if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == "" {
				t.Errorf("header %v", header)
			}
			if claims["iss"] != f.issuer || claims["sub"] != c.ID || claims["client_id"] != c.ID ||
				claims["aud"] != f.audience || claims["scope"] != "reports:read" || claims["jti"] == "" {
				t.Errorf("claims %v", claims)
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 900 {
				t.Errorf("lifetime %v s, want the 15 min default", exp-iat)
			}
			for _, k := range []string{"once", "org", "perms", "sid"} {
				if _, ok := claims[k]; ok {
					t.Errorf("unexpected claim %s in a plain client_credentials token", k)
				}
			}
		})
	}
}

func assertTokenHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Pragma") != "no-cache" ||
		res.Header.Get("Content-Type") != "application/json;charset=UTF-8" {
		t.Errorf("headers: Cache-Control %q Pragma %q Content-Type %q", res.Header.Get("Cache-Control"),
			res.Header.Get("Pragma"), res.Header.Get("Content-Type"))
	}
}

// allowedDescriptions is the fixed list of error descriptions the endpoint may send (TE-02).
var allowedDescriptions = []string{
	"the token endpoint accepts only POST",
	"the body must be application/x-www-form-urlencoded",
	"the request body is too large",
	"the body is not a valid form",
	"a parameter is repeated",
	"use one client authentication method",
	"client authentication failed",
	"grant_type is required",
	"the client is not allowed to use this grant type",
	"the grant type is not supported",
	"the requested scope is invalid or not allowed for this client",
	"expires_in must be a positive number of seconds",
	"single_use must be true or false",
}

func TestTokenEndpointErrorsFollowRFC6749(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}, Scopes: []string{"a", "b"}})
	pw, pwSecret := f.client(t, identity.NewClient{Name: "app", Grants: []string{"password"}, Scopes: []string{"a"}})
	cc := "grant_type=client_credentials"
	cases := []struct {
		name        string
		method      string
		contentType string
		body        string
		user, pass  string
		status      int
		code        string
	}{
		{name: "GET is not allowed", method: "GET", status: 405, code: "invalid_request"},
		{name: "a JSON body is invalid_request", contentType: "application/json", body: `{"grant_type":"client_credentials"}`, user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a repeated parameter is invalid_request", body: cc + "&grant_type=password", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a wrong secret over Basic is invalid_client", body: cc, user: c.ID, pass: secret + "x", status: 401, code: "invalid_client"},
		{name: "a wrong secret in the body is invalid_client", body: cc + "&client_id=" + c.ID + "&client_secret=nope", status: 401, code: "invalid_client"},
		{name: "an unknown client is invalid_client", body: cc, user: "01890000-0000-7000-8000-000000000000", pass: secret, status: 401, code: "invalid_client"},
		{name: "no client authentication is invalid_client", body: cc, status: 401, code: "invalid_client"},
		{name: "a bearer Authorization header is invalid_client", body: cc, status: 401, code: "invalid_client"},
		{name: "two authentication methods are invalid_request", body: cc + "&client_secret=" + secret, user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a missing grant_type is invalid_request", body: "scope=a", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "an unknown grant is unsupported_grant_type", body: "grant_type=urn:example:magic", user: c.ID, pass: secret, status: 400, code: "unsupported_grant_type"},
		{name: "a grant the client lacks is unauthorized_client", body: cc, user: pw.ID, pass: pwSecret, status: 400, code: "unauthorized_client"},
		{name: "an unregistered scope is invalid_scope", body: cc + "&scope=a+c", user: c.ID, pass: secret, status: 400, code: "invalid_scope"},
		{name: "expires_in of zero is invalid_request", body: cc + "&expires_in=0", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a negative expires_in is invalid_request", body: cc + "&expires_in=-5", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a non-numeric expires_in is invalid_request", body: cc + "&expires_in=soon", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "single_use other than true or false is invalid_request", body: cc + "&single_use=yes", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
		{name: "a body over 64 KiB is 413", body: cc + "&pad=" + strings.Repeat("a", 64<<10), user: c.ID, pass: secret, status: 413, code: "invalid_request"},
		{name: "a malformed form is invalid_request", body: "grant_type=%zz", user: c.ID, pass: secret, status: 400, code: "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, f.srv.URL+"/oauth/token", strings.NewReader(tc.body))
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ct)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if strings.Contains(tc.name, "bearer") {
				req.Header.Set("Authorization", "Bearer abc")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			assertTokenHeaders(t, res)
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.code == "invalid_client" && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("invalid_client without WWW-Authenticate: Basic")
			}
			if tc.status == 405 && res.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			body := decode(t, res)
			if body["error"] != tc.code {
				t.Errorf("error %v, want %s", body["error"], tc.code)
			}
			if len(body) != 2 || !slices.Contains(allowedDescriptions, fmt.Sprint(body["error_description"])) {
				t.Errorf("body must hold only error and an allowed description: %v", body)
			}
		})
	}
}

func TestEmptyParametersAreAbsentAndUnknownOnesIgnored(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}, Scopes: []string{"a", "b"}})
	res := f.post(t, "/oauth/token", "grant_type=client_credentials&scope=&expires_in=&extra=1", c.ID, secret)
	assertTokenHeaders(t, res)
	body := decode(t, res)
	if res.StatusCode != 200 || body["scope"] != "a b" || body["expires_in"] != float64(900) {
		t.Fatalf("status %d body %v: an empty scope must mean the client's scopes", res.StatusCode, body)
	}
}

func TestBasicCredentialsAreFormURLDecoded(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	// RFC 6749 §2.3.1: id and secret are form-url-encoded before Basic encoding.
	encoded := fmt.Sprintf("%%%02X", secret[0]) + secret[1:]
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", url.QueryEscape(c.ID), encoded); res.StatusCode != 200 {
		t.Errorf("percent-encoded secret: status %d", res.StatusCode)
	}
	// "+" decodes to a space, so a literal plus is a different secret.
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret+"+"); res.StatusCode != 401 {
		t.Errorf("secret with a decoded plus: status %d, want 401", res.StatusCode)
	}
}

func TestExpiresInIsClampedToTheClientMaximum(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}, AccessTTL: 10 * time.Minute})
	for _, tc := range []struct {
		asked string
		want  float64
	}{{"", 600}, {"60", 60}, {"600", 600}, {"100000", 600}, {"99999999999999999", 600}} {
		res := f.post(t, "/oauth/token", "grant_type=client_credentials&expires_in="+tc.asked, c.ID, secret)
		body := decode(t, res)
		if res.StatusCode != 200 || body["expires_in"] != tc.want {
			t.Errorf("expires_in=%s: status %d expires_in %v, want %v", tc.asked, res.StatusCode, body["expires_in"], tc.want)
			continue
		}
		_, claims := jwtParts(t, body["access_token"].(string))
		if got := claims["exp"].(float64) - claims["iat"].(float64); got != tc.want {
			t.Errorf("expires_in=%s: token lives %v s, answer says %v", tc.asked, got, tc.want)
		}
	}
}

func TestSingleUseIsCarriedAsAClaim(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	body := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials&single_use=true", c.ID, secret))
	if _, claims := jwtParts(t, body["access_token"].(string)); claims["once"] != true {
		t.Errorf("claims %v: want once=true", claims)
	}
}

func TestDeletedClientsAndRotatedSecretsStopWorkingAtOnce(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	newSecret, err := f.ids.RotateClientSecret(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret); res.StatusCode != 401 {
		t.Errorf("old secret after rotation: status %d", res.StatusCode)
	}
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, newSecret); res.StatusCode != 200 {
		t.Errorf("new secret: status %d", res.StatusCode)
	}
	if err := f.ids.DeleteClient(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	if res := f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, newSecret); res.StatusCode != 401 {
		t.Errorf("deleted client: status %d", res.StatusCode)
	}
}

func TestDiscoveryMatchesReality(t *testing.T) {
	f := newFixture(t)
	c, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}})
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		res, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		meta := decode(t, res)
		if meta["issuer"] != f.issuer || meta["token_endpoint"] != f.issuer+"/oauth/token" ||
			meta["jwks_uri"] != f.issuer+"/.well-known/jwks.json" {
			t.Errorf("%s: %v", path, meta)
		}
		// Every advertised grant and auth method works; nothing else is advertised.
		grants := fmt.Sprint(meta["grant_types_supported"])
		if grants != "[client_credentials password refresh_token urn:portaria:grant-type:mfa]" {
			t.Errorf("grants %s", grants)
		}
		tok := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials", c.ID, secret))
		if _, claims := jwtParts(t, tok["access_token"].(string)); claims["iss"] != meta["issuer"] {
			t.Errorf("token iss %v differs from metadata issuer %v", claims["iss"], meta["issuer"])
		}
		post := decode(t, f.post(t, "/oauth/token", "grant_type=client_credentials&client_id="+c.ID+"&client_secret="+secret, "", ""))
		if post["access_token"] == nil {
			t.Errorf("client_secret_post advertised but failed: %v", post)
		}
	}
	// go-oidc discovers the issuer from the same document.
	if _, err := oidc.NewProvider(context.Background(), f.issuer); err != nil {
		t.Errorf("OIDC discovery: %v", err)
	}
}

func TestJWKSServesPublicKeysOnly(t *testing.T) {
	f := newFixture(t)
	if _, err := f.ring.Rotate(context.Background()); err != nil { // a pending key is published too
		t.Fatal(err)
	}
	res, err := http.Get(f.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control %q", cc)
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("the JWKS is public: any origin may read it")
	}
	var set struct{ Keys []map[string]any }
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys, want the active and the pending one", len(set.Keys))
	}
	allowed := []string{"kty", "crv", "x", "y", "n", "e", "kid", "use", "alg"}
	kids := map[any]bool{}
	for _, k := range set.Keys {
		for field := range k {
			if !slices.Contains(allowed, field) {
				t.Errorf("JWKS key has field %q", field)
			}
		}
		if k["use"] != "sig" || k["alg"] != "ES256" || kids[k["kid"]] {
			t.Errorf("key %v", k)
		}
		kids[k["kid"]] = true
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", path, res.StatusCode)
		}
	}
}
