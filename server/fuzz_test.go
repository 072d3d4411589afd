package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/testenv"
)

// FuzzTokenRequest sends arbitrary form bodies, content types and Basic credentials to the token
// endpoint: whatever arrives, the answer is an RFC 6749 JSON answer and never a 5xx (IN-04).
func FuzzTokenRequest(f *testing.F) {
	fx := newFixture(f)
	c, secret, err := fx.ids.CreateClient(f.Context(), identity.NewClient{Name: "fuzz", Grants: []string{"client_credentials", "password", "refresh_token"}})
	if err != nil {
		f.Fatal(err)
	}
	h := fx.srv.Config.Handler
	for _, seed := range []string{
		"grant_type=client_credentials",
		"grant_type=client_credentials&scope=a+b&expires_in=60&single_use=true",
		"grant_type=password&username=a%40b.c&password=x",
		"grant_type=refresh_token&refresh_token=AAAA.BBBB",
		"grant_type=urn:portaria:grant-type:mfa&mfa_token=x&otp=123456",
		"grant_type=client_credentials&grant_type=password",
		"%zz=1",
		strings.Repeat("a=1&", 1000),
	} {
		f.Add(seed, "application/x-www-form-urlencoded", c.ID, secret)
	}
	f.Add("{}", "application/json", "", "")
	f.Fuzz(func(t *testing.T, body, contentType, user, pass string) {
		var rec *httptest.ResponseRecorder
		alloc := testenv.Allocated(func() {
			req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			if user != "" || pass != "" {
				req.SetBasicAuth(user, pass)
			}
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		})
		checkFuzzAlloc(t, alloc, len(body)+len(contentType)+len(user)+len(pass))
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json;charset=UTF-8" {
			t.Fatalf("content type %q", ct)
		}
	})
}

// FuzzCookie sends arbitrary Cookie headers to the cookie-authenticated account routes: the
// cookie parser and the session code answer a client error for anything malformed, never a
// 5xx (IN-04).
func FuzzCookie(f *testing.F) {
	fx := newLoginFixture(f)
	h := fx.srv.Config.Handler
	for _, seed := range []string{
		"accessToken=a.b.c; refreshToken=xyz",
		"refreshToken=" + strings.Repeat("A", 43),
		"accessToken=; accessToken=x",
		`refreshToken="quoted"; __Host-x=1`,
		"refreshToken=%zz; =; ;;",
		strings.Repeat("a=b; ", 500),
	} {
		f.Add(seed, uint8(0))
	}
	routes := []struct{ method, path string }{
		{http.MethodGet, "/api/auth/me"},
		{http.MethodPost, "/api/auth/refresh"},
		{http.MethodPost, "/api/auth/logout"},
		{http.MethodGet, "/api/auth/sessions"},
	}
	f.Fuzz(func(t *testing.T, cookie string, route uint8) {
		rt := routes[int(route)%len(routes)]
		var rec *httptest.ResponseRecorder
		alloc := testenv.Allocated(func() {
			req := httptest.NewRequest(rt.method, rt.path, nil)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Origin", fx.issuer)
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		})
		checkFuzzAlloc(t, alloc, len(cookie))
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with Cookie %q: %d %s", rt.method, rt.path, cookie, rec.Code, rec.Body)
		}
	})
}

// checkFuzzAlloc fails an input of at most testenv.FuzzInputLimit bytes that made the server
// allocate more than 1 MiB (IN-04). The password hash, memory-hard by design and bounded by the
// hashing semaphore, runs with the tests' cheap parameters here.
func checkFuzzAlloc(t *testing.T, alloc uint64, inputLen int) {
	t.Helper()
	if inputLen <= testenv.FuzzInputLimit && alloc > testenv.FuzzAllocLimit {
		t.Fatalf("one input of %d bytes allocated %d KiB, more than 1 MiB", inputLen, alloc>>10)
	}
}
