package server

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/mail"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// RefreshCookie carries the refresh token of a browser session, scoped to /api/auth (SPEC §4).
const RefreshCookie = "refreshToken"

// Mailer queues an account e-mail; sending never blocks the request.
type Mailer interface {
	Deliver(kind mail.Kind, lang string, data mail.Data) error
}

// AccountManager is what the account API changes in identity; *identity.Service is one.
type AccountManager interface {
	UserDirectory
	MFA
	OrganizationManager
	UserByEmail(ctx context.Context, email string) (identity.User, error)
	CheckPassword(ctx context.Context, userID, password string) error
	SetPassword(ctx context.Context, userID, newPassword string) error
	CheckPasswordPolicy(password, email string) error
	ExpirePassword(ctx context.Context, id string) error
	BeginTOTP(ctx context.Context, userID string) (identity.TOTPEnrolment, error)
	ConfirmTOTP(ctx context.Context, userID, code string) ([]string, error)
	DisableTOTP(ctx context.Context, userID, password, code string) error
	CreateUser(ctx context.Context, n identity.NewUser) (identity.User, error)
	VerifyEmail(ctx context.Context, id string) error
}

// accountAPI is /api/auth: cookie sessions for browsers and the account's own security flows.
type accountAPI struct {
	auditor
	log       *slog.Logger
	issuerURL string
	cors      []string
	secure    bool
	accessTTL time.Duration
	refreshTL time.Duration
	now       func() time.Time
	auth      bearerAuth
	logins    logins
	accounts  AccountManager
	sessions  *tokens.Sessions
	oneTime   *tokens.OneTimeTokens
	issuer    *tokens.Issuer
	mail      Mailer
	trusted   []netip.Prefix
	rate      RateLimiter
	metrics   *Metrics
	// signupOpen is PORTARIA_SIGNUP; decoyKey keys the decoy answers of mfa-info.
	signupOpen bool
	decoyKey   []byte
}

// handle adapts a handler that returns an error: problems are written by the one error writer.
func (a *accountAPI) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeProblem(w, r, a.log, a.loginProblem(err))
		}
	})
}

// unsafe wraps a state-changing endpoint with the Origin check (CK-03): a request that a browser
// could send on its own (cookies, or no credentials at all, like login) must come from the
// issuer's origin or an allowed one. A bearer token is never attached by a browser by itself, so
// a request carrying one cannot be forged cross-site and is not checked.
func (a *accountAPI) unsafe(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get("Authorization") == "" {
			if err := checkOrigin(r, a.issuerURL, a.cors); err != nil {
				return err
			}
		}
		return fn(w, r)
	})
}

// loginProblem maps the login errors to problem+json answers (SPEC §4).
func (a *accountAPI) loginProblem(err error) error {
	if reason := failureReason(err); reason != "other" {
		a.metrics.LoginFailure(reason)
	}
	var (
		throttled *throttledError
		mfa       *mfaRequiredError
		expired   *passwordExpiredError
	)
	switch {
	case errors.Is(err, errBadCredentials):
		return newProblem(http.StatusUnauthorized, "invalid_credentials", "The e-mail or password is wrong.")
	case errors.Is(err, errInvalidOTP):
		return newProblem(http.StatusUnauthorized, "invalid_otp", "The code is wrong or was already used.")
	case errors.Is(err, identity.ErrBusy):
		p := newProblem(http.StatusServiceUnavailable, "unavailable", "The service is temporarily unavailable.")
		p.header = http.Header{"Retry-After": {"1"}}
		return p
	case errors.As(err, &throttled):
		p := newProblem(http.StatusTooManyRequests, "too_many_attempts", "Too many failed attempts; retry later.")
		p.header = http.Header{"Retry-After": {retryAfterSeconds(throttled.retryAfter)}}
		return p
	case errors.As(err, &mfa):
		p := newProblem(http.StatusForbidden, "mfa_required", "A second factor is required.")
		p.MFAToken, p.MFAMethods = mfa.token, mfa.methods
		return p
	case errors.As(err, &expired):
		p := newProblem(http.StatusForbidden, "password_expired", "The password has expired and must be changed.")
		p.PasswordChangeToken = expired.changeToken
		return p
	}
	return err
}

type loginBody struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	OTP      string `json:"otp"`
}

// login is POST /api/auth/login: the same policy as the password grant, for the browser client.
// A user with 2FA who sent no otp gets mfa_required; one who sent it logs in in one step.
func (a *accountAPI) login(w http.ResponseWriter, r *http.Request) error {
	var body loginBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	ip := clientIP(r, a.trusted)
	u, err := a.logins.password(ctx, BrowserClient, body.Email, body.Password, ip)
	a.auditLogin(r, u, err, "password")
	amr := []string{"pwd"}
	var mfa *mfaRequiredError
	if errors.As(err, &mfa) && body.OTP != "" {
		u, amr, err = a.logins.secondFactor(ctx, BrowserClient, mfa.token, body.OTP, "", ip)
		a.auditLogin(r, u, err, "totp")
	}
	if err != nil {
		return err
	}
	return a.startSession(w, r, u, amr)
}

type mfaBody struct {
	MFAToken     string `json:"mfa_token"`
	OTP          string `json:"otp"`
	RecoveryCode string `json:"recovery_code"`
}

// loginMFA is POST /api/auth/login/mfa: completes a 2FA login.
func (a *accountAPI) loginMFA(w http.ResponseWriter, r *http.Request) error {
	var body mfaBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.MFAToken == "" || (body.OTP == "") == (body.RecoveryCode == "") {
		return validation(fieldError{Field: "otp", Message: "send mfa_token and one of otp or recovery_code"})
	}
	u, amr, err := a.logins.secondFactor(r.Context(), BrowserClient, body.MFAToken, body.OTP, body.RecoveryCode, clientIP(r, a.trusted))
	factor := "totp"
	if body.RecoveryCode != "" {
		factor = "recovery"
	}
	a.auditLogin(r, u, err, factor)
	if err != nil {
		return err
	}
	return a.startSession(w, r, u, amr)
}

// auditLogin records a browser login step (AU-01).
func (a *accountAPI) auditLogin(r *http.Request, u identity.User, err error, factor string) {
	if e, ok := loginEvent(BrowserClient, u, err, factor); ok {
		a.security(r, e)
	}
}

// startSession starts a browser session: new cookies (never the ones the browser sent: no
// fixation, CK-02) and the me body.
func (a *accountAPI) startSession(w http.ResponseWriter, r *http.Request, u identity.User, amr []string) error {
	ctx := r.Context()
	refresh, sess, err := a.sessions.Start(ctx, tokens.Session{
		UserID: u.ID, ClientID: BrowserClient, Org: u.OrgID, AMR: amr, AuthTime: a.now(),
	}, a.refreshTL)
	if err != nil {
		return err
	}
	claims, err := a.setCookies(w, ctx, u, sess, refresh)
	if err != nil {
		return err
	}
	a.metrics.TokenIssued(grantCookieLogin)
	a.security(r, tokenEvent(audit.TokenIssued, grantCookieLogin, claims))
	return writeMe(w, ctx, a.accounts, claims)
}

// setCookies mints an access token for the session and sets both cookies.
func (a *accountAPI) setCookies(w http.ResponseWriter, ctx context.Context, u identity.User, sess tokens.Session, refresh string) (tokens.AccessClaims, error) {
	req := tokens.AccessRequest{Subject: u.ID, ClientID: BrowserClient, TTL: a.accessTTL}
	userLogin{user: u, sess: sess}.claims(&req)
	access, claims, err := a.issuer.Access(ctx, req)
	if err != nil {
		return tokens.AccessClaims{}, err
	}
	http.SetCookie(w, a.cookie(AccessCookie, access, "/", a.accessTTL))
	http.SetCookie(w, a.cookie(RefreshCookie, refresh, "/api/auth", time.Until(sess.ExpiresAt)))
	return claims, nil
}

func (a *accountAPI) cookie(name, value, path string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1 // Max-Age=0 on the wire: delete it
	}
	return c
}

// refresh is POST /api/auth/refresh: rotates the refresh cookie and sets a new access cookie.
func (a *accountAPI) refresh(w http.ResponseWriter, r *http.Request) error {
	c, err := r.Cookie(RefreshCookie)
	if err != nil || c.Value == "" {
		return newProblem(http.StatusUnauthorized, "unauthenticated", "There is no session to refresh.")
	}
	ctx := r.Context()
	next, sess, u, err := refreshUser(ctx, a.sessions, a.accounts, c.Value, BrowserClient)
	if errors.Is(err, tokens.ErrInvalidGrant) {
		a.clearCookies(w)
		return newProblem(http.StatusUnauthorized, "invalid_token", "The session has ended; log in again.")
	}
	if err != nil {
		return err
	}
	claims, err := a.setCookies(w, ctx, u, sess, next)
	if err != nil {
		return err
	}
	a.metrics.TokenIssued(grantCookieRefresh)
	a.security(r, tokenEvent(audit.TokenRefreshed, grantCookieRefresh, claims))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// logout is POST /api/auth/logout: ends the session server-side, then expires both cookies with
// the paths that set them (CK-02).
func (a *accountAPI) logout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if c, err := r.Cookie(RefreshCookie); err == nil && c.Value != "" {
		if sess, err := a.sessions.SessionOf(ctx, c.Value); err == nil {
			if err := a.sessions.Revoke(ctx, sess.ID); err != nil {
				return err
			}
			a.security(r, audit.Event{Type: audit.SessionRevoked, Outcome: audit.OutcomeSuccess, ActorID: sess.UserID,
				ClientID: sess.ClientID, OrgID: sess.Org, SubjectID: sess.UserID, Details: map[string]string{"reason": "logout", "family": sess.ID}})
		} else if !errors.Is(err, tokens.ErrSessionNotFound) {
			return err
		}
	}
	if claims, err := a.auth.authenticate(r); err == nil && claims.SessionID != "" {
		if err := a.sessions.Revoke(ctx, claims.SessionID); err != nil && !errors.Is(err, tokens.ErrSessionNotFound) {
			return err
		}
	}
	a.clearCookies(w)
	w.Header().Set("Clear-Site-Data", `"cookies"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *accountAPI) clearCookies(w http.ResponseWriter) {
	http.SetCookie(w, a.cookie(AccessCookie, "", "/", 0))
	http.SetCookie(w, a.cookie(RefreshCookie, "", "/api/auth", 0))
}

// user authenticates the caller of an account endpoint (a user's token, from the header or the
// access cookie).
func (a *accountAPI) user(r *http.Request) (tokens.AccessClaims, error) {
	return a.auth.user(r)
}

type forgotBody struct {
	Email string `json:"email"`
}

// forgot is POST /api/auth/password/forgot: always 202 with the same body, whether or not the
// e-mail has an account (PR-01), never sooner than enumerationFloor after the request began; the
// e-mail is queued after the answer (a process stopping in those 40 ms loses it: the user asks
// again).
func (a *accountAPI) forgot(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var body forgotBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	if err := a.limit(ctx, "forgot-ip", clientIP(r, a.trusted), forgotPerIP); err != nil {
		return err
	}
	// Past the per-account limit the answer stays 202 but nothing is sent (PR-01): the account is
	// never locked, and the answer still says nothing about it.
	if ok, _, err := a.rate.Hit(ctx, "forgot-account", identity.NormalizeEmail(body.Email), forgotPerAccount.n, forgotPerAccount.window); err != nil {
		return err
	} else if !ok {
		holdAnswer(ctx, start)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	u, err := a.accounts.UserByEmail(ctx, body.Email)
	if err != nil && !errors.Is(err, identity.ErrNotFound) && !errors.Is(err, identity.ErrInvalid) {
		return err
	}
	// An e-mail without an active account does the same work for nothing (a decoy token that
	// expires in a minute), and every answer waits for the same floor, so the answer time does
	// not tell the cases apart (PR-01, F12).
	known := err == nil && u.Active
	subject, ttl, to := "decoy", time.Minute, "decoy@invalid.example"
	if known {
		subject, ttl, to = u.ID, resetTTL, u.Email
	}
	tok, err := a.oneTime.Issue(ctx, tokens.OneTime{Purpose: purposeReset, Subject: subject}, ttl)
	if err != nil {
		return err
	}
	data := mail.Data{To: to, Name: u.Name, Link: a.link("/reset-password", url.Values{"token": {tok}, "email": {to}}), Code: tok, ExpiresIn: resetTTL}
	// Recorded for known and unknown addresses alike (the same work either way); the subject is
	// the user only when there is one.
	e := audit.Event{Type: audit.PasswordResetRequested, Outcome: audit.OutcomeSuccess}
	if known {
		e.SubjectID, e.OrgID = u.ID, u.OrgID
	} else {
		e.Outcome, e.Details = audit.OutcomeFailure, map[string]string{"reason": "unknown_account"}
	}
	a.security(r, e)
	if known {
		// Queued a floor after the answer: rendering and writing the e-mail (the outbox, an SMTP
		// session) made known addresses' answers 0.1 ms slower when it overlapped them, which
		// 1,000 timed samples tell apart (F12). Later, it overlaps whatever comes next.
		lang, bg := preferredLanguage(r), context.WithoutCancel(ctx)
		time.AfterFunc(time.Until(start.Add(2*enumerationFloor)), func() {
			if err := a.mail.Deliver(mail.PasswordReset, lang, data); err != nil {
				a.log.WarnContext(bg, "password reset e-mail not queued", "err", err, "request_id", requestID(bg))
			}
		})
	}
	holdAnswer(ctx, start)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// enumerationFloor is the least time the answers that look an account up by e-mail for an
// anonymous caller (password/forgot, mfa-info) take. Their work differs by tens to hundreds of
// microseconds between a known and an unknown address (a row decoded, an e-mail queued), which
// 1,000 timed samples of each tell apart (F12's Kolmogorov–Smirnov test did); held to a floor far
// above that work, every answer takes the floor. Password checks need none: the argon2id
// evaluation every attempt pays dwarfs the rest (F12 passes on them as they are).
const enumerationFloor = 20 * time.Millisecond

// holdAnswer waits until enumerationFloor has passed since start, or the caller is gone.
func holdAnswer(ctx context.Context, start time.Time) {
	t := time.NewTimer(time.Until(start.Add(enumerationFloor)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Rate limits of the account API (SECURITY.md PR-01; SPEC §4 mfa-info).
var (
	forgotPerAccount = rateLimit{n: 5, window: 15 * time.Minute}
	forgotPerIP      = rateLimit{n: 50, window: 15 * time.Minute}
	mfaInfoPerIP     = rateLimit{n: 30, window: time.Minute}
)

type rateLimit struct {
	n      int
	window time.Duration
}

// RateLimiter counts events per key in shared fixed windows; *tokens.RateLimit is one.
type RateLimiter interface {
	Hit(ctx context.Context, scope, key string, limit int, window time.Duration) (bool, time.Duration, error)
}

// limit answers 429 with Retry-After once key has used up its events.
func (a *accountAPI) limit(ctx context.Context, scope, key string, l rateLimit) error {
	ok, retry, err := a.rate.Hit(ctx, scope, key, l.n, l.window)
	if err != nil {
		return err
	}
	if !ok {
		return &throttledError{retryAfter: retry}
	}
	return nil
}

// link builds an e-mailed link from the configured issuer, never from request headers (PR-03).
func (a *accountAPI) link(path string, q url.Values) string {
	return a.issuerURL + path + "#" + q.Encode()
}

type resetBody struct {
	Email              string `json:"email"`
	Token              string `json:"token"`
	NewPassword        string `json:"new_password"`
	NewPasswordConfirm string `json:"new_password_confirm"`
}

// reset is POST /api/auth/password/reset: sets the password with a reset or invitation token,
// ends every session, notifies the user. It does not log the user in (PR-04).
func (a *accountAPI) reset(w http.ResponseWriter, r *http.Request) error {
	var body resetBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.NewPassword != body.NewPasswordConfirm {
		return validation(fieldError{Field: "new_password_confirm", Message: "must equal new_password"})
	}
	ctx := r.Context()
	u, err := a.accounts.UserByEmail(ctx, body.Email)
	if err != nil && !errors.Is(err, identity.ErrNotFound) && !errors.Is(err, identity.ErrInvalid) {
		return err
	}
	invalid := newProblem(http.StatusBadRequest, "invalid_token", "The link is invalid, expired or was already used.")
	if err != nil {
		return invalid
	}
	// Check the new password before consuming the token, so a refused password keeps the link.
	if err := a.accounts.CheckPasswordPolicy(body.NewPassword, u.Email); err != nil {
		return err
	}
	ot, err := a.redeemAny(ctx, body.Token, u.ID, purposeReset, purposeInvite)
	if err != nil {
		return err
	}
	if ot.Subject != u.ID {
		return invalid
	}
	if err := a.accounts.SetPassword(ctx, u.ID, body.NewPassword); err != nil {
		return err
	}
	if err := a.sessions.RevokeUser(ctx, u.ID); err != nil {
		return err
	}
	a.security(r, audit.Event{Type: audit.PasswordResetCompleted, Outcome: audit.OutcomeSuccess, ActorID: u.ID,
		OrgID: u.OrgID, SubjectID: u.ID, Details: map[string]string{"reason": ot.Purpose}})
	a.notify(ctx, r, mail.PasswordChanged, u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// redeemAny consumes a one-time token of one of the purposes.
func (a *accountAPI) redeemAny(ctx context.Context, token, subject string, purposes ...string) (tokens.OneTime, error) {
	for _, p := range purposes {
		ot, err := a.oneTime.Redeem(ctx, p, token, "")
		if err == nil {
			return ot, nil
		}
		if !errors.Is(err, tokens.ErrInvalidOneTimeToken) {
			return tokens.OneTime{}, err
		}
	}
	return tokens.OneTime{}, newProblem(http.StatusBadRequest, "invalid_token", "The link is invalid, expired or was already used.")
}

func (a *accountAPI) notify(ctx context.Context, r *http.Request, kind mail.Kind, u identity.User) {
	if err := a.mail.Deliver(kind, preferredLanguage(r), mail.Data{To: u.Email, Name: u.Name}); err != nil {
		a.log.WarnContext(ctx, "notice e-mail not queued", "kind", kind, "err", err, "request_id", requestID(ctx))
	}
}

type changeBody struct {
	CurrentPassword     string `json:"current_password"`
	PasswordChangeToken string `json:"password_change_token"`
	NewPassword         string `json:"new_password"`
	NewPasswordConfirm  string `json:"new_password_confirm"`
}

// change is POST /api/auth/password/change: the caller changes their own password with the
// current one (or, for an expired password, the password_change_token). Every session of the
// user ends; a browser caller gets a fresh session in its cookies.
func (a *accountAPI) change(w http.ResponseWriter, r *http.Request) error {
	var body changeBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.NewPassword != body.NewPasswordConfirm {
		return validation(fieldError{Field: "new_password_confirm", Message: "must equal new_password"})
	}
	ctx := r.Context()
	var (
		userID string
		amr    = []string{"pwd"}
	)
	if body.PasswordChangeToken != "" {
		// The token is bound to the client that logged in; whoever holds it may change the password
		// here, once: read its binding, then redeem it with that binding.
		ot, err := a.oneTime.Peek(ctx, purposePasswordChange, body.PasswordChangeToken)
		if err == nil {
			ot, err = a.oneTime.Redeem(ctx, purposePasswordChange, body.PasswordChangeToken, ot.ClientID)
		}
		if errors.Is(err, tokens.ErrInvalidOneTimeToken) {
			return newProblem(http.StatusBadRequest, "invalid_token", "The link is invalid, expired or was already used.")
		} else if err != nil {
			return err
		}
		userID = ot.Subject
	} else {
		claims, err := a.user(r)
		if err != nil {
			return err
		}
		userID, amr = claims.Subject, claims.AMR
		if err := a.accounts.CheckPassword(ctx, userID, body.CurrentPassword); err != nil {
			if errors.Is(err, identity.ErrInvalidCredentials) {
				return newProblem(http.StatusForbidden, "invalid_credentials", "The current password is wrong.")
			}
			return err
		}
		if body.NewPassword == body.CurrentPassword {
			return validation(fieldError{Field: "new_password", Message: "must differ from the current password"})
		}
	}
	if err := a.accounts.SetPassword(ctx, userID, body.NewPassword); err != nil {
		return err
	}
	u, err := a.accounts.User(ctx, userID)
	if err != nil {
		return err
	}
	if err := a.endSessions(w, r, u, amr); err != nil {
		return err
	}
	reason := "current_password"
	if body.PasswordChangeToken != "" {
		reason = "password_expired"
	}
	a.security(r, audit.Event{Type: audit.PasswordChanged, Outcome: audit.OutcomeSuccess, ActorID: u.ID,
		OrgID: u.OrgID, SubjectID: u.ID, Details: map[string]string{"reason": reason}})
	a.notify(ctx, r, mail.PasswordChanged, u)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// endSessions ends every session of u after a security change (password, 2FA: RT-06), failing
// closed. A browser that made the change keeps working in a new session, in fresh cookies.
func (a *accountAPI) endSessions(w http.ResponseWriter, r *http.Request, u identity.User, amr []string) error {
	ctx := r.Context()
	if err := a.sessions.RevokeUser(ctx, u.ID); err != nil {
		return err
	}
	if _, err := r.Cookie(RefreshCookie); err != nil {
		return nil
	}
	refresh, sess, err := a.sessions.Start(ctx, tokens.Session{UserID: u.ID, ClientID: BrowserClient, Org: u.OrgID, AMR: amr, AuthTime: a.now()}, a.refreshTL)
	if err != nil {
		return err
	}
	_, err = a.setCookies(w, ctx, u, sess, refresh)
	return err
}

// totpSetup is POST /api/auth/mfa/totp/setup.
func (a *accountAPI) totpSetup(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	e, err := a.accounts.BeginTOTP(r.Context(), claims.Subject)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"secret": e.Secret, "otpauth_uri": e.URI, "qr_png": base64.StdEncoding.EncodeToString(e.QRPNG),
	})
	return nil
}

type otpBody struct {
	OTP string `json:"otp"`
}

// totpConfirm is POST /api/auth/mfa/totp/confirm: turns 2FA on and shows the recovery codes once.
func (a *accountAPI) totpConfirm(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	var body otpBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	codes, err := a.accounts.ConfirmTOTP(r.Context(), claims.Subject, body.OTP)
	if errors.Is(err, identity.ErrInvalidOTP) {
		return a.loginProblem(errInvalidOTP)
	}
	if err != nil {
		return err
	}
	if err := a.afterMFAChange(w, r, claims); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string][]string{"recovery_codes": codes})
	return nil
}

type disableBody struct {
	Password string `json:"password"`
	OTP      string `json:"otp"`
}

// totpDisable is POST /api/auth/mfa/totp/disable: needs the password and a current code.
func (a *accountAPI) totpDisable(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	var body disableBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	err = a.accounts.DisableTOTP(r.Context(), claims.Subject, body.Password, body.OTP)
	switch {
	case errors.Is(err, identity.ErrInvalidCredentials):
		return newProblem(http.StatusForbidden, "invalid_credentials", "The password is wrong.")
	case errors.Is(err, identity.ErrInvalidOTP):
		return a.loginProblem(errInvalidOTP)
	case err != nil:
		return err
	}
	if err := a.afterMFAChange(w, r, claims); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// afterMFAChange ends the user's sessions (a browser caller keeps one) and sends the notice.
func (a *accountAPI) afterMFAChange(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims) error {
	u, err := a.accounts.User(r.Context(), claims.Subject)
	if err != nil {
		return err
	}
	if err := a.endSessions(w, r, u, claims.AMR); err != nil {
		return err
	}
	a.notify(r.Context(), r, mail.MFAChanged, u)
	return nil
}

// validation is a 422 problem listing the failing fields.
func validation(fields ...fieldError) *problem {
	p := newProblem(http.StatusUnprocessableEntity, "validation_failed", "The request has invalid fields.")
	p.Errors = fields
	return p
}
