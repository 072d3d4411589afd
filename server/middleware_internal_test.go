package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPanicAnswersAGeneric500 is IN-04's recovery: a handler that panics yields a generic JSON
// 500 with nothing of the panic in it, and the panic and its stack go to the log.
func TestAPanicAnswersAGeneric500(t *testing.T) {
	var logs bytes.Buffer
	h := withRecover(slog.New(slog.NewJSONHandler(&logs, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("canary-7f3a")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/json" ||
		strings.Contains(rec.Body.String(), "canary") {
		t.Errorf("answer %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if !strings.Contains(logs.String(), "canary-7f3a") || !strings.Contains(logs.String(), "middleware_internal_test.go") {
		t.Errorf("the panic and its stack are not in the log: %s", logs.String())
	}
}

// TestEveryAnswerCarriesTheSecurityHeaders is CK-05 through the whole handler (with no stores:
// an API 401, unrouted paths, /healthz): nosniff, no-referrer, DENY and a policy that allows
// nothing; HSTS only when the issuer is https; nothing redirects to https. TestHTTPFuzz checks
// the same headers on every answer of every operation of a fully equipped server.
func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	const csp = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
	for _, issuer := range []string{"https://auth.example.test", "http://127.0.0.1:8080"} {
		h := NewServer(Deps{Issuer: issuer, Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics()})
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodGet, "/api/auth/me", nil),
			httptest.NewRequest(http.MethodGet, "/api/nowhere", nil),
			httptest.NewRequest(http.MethodGet, "/healthz", nil),
			httptest.NewRequest(http.MethodGet, "/no/such/page", nil),
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header()
			what := issuer + " " + req.Method + " " + req.URL.Path
			if got.Get("X-Content-Type-Options") != "nosniff" || got.Get("Referrer-Policy") != "no-referrer" ||
				got.Get("X-Frame-Options") != "DENY" || got.Get("Content-Security-Policy") != csp {
				t.Errorf("%s: %d with headers %v", what, rec.Code, got)
			}
			wantHSTS := ""
			if strings.HasPrefix(issuer, "https://") {
				wantHSTS = "max-age=31536000; includeSubDomains"
			}
			if got.Get("Strict-Transport-Security") != wantHSTS {
				t.Errorf("%s: Strict-Transport-Security %q, want %q", what, got.Get("Strict-Transport-Security"), wantHSTS)
			}
			if rec.Code >= 300 && rec.Code < 400 {
				t.Errorf("%s: redirected (%d to %q): a request in clear must fail, not be upgraded", what, rec.Code, got.Get("Location"))
			}
		}
	}
}
