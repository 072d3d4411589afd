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
