package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testIssuer = "https://auth.example.com"

var testAllowed = []string{"https://app.example.com", "http://localhost:5173"}

// hostileOrigins must never be reflected nor pass the Origin check (CK-04, CK-03).
var hostileOrigins = []string{
	"https://evil.test",
	"null",
	"https://app.example.com.evil.test",
	"https://evil.test/app.example.com",
	"https://app.example.com/",
	"https://app.example.com/path",
	"https://app.example.com:8443",
	"https://app.example.com:443",
	"http://app.example.com",
	"wss://app.example.com",
	"https://user@app.example.com",
	"https://evil.test@app.example.com",
	"https://app.example.com@evil.test",
	"https://app.example.com?x",
	"https://app.example.com#x",
	"https://app.example.co",
	"https://xapp.example.com",
	"https://sub.app.example.com",
	"https://app.example.com.",
	"https://app%2Eexample.com",
	"//app.example.com",
	"app.example.com",
	"https://app.example.com, https://evil.test",
	"https://app.example.com https://evil.test",
	"https://app.example.com\x00",
	"*",
	"",
}

func corsRequest(method, origin string) *http.Request {
	r := httptest.NewRequest(method, "/api/auth/me", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func serveCORS(r *http.Request) (*httptest.ResponseRecorder, bool) {
	called := false
	h := withCORS(testAllowed, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		w.WriteHeader(http.StatusOK)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, called
}

func hasVaryOrigin(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), "Origin") {
				return true
			}
		}
	}
	return false
}

func TestCORSAllowsExactlyTheConfiguredOrigins(t *testing.T) {
	tests := []struct{ name, origin string }{
		{"the configured origin is allowed", "https://app.example.com"},
		{"an origin with a port is allowed", "http://localhost:5173"},
		{"scheme and host are compared without case", "HTTPS://App.Example.COM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, called := serveCORS(corsRequest(http.MethodGet, tc.origin))
			h := w.Result().Header
			if !called {
				t.Fatal("the request did not reach the handler")
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tc.origin)
			}
			if h.Get("Access-Control-Allow-Credentials") != "true" || !hasVaryOrigin(h) {
				t.Errorf("headers %v, want credentials allowed and Vary: Origin", h)
			}
		})
	}
}

func TestCORSAnswersThePreflightOfAnAllowedOrigin(t *testing.T) {
	r := corsRequest(http.MethodOptions, "https://app.example.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "content-type")
	w, called := serveCORS(r)
	h := w.Result().Header
	if called || w.Code != http.StatusNoContent {
		t.Fatalf("preflight: status %d, handler called %v; want 204 from the middleware", w.Code, called)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, POST, PUT, PATCH, DELETE",
		"Access-Control-Allow-Headers":     "Authorization, Content-Type, Accept-Language, X-Request-Id",
		"Access-Control-Max-Age":           "600",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !hasVaryOrigin(h) {
		t.Error("no Vary: Origin")
	}
}

func TestCORSNeverReflectsAHostileOrigin(t *testing.T) {
	for _, origin := range hostileOrigins {
		t.Run("a request from "+origin+" gets no CORS header", func(t *testing.T) {
			w, called := serveCORS(corsRequest(http.MethodPost, origin))
			assertNoCORS(t, w.Result().Header)
			if !called {
				t.Error("a plain request was not passed on: the Origin check decides")
			}
		})
		t.Run("a preflight from "+origin+" is refused", func(t *testing.T) {
			r := corsRequest(http.MethodOptions, origin)
			r.Header.Set("Access-Control-Request-Method", "DELETE")
			w, called := serveCORS(r)
			assertNoCORS(t, w.Result().Header)
			if called || w.Code != http.StatusForbidden {
				t.Errorf("status %d, handler called %v; want 403 from the middleware", w.Code, called)
			}
		})
	}
}

func assertNoCORS(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: %q sent to a foreign origin", k, h.Get(k))
		}
	}
	if !hasVaryOrigin(h) {
		t.Error("no Vary: Origin")
	}
}

func TestCORSSendsNoHeaderWithoutAnOrigin(t *testing.T) {
	w, called := serveCORS(corsRequest(http.MethodGet, ""))
	if !called {
		t.Fatal("the request did not reach the handler")
	}
	assertNoCORS(t, w.Result().Header)
}

func TestCORSTreatsAnOptionsRequestWithoutRequestMethodAsAPlainRequest(t *testing.T) {
	w, called := serveCORS(corsRequest(http.MethodOptions, "https://app.example.com"))
	if !called || w.Code != http.StatusOK {
		t.Fatalf("status %d, handler called %v; want the handler's answer", w.Code, called)
	}
}

func TestCORSNeverSendsAWildcardWithCredentials(t *testing.T) {
	jwks := withCORS(testAllowed, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write([]byte("{}"))
	}))
	w := httptest.NewRecorder()
	jwks.ServeHTTP(w, corsRequest(http.MethodGet, "https://app.example.com"))
	h := w.Result().Header
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("public endpoint answered %v, want * without credentials", h)
	}
}

func TestCORSIgnoresMalformedConfiguredOrigins(t *testing.T) {
	h := withCORS([]string{"https://app.example.com/", "*", "null"}, http.NotFoundHandler())
	for _, origin := range []string{"https://app.example.com", "null", "https://evil.test"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, corsRequest(http.MethodGet, origin))
		assertNoCORS(t, w.Result().Header)
	}
}

func TestCheckOriginOfStateChangingRequests(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		ok      bool
	}{
		{"a GET is never checked", http.MethodGet, map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, true},
		{"a HEAD is never checked", http.MethodHead, map[string]string{"Origin": "https://evil.test"}, true},
		{"a POST from the issuer's origin passes", http.MethodPost, map[string]string{"Origin": "https://auth.example.com", "Sec-Fetch-Site": "same-origin"}, true},
		{"a POST from an allowed origin passes", http.MethodPost, map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "same-site"}, true},
		{"a DELETE from an allowed origin passes", http.MethodDelete, map[string]string{"Origin": "http://localhost:5173"}, true},
		{"origins are compared without case", http.MethodPut, map[string]string{"Origin": "HTTPS://AUTH.example.com"}, true},
		{"a Referer from the issuer passes without Origin", http.MethodPost, map[string]string{"Referer": "https://auth.example.com/login?next=/"}, true},
		{"a Referer from an allowed origin passes without Origin", http.MethodPatch, map[string]string{"Referer": "https://app.example.com/users/1"}, true},
		{"a client sending neither header nor Sec-Fetch-Site passes", http.MethodPost, nil, true},
		{"a same-origin fetch without Origin passes", http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"a user-initiated navigation without Origin passes", http.MethodPost, map[string]string{"Sec-Fetch-Site": "none"}, true},
		{"a cross-site fetch is refused even from an allowed origin", http.MethodPost, map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "cross-site"}, false},
		{"a cross-site fetch without Origin is refused", http.MethodPost, map[string]string{"Sec-Fetch-Site": "Cross-Site"}, false},
		{"a same-site fetch without Origin or Referer is refused", http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"a foreign Origin wins over an allowed Referer", http.MethodPost, map[string]string{"Origin": "https://evil.test", "Referer": "https://app.example.com/"}, false},
		{"a null Origin is refused whatever the Referer", http.MethodPost, map[string]string{"Origin": "null", "Referer": "https://app.example.com/"}, false},
		{"a foreign Referer is refused", http.MethodPost, map[string]string{"Referer": "https://evil.test/app.example.com"}, false},
		{"a Referer on a look-alike host is refused", http.MethodPost, map[string]string{"Referer": "https://auth.example.com.evil.test/"}, false},
		{"a Referer with the issuer as user name is refused", http.MethodPost, map[string]string{"Referer": "https://auth.example.com@evil.test/"}, false},
		{"a relative Referer is refused", http.MethodPost, map[string]string{"Referer": "/login"}, false},
		{"a malformed Referer is refused", http.MethodPost, map[string]string{"Referer": "https://%zz"}, false},
		{"an empty Origin is refused", http.MethodPost, map[string]string{"Origin": ""}, false},
	}
	for _, origin := range hostileOrigins {
		if origin != "" {
			tests = append(tests, struct {
				name    string
				method  string
				headers map[string]string
				ok      bool
			}{"a POST from " + origin + " is refused", http.MethodPost, map[string]string{"Origin": origin}, false})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/api/auth/logout", nil)
			for k, v := range tc.headers {
				r.Header[k] = []string{v}
			}
			err := checkOrigin(r, testIssuer, testAllowed)
			if tc.ok {
				if err != nil {
					t.Fatalf("checkOrigin: %v", err)
				}
				return
			}
			var p *problem
			if !errors.As(err, &p) || p.Status != http.StatusForbidden || p.Code != "csrf" {
				t.Fatalf("checkOrigin = %v, want a 403 csrf problem", err)
			}
		})
	}
}

func TestCheckOriginRefusesTwoOriginHeaders(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/api/auth/logout", nil)
	r.Header["Origin"] = []string{"https://app.example.com", "https://evil.test"}
	if err := checkOrigin(r, testIssuer, testAllowed); err == nil {
		t.Fatal("two Origin headers passed")
	}
}

func TestCheckOriginUsesOnlyTheIssuersOrigin(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/api/auth/logout", nil)
	r.Header.Set("Origin", "https://example.com")
	if err := checkOrigin(r, "https://example.com/portaria/", nil); err != nil {
		t.Fatalf("the origin of an issuer with a path: %v", err)
	}
	if err := checkOrigin(r, "", nil); err == nil {
		t.Fatal("an empty issuer trusted an origin")
	}
}

func TestCanonicalOriginAcceptsOnlySerializedOrigins(t *testing.T) {
	good := map[string]string{
		"https://app.example.com":  "https://app.example.com",
		"HTTP://LOCALHOST:8080":    "http://localhost:8080",
		"https://[::1]:8443":       "https://[::1]:8443",
		"https://[2001:DB8::1]":    "https://[2001:db8::1]",
		"https://xn--bcher-kva.ch": "https://xn--bcher-kva.ch",
	}
	for in, want := range good {
		if got, ok := canonicalOrigin(in); !ok || got != want {
			t.Errorf("canonicalOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"", "*", "null", "app.example.com", "//app.example.com", "wss://app.example.com",
		"https://app.example.com/", "https://app.example.com/path", "https://app.example.com?x",
		"https://app.example.com#x", "https://user@app.example.com", "https://app%2Eexample.com",
		"https://app.example.com, https://evil.test", "https://app.example.com https://evil.test",
		"https://app.example.com\x00", "https://:443", "https://a:", "https://a:123456", "https://a:-1",
		"https://[::1", "https://[::1]x", "https://bücher.ch",
	} {
		if got, ok := canonicalOrigin(in); ok {
			t.Errorf("canonicalOrigin(%q) = %q, want a refusal", in, got)
		}
	}
}
