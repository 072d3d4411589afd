package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/tokens"
)

// One-time token purposes of the account flows.
const (
	purposeMFA    = "mfa"
	purposeReset  = "reset"
	purposeVerify = "verify"
	purposeInvite = "invite"
)

// Lifetimes of one-time tokens (SPEC §3–§4).
const (
	mfaTokenTTL = 5 * time.Minute
	mfaMaxTries = 5
	resetTTL    = 24 * time.Hour
	inviteTTL   = 7 * 24 * time.Hour
	verifyTTL   = 7 * 24 * time.Hour
)

// BrowserClient is the client id of sessions started by the cookie login of /api/auth: the
// first-party browser app, which has no credentials of its own.
const BrowserClient = "portaria-browser"

// Errors of the login flows; the token endpoint and the account API each answer them in their own
// vocabulary (RFC 6749 or problem+json).
var (
	errBadCredentials = errors.New("invalid credentials")
	errInvalidOTP     = errors.New("invalid one-time code")
)

// throttledError: too many failures for the account or the client IP; retry after the delay.
type throttledError struct{ retryAfter time.Duration }

func (e *throttledError) Error() string { return fmt.Sprintf("throttled for %s", e.retryAfter) }

// mfaRequiredError: the password was right and the user has 2FA: finish with the mfa_token.
type mfaRequiredError struct {
	token   string
	methods []string
}

func (e *mfaRequiredError) Error() string { return "mfa required" }

// passwordExpiredError: full authentication succeeded but the password must be changed first.
type passwordExpiredError struct{ changeToken string }

func (e *passwordExpiredError) Error() string { return "password expired" }

// MFA checks second factors; *identity.Service is one.
type MFA interface {
	VerifyTOTP(ctx context.Context, userID, code string) error
	UseRecoveryCode(ctx context.Context, userID, code string) error
	MFAMethods(ctx context.Context, userID string) ([]string, error)
}

// Throttler counts failed login attempts per account and client IP; *tokens.Throttle is one.
type Throttler interface {
	Allow(ctx context.Context, account, ip string) (time.Duration, bool, error)
	Fail(ctx context.Context, account, ip string) error
	Succeed(ctx context.Context, account string) error
	Release(ctx context.Context, account string) error
}

// logins is the one login policy of every path (password grant, MFA grant, cookie login):
// throttling before hashing, the same answer for every bad credential, 2FA that nothing skips,
// expired passwords, and the side effects of a success.
type logins struct {
	users    UserDirectory
	mfa      MFA
	oneTime  *tokens.OneTimeTokens
	throttle Throttler
}

// mfaState is what an mfa_token carries.
type mfaState struct {
	Account string `json:"account"` // the throttling key: the failures of both steps share one counter
}

// password checks an e-mail and password for clientID. On success it returns the user; when a
// second factor or a password change is due it returns *mfaRequiredError or *passwordExpiredError.
func (l logins) password(ctx context.Context, clientID, email, password, ip string) (identity.User, error) {
	account := identity.NormalizeEmail(email)
	if account == "" {
		// No account has a blank e-mail: nothing to throttle or hash, and nothing to reveal.
		return identity.User{}, errBadCredentials
	}
	if err := l.allow(ctx, account, ip); err != nil {
		return identity.User{}, err
	}
	u, err := l.users.Authenticate(ctx, email, password)
	if errors.Is(err, identity.ErrInvalidCredentials) {
		if err := l.throttle.Fail(ctx, account, ip); err != nil {
			return identity.User{}, err
		}
		return identity.User{}, errBadCredentials
	}
	if errors.Is(err, identity.ErrBusy) {
		// Not evaluated (503): the attempt does not count towards a lock.
		if err := l.throttle.Release(ctx, account); err != nil {
			return identity.User{}, err
		}
		return identity.User{}, err
	}
	if err != nil {
		return identity.User{}, err
	}
	if u.MFAEnabled {
		state, _ := json.Marshal(mfaState{Account: account})
		tok, err := l.oneTime.Issue(ctx, tokens.OneTime{Purpose: purposeMFA, Subject: u.ID, ClientID: clientID, Data: state}, mfaTokenTTL)
		if err != nil {
			return identity.User{}, err
		}
		methods, err := l.mfa.MFAMethods(ctx, u.ID)
		if err != nil {
			return identity.User{}, err
		}
		return identity.User{}, &mfaRequiredError{token: tok, methods: methods}
	}
	return l.succeed(ctx, clientID, account, u)
}

// secondFactor completes a login with the mfa_token and a TOTP code or a recovery code. It
// returns the user and the authentication methods (RFC 8176) of the login.
func (l logins) secondFactor(ctx context.Context, clientID, mfaToken, otp, recoveryCode, ip string) (identity.User, []string, error) {
	ot, err := l.oneTime.Peek(ctx, purposeMFA, mfaToken)
	if errors.Is(err, tokens.ErrInvalidOneTimeToken) || (err == nil && ot.ClientID != clientID) {
		return identity.User{}, nil, errInvalidOTP
	}
	if err != nil {
		return identity.User{}, nil, err
	}
	var state mfaState
	json.Unmarshal(ot.Data, &state)
	if err := l.allow(ctx, state.Account, ip); err != nil {
		return identity.User{}, nil, err
	}
	amr := []string{"pwd", "otp", "mfa"}
	switch {
	case otp != "":
		err = l.mfa.VerifyTOTP(ctx, ot.Subject, otp)
	case recoveryCode != "":
		err = l.mfa.UseRecoveryCode(ctx, ot.Subject, recoveryCode)
		amr = []string{"pwd", "mfa"}
	default:
		return identity.User{}, nil, errInvalidOTP
	}
	if errors.Is(err, identity.ErrInvalidOTP) {
		if _, err := l.oneTime.Fail(ctx, purposeMFA, mfaToken, mfaMaxTries); err != nil && !errors.Is(err, tokens.ErrInvalidOneTimeToken) {
			return identity.User{}, nil, err
		}
		if err := l.throttle.Fail(ctx, state.Account, ip); err != nil {
			return identity.User{}, nil, err
		}
		return identity.User{}, nil, errInvalidOTP
	}
	if err != nil {
		return identity.User{}, nil, err
	}
	// The code was right: consuming the token is the single-use gate (a concurrent twin loses).
	if _, err := l.oneTime.Redeem(ctx, purposeMFA, mfaToken, clientID); err != nil {
		if errors.Is(err, tokens.ErrInvalidOneTimeToken) {
			return identity.User{}, nil, errInvalidOTP
		}
		return identity.User{}, nil, err
	}
	u, err := l.users.User(ctx, ot.Subject)
	if err != nil {
		return identity.User{}, nil, err
	}
	u, err = l.succeed(ctx, clientID, state.Account, u)
	return u, amr, err
}

func (l logins) allow(ctx context.Context, account, ip string) error {
	retry, ok, err := l.throttle.Allow(ctx, account, ip)
	if err != nil {
		return err
	}
	if !ok {
		return &throttledError{retryAfter: retry}
	}
	return nil
}

// succeed finishes a fully authenticated login: the failure count resets, an outstanding
// password-reset token dies (TOTVS: a login voids it), and an expired password still blocks.
func (l logins) succeed(ctx context.Context, clientID, account string, u identity.User) (identity.User, error) {
	if err := l.throttle.Succeed(ctx, account); err != nil {
		return identity.User{}, err
	}
	if err := l.oneTime.VoidSubject(ctx, purposeReset, u.ID); err != nil {
		return identity.User{}, err
	}
	if u.PasswordExpired {
		tok, err := l.oneTime.Issue(ctx, tokens.OneTime{Purpose: purposePasswordChange, Subject: u.ID, ClientID: clientID}, passwordChangeTTL)
		if err != nil {
			return identity.User{}, err
		}
		return identity.User{}, &passwordExpiredError{changeToken: tok}
	}
	return u, nil
}

// failureReason names a login error for the login-failure metric ("" for what is not a failure).
func failureReason(err error) string {
	var throttled *throttledError
	switch {
	case errors.Is(err, errBadCredentials):
		return "credentials"
	case errors.Is(err, errInvalidOTP):
		return "otp"
	case errors.As(err, &throttled):
		return "throttled"
	}
	return "other"
}
