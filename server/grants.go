package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-oauth2/oauth2/v4"
	oauth2errors "github.com/go-oauth2/oauth2/v4/errors"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// UserDirectory finds and authenticates users; *identity.Service is one.
type UserDirectory interface {
	Authenticate(ctx context.Context, email, password string) (identity.User, error)
	User(ctx context.Context, id string) (identity.User, error)
	Organization(ctx context.Context, id string) (identity.Organization, error)
}

// Purposes of one-time tokens minted by the token endpoint.
const purposePasswordChange = "password_change"

// passwordChangeTTL is how long a password_change_token lets its user set a new password.
const passwordChangeTTL = 10 * time.Minute

func errInvalidGrant() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: oauth2errors.ErrInvalidGrant, desc: "the grant is invalid, expired or revoked"}
}

func errBusy() *oauthError {
	oe := errUnavailable()
	oe.desc = "too many logins in progress, retry shortly"
	return oe
}

// userLogin carries a user's session into go-oauth2's AccessGenerate hook, which mints the
// access token with the session's claims.
type userLogin struct {
	user identity.User
	sess tokens.Session
}

type userLoginKey struct{}

func (ul userLogin) claims(req *tokens.AccessRequest) {
	req.Org = ul.user.OrgID
	req.Perms = ul.user.Permissions
	req.SessionID = ul.sess.ID
	req.AMR = ul.sess.AMR
	req.AuthTime = ul.sess.AuthTime
}

// refreshLifetime is the absolute lifetime of a new session for client c.
func (e *tokenEndpoint) refreshLifetime(c identity.Client) time.Duration {
	if c.RefreshTTL > 0 {
		return c.RefreshTTL
	}
	return e.refreshTTL
}

// password is the resource-owner password grant (RFC 6749 §4.3), allowed only for clients
// registered with it (SECURITY.md C1). The client was authenticated first.
func (e *tokenEndpoint) password(w http.ResponseWriter, r *http.Request, c identity.Client, secret string, form url.Values) error {
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" {
		return errInvalidRequest("username and password are required")
	}
	scope, err := grantedScope(c, form.Get("scope"))
	if err != nil {
		return err
	}
	ttl, err := e.accessTTL(c, form)
	if err != nil {
		return err
	}
	if _, err := singleUse(form); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := e.logins.password(ctx, c.ID, username, password, clientIP(r, e.trusted))
	e.auditLogin(r, c.ID, u, err, "password")
	if err != nil {
		return e.loginError(w, err)
	}
	refresh, sess, err := e.sessions.Start(ctx, tokens.Session{
		UserID: u.ID, ClientID: c.ID, Org: u.OrgID, Scope: scope, AMR: []string{"pwd"}, AuthTime: e.now(),
	}, e.refreshLifetime(c))
	if err != nil {
		return err
	}
	var claims tokens.AccessClaims
	ctx = context.WithValue(ctx, clientKey{}, authenticatedClient{client: c, secret: secret})
	ctx = context.WithValue(ctx, userLoginKey{}, userLogin{user: u, sess: sess})
	ctx = context.WithValue(ctx, mintedKey{}, &claims)
	ti, err := e.oauth.GetAccessToken(ctx, oauth2.PasswordCredentials, &oauth2.TokenGenerateRequest{
		ClientID:       c.ID,
		ClientSecret:   secret,
		UserID:         u.ID,
		Scope:          strings.Join(scope, " "),
		AccessTokenExp: ttl,
		Request:        r,
	})
	if err != nil {
		return fromOAuth2(err)
	}
	answer := tokenAnswer{
		AccessToken: ti.GetAccess(),
		TokenType:   "Bearer",
		ExpiresIn:   int64(ti.GetAccessExpiresIn() / time.Second),
		Scope:       ti.GetScope(),
	}
	return e.finishUserAnswer(w, r, grantPassword, c, u, sess, scope, refresh, answer, claims)
}

// finishUserAnswer adds the refresh token (for clients allowed to refresh) and the ID token (for
// the openid scope) and writes the answer.
func (e *tokenEndpoint) finishUserAnswer(w http.ResponseWriter, r *http.Request, grant string, c identity.Client, u identity.User,
	sess tokens.Session, scope []string, refresh string, answer tokenAnswer, claims tokens.AccessClaims) error {
	ctx := r.Context()
	if c.AllowsGrant(grantRefreshToken) {
		answer.RefreshToken = refresh
	}
	if slices.Contains(scope, "openid") {
		req := tokens.IDRequest{
			Subject: u.ID, ClientID: c.ID, TTL: time.Duration(answer.ExpiresIn) * time.Second,
			SessionID: sess.ID, AMR: sess.AMR, AuthTime: sess.AuthTime,
		}
		if slices.Contains(scope, "email") {
			req.Email, req.EmailVerified = u.Email, u.EmailVerified
		}
		if slices.Contains(scope, "profile") {
			req.Name = u.Name
		}
		id, err := e.issuer.IDToken(ctx, req)
		if err != nil {
			return err
		}
		answer.IDToken = id
	}
	e.metrics.TokenIssued(grant)
	typ := audit.TokenIssued
	if grant == grantRefreshToken {
		typ = audit.TokenRefreshed
	}
	e.security(r, tokenEvent(typ, grant, claims))
	writeTokenAnswer(w, answer)
	return nil
}

// auditLogin records a login step at the token endpoint (AU-01).
func (e *tokenEndpoint) auditLogin(r *http.Request, clientID string, u identity.User, err error, factor string) {
	if ev, ok := loginEvent(clientID, u, err, factor); ok {
		e.security(r, ev)
	}
}

// loginError answers a login that did not yield tokens, in RFC 6749 terms: a bad password or
// code is invalid_grant; a throttled account or IP is 429 with Retry-After; a second factor or a
// password change due is 403 with the token that continues the flow (no access token, PW-06/07).
func (e *tokenEndpoint) loginError(w http.ResponseWriter, err error) error {
	if reason := failureReason(err); reason != "other" {
		e.metrics.LoginFailure(reason)
	}
	var (
		throttled *throttledError
		mfa       *mfaRequiredError
		expired   *passwordExpiredError
	)
	switch {
	case errors.Is(err, errBadCredentials), errors.Is(err, errInvalidOTP):
		return errInvalidGrant()
	case errors.Is(err, identity.ErrBusy):
		return errBusy()
	case errors.As(err, &throttled):
		return &oauthError{status: http.StatusTooManyRequests, code: oauth2errors.ErrInvalidGrant,
			desc:   "too many failed attempts, retry later",
			header: http.Header{"Retry-After": {retryAfterSeconds(throttled.retryAfter)}}}
	case errors.As(err, &mfa):
		writeTokenJSON(w, http.StatusForbidden, map[string]any{
			"error":             "mfa_required",
			"error_description": "a second factor is required",
			"mfa_token":         mfa.token,
			"mfa_methods":       mfa.methods,
		})
		return nil
	case errors.As(err, &expired):
		writeTokenJSON(w, http.StatusForbidden, map[string]string{
			"error":                 "password_expired",
			"error_description":     "the password has expired and must be changed",
			"password_change_token": expired.changeToken,
		})
		return nil
	}
	return err
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// mfa is the grant that completes a login with a second factor (urn:portaria:grant-type:mfa).
// go-oauth2 has no custom grants: it mints through the same issuer as every other grant.
func (e *tokenEndpoint) mfa(w http.ResponseWriter, r *http.Request, c identity.Client, form url.Values) error {
	mfaToken, otp, recovery := form.Get("mfa_token"), form.Get("otp"), form.Get("recovery_code")
	if mfaToken == "" || (otp == "") == (recovery == "") {
		return errInvalidRequest("mfa_token and one of otp or recovery_code are required")
	}
	scope, err := grantedScope(c, form.Get("scope"))
	if err != nil {
		return err
	}
	ttl, err := e.accessTTL(c, form)
	if err != nil {
		return err
	}
	once, err := singleUse(form)
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, amr, err := e.logins.secondFactor(ctx, c.ID, mfaToken, otp, recovery, clientIP(r, e.trusted))
	factor := "totp"
	if recovery != "" {
		factor = "recovery"
	}
	e.auditLogin(r, c.ID, u, err, factor)
	if err != nil {
		return e.loginError(w, err)
	}
	refresh, sess, err := e.sessions.Start(ctx, tokens.Session{
		UserID: u.ID, ClientID: c.ID, Org: u.OrgID, Scope: scope, AMR: amr, AuthTime: e.now(),
	}, e.refreshLifetime(c))
	if err != nil {
		return err
	}
	return e.mintUserAnswer(w, r, grantMFA, c, u, sess, scope, ttl, once, refresh)
}

// refresh is the refresh_token grant, done by tokens.Sessions (rotation with reuse detection and
// a grace window), not by go-oauth2. The user is read again: a deactivated user or organization
// ends the session, and new permissions show in the new access token.
func (e *tokenEndpoint) refresh(w http.ResponseWriter, r *http.Request, c identity.Client, form url.Values) error {
	presented := form.Get("refresh_token")
	if presented == "" {
		return errInvalidRequest("refresh_token is required")
	}
	ttl, err := e.accessTTL(c, form)
	if err != nil {
		return err
	}
	once, err := singleUse(form)
	if err != nil {
		return err
	}
	ctx := r.Context()
	requested := form.Get("scope")
	if requested != "" {
		// Check a narrower scope before rotating, so that a bad request does not burn the token.
		sess, err := e.sessions.SessionOf(ctx, presented)
		if errors.Is(err, tokens.ErrSessionNotFound) {
			return errInvalidGrant()
		} else if err != nil {
			return err
		}
		if _, err := narrowScope(sess.Scope, requested); err != nil {
			return err
		}
	}
	next, sess, u, err := refreshUser(ctx, e.sessions, e.users, presented, c.ID)
	if errors.Is(err, tokens.ErrInvalidGrant) {
		return errInvalidGrant()
	} else if err != nil {
		return err
	}
	scope := sess.Scope
	if requested != "" {
		if scope, err = narrowScope(sess.Scope, requested); err != nil {
			return err
		}
	}
	return e.mintUserAnswer(w, r, grantRefreshToken, c, u, sess, scope, ttl, once, next)
}

// refreshUser rotates a refresh token of clientID and returns its successor, its session and
// the session's user, read again. The user is read before the token is consumed: if the read
// fails (the database cut off) the client's retry, even after the grace window, finds its token
// unused. A deactivated user or organization ends the family, but only once the token has proven
// valid (its rotation succeeded), so that a guessed session id cannot; that and every invalid
// token are tokens.ErrInvalidGrant.
func refreshUser(ctx context.Context, sessions *tokens.Sessions, users UserDirectory, token, clientID string) (string, tokens.Session, identity.User, error) {
	owner, err := sessions.UserOf(ctx, token)
	if err != nil {
		return "", tokens.Session{}, identity.User{}, err
	}
	u, err := activeUser(ctx, users, owner)
	inactive := errors.Is(err, errInactive)
	if err != nil && !inactive {
		return "", tokens.Session{}, identity.User{}, err
	}
	next, sess, err := sessions.Refresh(ctx, token, clientID)
	if err != nil {
		return "", tokens.Session{}, identity.User{}, err
	}
	if inactive {
		if err := sessions.Revoke(ctx, sess.ID); err != nil {
			return "", tokens.Session{}, identity.User{}, err
		}
		return "", tokens.Session{}, identity.User{}, tokens.ErrInvalidGrant
	}
	return next, sess, u, nil
}

// mintUserAnswer mints the access token of a user's session itself (the grants go-oauth2 does not
// run: MFA and refresh) and writes the answer.
func (e *tokenEndpoint) mintUserAnswer(w http.ResponseWriter, r *http.Request, grant string, c identity.Client, u identity.User,
	sess tokens.Session, scope []string, ttl time.Duration, once bool, refresh string) error {
	ctx := r.Context()
	req := tokens.AccessRequest{Subject: u.ID, ClientID: c.ID, Scope: scope, TTL: ttl, Once: once}
	userLogin{user: u, sess: sess}.claims(&req)
	access, claims, err := e.issuer.Access(ctx, req)
	if err != nil {
		return err
	}
	answer := tokenAnswer{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(scope, " ")}
	return e.finishUserAnswer(w, r, grant, c, u, sess, scope, refresh, answer, claims)
}

var errInactive = errors.New("user or organization inactive")

// activeUser returns the user if it and its organization are active.
func activeUser(ctx context.Context, users UserDirectory, id string) (identity.User, error) {
	u, err := users.User(ctx, id)
	if errors.Is(err, identity.ErrNotFound) {
		return identity.User{}, errInactive
	} else if err != nil {
		return identity.User{}, err
	}
	if !u.Active {
		return identity.User{}, errInactive
	}
	if u.OrgID != "" {
		o, err := users.Organization(ctx, u.OrgID)
		if errors.Is(err, identity.ErrNotFound) {
			return identity.User{}, errInactive
		} else if err != nil {
			return identity.User{}, err
		}
		if !o.Active {
			return identity.User{}, errInactive
		}
	}
	return u, nil
}

// narrowScope checks that requested ⊆ granted: a refresh may narrow the scope, never widen it.
func narrowScope(granted []string, requested string) ([]string, error) {
	var scope []string
	for _, s := range strings.Split(requested, " ") {
		if s == "" || slices.Contains(scope, s) {
			continue
		}
		if !slices.Contains(granted, s) {
			return nil, errInvalidScope()
		}
		scope = append(scope, s)
	}
	if len(scope) == 0 {
		return granted, nil
	}
	return scope, nil
}
