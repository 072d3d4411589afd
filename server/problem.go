package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
)

// problem is an RFC 9457 answer of the API: a stable machine code, an English title, and for
// validation errors the failing fields.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Code   string       `json:"code"`
	Detail string       `json:"detail,omitempty"`
	Errors []fieldError `json:"errors,omitempty"`
	// The login flows continue with these (SPEC §4: mfa_required carries mfa_token and
	// mfa_methods at the top level; password_expired its password_change_token).
	MFAToken            string   `json:"mfa_token,omitempty"`
	MFAMethods          []string `json:"mfa_methods,omitempty"`
	PasswordChangeToken string   `json:"password_change_token,omitempty"`
	header              http.Header
}

type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *problem) Error() string { return p.Code + ": " + p.Title }

func newProblem(status int, code, title string) *problem {
	return &problem{Type: "about:blank", Title: title, Status: status, Code: code}
}

// writeProblem writes err as application/problem+json. Errors that are not a *problem are
// mapped from the domain's sentinel errors; anything unknown is a logged 500 with a generic body.
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var p *problem
	if !errors.As(err, &p) {
		p = problemFor(err)
		if p.Status >= 500 {
			log.ErrorContext(r.Context(), "request failed", "err", err, "request_id", requestID(r.Context()))
		}
	}
	// A copy: call sites may share one *problem between requests of different languages.
	lp := *p
	lang := preferredLanguage(r)
	localize(&lp, lang)
	for k, v := range lp.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Language", lang)
	w.Header().Add("Vary", "Accept-Language")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(lp.Status)
	json.NewEncoder(w).Encode(&lp)
}

// problemFor maps domain errors to answers, in one place.
func problemFor(err error) *problem {
	var ve *identity.ValidationError
	var ave *assessment.ValidationError
	var filter *audit.InvalidFilterError
	switch {
	case errors.As(err, &ve):
		return validation(fieldErrors(ve.Fields)...)
	case errors.As(err, &ave):
		return validation(fieldErrors(ave.Fields)...)
	case errors.As(err, &filter):
		return validation(fieldError{Field: filter.Field, Message: "is not valid"})
	case errors.Is(err, audit.ErrInvalidQuery):
		// Limits are checked before the query and the organization is always set: only a
		// cursor the log did not make gets here.
		return validation(fieldError{Field: "cursor", Message: "is not a cursor of this list"})
	case errors.Is(err, identity.ErrNotFound), errors.Is(err, assessment.ErrNotFound):
		return newProblem(http.StatusNotFound, "not_found", "The resource does not exist.")
	case errors.Is(err, assessment.ErrForbidden):
		return newProblem(http.StatusForbidden, "forbidden", "You are not allowed to do this.")
	case errors.Is(err, identity.ErrExists), errors.Is(err, assessment.ErrExists):
		return newProblem(http.StatusConflict, "conflict", "The resource already exists.")
	case isUnavailable(err), errors.Is(err, assessment.ErrUnavailable):
		p := newProblem(http.StatusServiceUnavailable, "unavailable", "The service is temporarily unavailable.")
		p.header = http.Header{"Retry-After": {"1"}}
		return p
	}
	return newProblem(http.StatusInternalServerError, "internal", "Internal error.")
}

// fieldErrors are a domain's field errors as the API writes them; both domains' FieldError
// have the fields of fieldError.
func fieldErrors[F identity.FieldError | assessment.FieldError](fields []F) []fieldError {
	out := make([]fieldError, len(fields))
	for i, f := range fields {
		out[i] = fieldError(f)
	}
	return out
}
