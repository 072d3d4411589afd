package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/tokens"
)

// AccessCookie is the cookie that carries the access token of a browser session (SPEC §4).
const AccessCookie = "accessToken"

// Burner consumes single-use access tokens by jti; *tokens.OneTimeTokens is one.
type Burner interface {
	Burn(ctx context.Context, jti string, until time.Time) (bool, error)
}

// bearerAuth turns a request's access token into verified claims: offline signature and claim
// checks, then the in-memory revocation feed, then, for single-use tokens, an atomic burn of the
// jti in the token store. No call to the token server.
type bearerAuth struct {
	verifier AccessVerifier
	revoked  RevocationChecker
	burner   Burner
}

var (
	errNoToken      = errors.New("no access token")
	errRejected     = errors.New("access token rejected")
	errNotUserToken = errors.New("a user's access token is required")
)

// token returns the bearer token (Authorization header first, then the access cookie).
func bearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(AccessCookie); err == nil {
		return c.Value
	}
	return ""
}

func (a bearerAuth) authenticate(r *http.Request) (tokens.AccessClaims, error) {
	tok := bearerToken(r)
	if tok == "" {
		return tokens.AccessClaims{}, errNoToken
	}
	claims, err := a.verifier.Verify(r.Context(), tok)
	if err != nil {
		return tokens.AccessClaims{}, errRejected
	}
	if a.revoked != nil && a.revoked.Revoked(claims) {
		return tokens.AccessClaims{}, errRejected
	}
	if claims.Once {
		first, err := a.burner.Burn(r.Context(), claims.ID, time.Unix(claims.ExpiresAt, 0))
		if err != nil {
			return tokens.AccessClaims{}, err
		}
		if !first {
			return tokens.AccessClaims{}, errRejected
		}
	}
	return claims, nil
}

// user authenticates the caller as a user (a session's token): a client_credentials token is
// refused (AC-06). The error is already the problem to answer.
func (a bearerAuth) user(r *http.Request) (tokens.AccessClaims, error) {
	claims, err := a.authenticate(r)
	if err == nil && claims.SessionID == "" {
		err = errNotUserToken
	}
	if err != nil {
		return tokens.AccessClaims{}, authProblem(err)
	}
	return claims, nil
}

// bearerChallenge is the RFC 6750 §3 WWW-Authenticate value for err.
func bearerChallenge(err error) string {
	switch {
	case errors.Is(err, errNoToken):
		return `Bearer realm="portaria"`
	case errors.Is(err, errNotUserToken):
		return `Bearer realm="portaria", error="insufficient_scope"`
	}
	return `Bearer realm="portaria", error="invalid_token"`
}

// authProblem is the problem+json answer of the API to an authentication failure.
func authProblem(err error) error {
	var p *problem
	switch {
	case errors.Is(err, errNoToken):
		p = newProblem(http.StatusUnauthorized, "unauthenticated", "An access token is required.")
	case errors.Is(err, errRejected):
		p = newProblem(http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.")
	case errors.Is(err, errNotUserToken):
		p = newProblem(http.StatusForbidden, "user_token_required", "This endpoint needs a user's access token.")
	default:
		return err // the token store is down: 503 from writeProblem
	}
	p.header = http.Header{"Www-Authenticate": {bearerChallenge(err)}}
	return p
}

// handleMe is GET /api/auth/me: the caller, their organization, permissions and session.
func handleMe(auth bearerAuth, users UserDirectory, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := serveMe(w, r, auth, users); err != nil {
			writeProblem(w, r, log, err)
		}
	})
}

func serveMe(w http.ResponseWriter, r *http.Request, auth bearerAuth, users UserDirectory) error {
	claims, err := auth.authenticate(r)
	if err == nil && claims.SessionID == "" {
		err = errNotUserToken
	}
	if err != nil {
		return authProblem(err)
	}
	return writeMe(w, r.Context(), users, claims)
}

// writeMe writes the me body (SPEC §4) for a verified user token.
func writeMe(w http.ResponseWriter, ctx context.Context, users UserDirectory, claims tokens.AccessClaims) error {
	u, err := users.User(ctx, claims.Subject)
	if err != nil {
		if errors.Is(err, identity.ErrNotFound) {
			return authProblem(errRejected)
		}
		return err
	}
	var org *identity.Organization
	if u.OrgID != "" {
		o, err := users.Organization(ctx, u.OrgID)
		if err != nil && !errors.Is(err, identity.ErrNotFound) {
			return err
		}
		if err == nil {
			org = &o
		}
	}
	perms := u.Permissions
	if perms == nil {
		perms = []string{}
	}
	amr := claims.AMR
	if amr == nil {
		amr = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user":         u,
		"organization": org,
		"permissions":  perms,
		"session": map[string]any{
			"id":        claims.SessionID,
			"auth_time": time.Unix(claims.AuthTime, 0).UTC().Format(time.RFC3339),
			"amr":       amr,
		},
	})
	return nil
}

// handleUserinfo is the OpenID Connect UserInfo endpoint. Its errors follow RFC 6750.
func handleUserinfo(auth bearerAuth, users UserDirectory, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := auth.authenticate(r)
		if err == nil && claims.SessionID == "" {
			err = errNotUserToken
		}
		var u identity.User
		if err == nil {
			u, err = users.User(r.Context(), claims.Subject)
			if errors.Is(err, identity.ErrNotFound) {
				err = errRejected
			}
		}
		if err != nil {
			if !errors.Is(err, errNoToken) && !errors.Is(err, errRejected) && !errors.Is(err, errNotUserToken) {
				writeOAuthError(w, r, log, err)
				return
			}
			w.Header().Set("WWW-Authenticate", bearerChallenge(err))
			status, code := http.StatusUnauthorized, "invalid_token"
			if errors.Is(err, errNotUserToken) {
				status, code = http.StatusForbidden, "insufficient_scope"
			}
			if errors.Is(err, errNoToken) {
				code = "invalid_request"
			}
			writeTokenJSON(w, status, map[string]string{"error": code})
			return
		}
		info := map[string]any{"sub": u.ID, "email": u.Email, "email_verified": u.EmailVerified, "name": u.Name}
		if u.OrgID != "" {
			info["org"] = u.OrgID
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, info)
	})
}

// writeJSON writes a JSON answer of the API.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
