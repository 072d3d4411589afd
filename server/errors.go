package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"
)

// oauthError is an RFC 6749 §5.2 error answer. Descriptions come from a fixed list: nothing
// internal (stack, driver message, which check failed for credentials) is ever sent.
type oauthError struct {
	status int
	code   error // one of go-oauth2's errors vocabulary
	desc   string
	header http.Header
}

func (e *oauthError) Error() string { return e.code.Error() + ": " + e.desc }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: oauth2errors.ErrInvalidRequest, desc: desc}
}

func errInvalidClient() *oauthError {
	// RFC 6749 §5.2: 401 with WWW-Authenticate, whichever way the client authenticated.
	h := http.Header{}
	h.Set("WWW-Authenticate", `Basic realm="portaria", charset="UTF-8"`)
	return &oauthError{status: http.StatusUnauthorized, code: oauth2errors.ErrInvalidClient, desc: "client authentication failed", header: h}
}

func errUnauthorizedClient() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: oauth2errors.ErrUnauthorizedClient, desc: "the client is not allowed to use this grant type"}
}

func errUnsupportedGrant() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: oauth2errors.ErrUnsupportedGrantType, desc: "the grant type is not supported"}
}

func errInvalidScope() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: oauth2errors.ErrInvalidScope, desc: "the requested scope is invalid or not allowed for this client"}
}

func errUnavailable() *oauthError {
	h := http.Header{}
	h.Set("Retry-After", "1")
	return &oauthError{status: http.StatusServiceUnavailable, code: oauth2errors.ErrTemporarilyUnavailable, desc: "the service is temporarily unavailable", header: h}
}

func errServer() *oauthError {
	return &oauthError{status: http.StatusInternalServerError, code: oauth2errors.ErrServerError, desc: "internal error"}
}

// setTokenHeaders sets the headers every token-endpoint answer carries (RFC 6749 §5.1).
func setTokenHeaders(h http.Header) {
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// writeTokenJSON writes a token-endpoint answer.
func writeTokenJSON(w http.ResponseWriter, status int, body any) {
	setTokenHeaders(w.Header())
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// writeTokenAnswer writes a successful token response, the hot path, without reflection.
func writeTokenAnswer(w http.ResponseWriter, a tokenAnswer) {
	setTokenHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	w.Write(a.appendJSON(make([]byte, 0, 1024)))
}

// writeOAuthError writes err as an RFC 6749 error. Errors that are not an *oauthError are
// internal: logged with the request id and answered with a generic server_error (or
// temporarily_unavailable when a dependency is down).
func writeOAuthError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		if isUnavailable(err) {
			oe = errUnavailable()
			log.WarnContext(r.Context(), "dependency unavailable", "err", err, "request_id", requestID(r.Context()))
		} else {
			oe = errServer()
			log.ErrorContext(r.Context(), "internal error", "err", err, "request_id", requestID(r.Context()))
		}
	}
	for k, v := range oe.header {
		w.Header()[k] = v
	}
	writeTokenJSON(w, oe.status, map[string]string{"error": oe.code.Error(), "error_description": oe.desc})
}
