package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/mail"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// mfaInfo is GET /api/auth/mfa-info?email=E: the 2FA method and a masked contact for the login
// screen. The answer has the same status and shape whether or not the e-mail has an account: the
// masked contact is derived from the e-mail asked about, and an unknown e-mail gets methods chosen
// by a keyed hash of it, stable across calls, so that it looks like any account.
func (a *accountAPI) mfaInfo(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	email := strings.TrimSpace(r.URL.Query().Get("email"))
	if email == "" || len(email) > identity.MaxEmailBytes {
		return validation(fieldError{Field: "email", Message: "is required"})
	}
	ctx := r.Context()
	if err := a.limit(ctx, "mfa-info-ip", clientIP(r, a.trusted), mfaInfoPerIP); err != nil {
		return err
	}
	var methods []string
	u, err := a.accounts.UserByEmail(ctx, email)
	switch {
	case err == nil && u.Active:
		if methods, err = a.accounts.MFAMethods(ctx, u.ID); err != nil {
			return err
		}
	case err == nil, errors.Is(err, identity.ErrNotFound), errors.Is(err, identity.ErrInvalid):
		// The same store read as an account's, for an id no account has: the floor below hides
		// the work's time, and equal work leaves the same garbage for the collector.
		if _, err := a.accounts.MFAMethods(ctx, decoyUserID); err != nil {
			return err
		}
		m := hmac.New(sha256.New, a.decoyKey)
		m.Write([]byte(identity.NormalizeEmail(email)))
		if m.Sum(nil)[0] < 64 { // about a quarter of decoys show 2FA
			methods = []string{"totp", "recovery_code"}
		}
	default:
		return err
	}
	if methods == nil {
		methods = []string{}
	}
	holdAnswer(ctx, start)
	writeJSON(w, http.StatusOK, map[string]any{
		"email":        maskEmail(email),
		"mfa_required": len(methods) > 0,
		"mfa_methods":  methods,
	})
	return nil
}

// decoyUserID is a well-formed user id that no user has (UUIDv7 ids are never all zeros).
const decoyUserID = "00000000-0000-7000-8000-000000000000"

// maskEmail keeps the first character of the local part and the domain: a***@example.com.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	r := []rune(local)
	return string(r[0]) + "***@" + domain
}

type signupBody struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// signup is POST /api/auth/signup (PORTARIA_SIGNUP): an inactive user and a verification e-mail.
// An e-mail that already has an account gets the same 202, so sign-up reveals nothing.
func (a *accountAPI) signup(w http.ResponseWriter, r *http.Request) error {
	if !a.signupOpen {
		return newProblem(http.StatusNotFound, "signup_disabled", "Sign-up is not enabled.")
	}
	var body signupBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := a.accounts.CreateUser(ctx, identity.NewUser{Email: body.Email, Name: body.Name, Password: body.Password})
	switch {
	case errors.Is(err, identity.ErrExists):
		w.WriteHeader(http.StatusAccepted)
		return nil
	case err != nil:
		return err
	}
	tok, err := a.oneTime.Issue(ctx, tokens.OneTime{Purpose: purposeVerify, Subject: u.ID}, verifyTTL)
	if err != nil {
		return err
	}
	link := a.link("/verify-email", map[string][]string{"token": {tok}})
	if err := a.mail.Deliver(mail.VerifyEmail, preferredLanguage(r), mail.Data{To: u.Email, Name: u.Name, Link: link, Code: tok, ExpiresIn: verifyTTL}); err != nil {
		a.log.WarnContext(ctx, "verification e-mail not queued", "err", err, "request_id", requestID(ctx))
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

type tokenBody struct {
	Token string `json:"token"`
}

// verifyEmail is POST /api/auth/verify-email: activates the user of a verification token.
func (a *accountAPI) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	var body tokenBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	ot, err := a.redeemAny(r.Context(), body.Token, "", purposeVerify)
	if err != nil {
		return err
	}
	if err := a.accounts.VerifyEmail(r.Context(), ot.Subject); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listSessions is GET /api/auth/sessions: the caller's live sessions.
func (a *accountAPI) listSessions(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	list, err := a.sessions.List(r.Context(), claims.Subject)
	if err != nil {
		return err
	}
	items := make([]map[string]any, 0, len(list))
	for _, s := range list {
		amr := s.AMR
		if amr == nil {
			amr = []string{}
		}
		items = append(items, map[string]any{
			"id": s.ID, "client_id": s.ClientID, "created_at": s.CreatedAt.UTC(), "last_used_at": s.LastUsedAt.UTC(),
			"amr": amr, "current": s.ID == claims.SessionID,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// deleteSession is DELETE /api/auth/sessions/{sid}: ends one of the caller's sessions; another
// user's sid is 404.
func (a *accountAPI) deleteSession(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	err = a.sessions.RevokeOwn(r.Context(), claims.Subject, r.PathValue("sid"))
	if errors.Is(err, tokens.ErrSessionNotFound) {
		return newProblem(http.StatusNotFound, "not_found", "The resource does not exist.")
	}
	if err != nil {
		return err
	}
	a.security(r, byCaller(claims, audit.SessionRevoked, nil, claims.Subject, map[string]string{"reason": "user", "family": r.PathValue("sid")}))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type revokeUserBody struct {
	UserID string `json:"user_id"`
}

// revokeUserSessions is POST /api/auth/sessions/revoke: support staff (permission support, or a
// platform admin) end every session of a user, at once for refresh tokens and within seconds at
// every resource server for access tokens.
func (a *accountAPI) revokeUserSessions(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	var body revokeUserBody
	if !slices.Contains(claims.Perms, identity.PermSupport) && !slices.Contains(claims.Perms, identity.PermPlatformAdmin) {
		err := newProblem(http.StatusForbidden, "forbidden", "You are not allowed to do this.")
		a.security(r, byCaller(claims, audit.SessionRevoked, err, "", map[string]string{"reason": "support"}))
		return err
	}
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	u, err := a.accounts.User(r.Context(), body.UserID)
	if err == nil {
		err = a.sessions.RevokeUser(r.Context(), body.UserID)
	}
	e := byCaller(claims, audit.SessionRevoked, err, body.UserID, map[string]string{"reason": "support"})
	e.OrgID = u.OrgID
	a.security(r, e)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
