// Package server is Portaria's HTTP layer: routes, middleware, handlers and the one place
// errors are written. Domain rules live in tokens, keys and identity; handlers only translate.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/tokens"
)

// Roles of `portaria serve --role`.
const (
	RoleAll   = "all"
	RoleToken = "token"
	RoleAPI   = "api"
)

// ClientAuthenticator checks a client's credentials; *identity.Service is one.
type ClientAuthenticator interface {
	AuthenticateClient(ctx context.Context, id, secret string) (identity.Client, error)
}

// KeySet publishes the verification keys; *keys.Ring is one.
type KeySet interface {
	JWKS(ctx context.Context) ([]byte, error)
	MaxAge() time.Duration
}

// Check is a readiness probe of one dependency.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps is everything the HTTP layer needs.
type Deps struct {
	Logger   *slog.Logger
	Role     string
	Issuer   string // the issuer URL, base of every advertised endpoint
	Clients  ClientAuthenticator
	Users    UserDirectory
	Tokens   *tokens.Issuer
	Sessions *tokens.Sessions
	OneTime  *tokens.OneTimeTokens
	// Verifier checks access tokens offline; Revocations is the in-memory revocation feed.
	Verifier    AccessVerifier
	Revocations RevocationChecker
	// RevocationFeed is the durable feed served at /oauth/revocations.
	RevocationFeed    tokens.RevocationLog
	DefaultRefreshTTL time.Duration
	Keys              KeySet
	DefaultAccessTTL  time.Duration
	MaxAccessTTL      time.Duration
	SigningAlg        string
	Checks            []Check
	// Draining, once set, makes /readyz answer 503 so load balancers stop sending traffic
	// before the server shuts down.
	Draining *atomic.Bool
	// MFA checks second factors; Throttle counts failed logins (both required with Users).
	MFA       MFA
	Throttle  Throttler
	RateLimit RateLimiter
	// Accounts changes users for the account API (*identity.Service); Mail queues its e-mails.
	Accounts AccountManager
	// Directory is the identity domain as the resource API uses it (*identity.Service).
	Directory Directory
	// Assessment is the catalogue of tests and the results (*assessment.Service); Audit records
	// every access to results and answers GET /api/audit (*audit.Log).
	Assessment AssessmentService
	Audit      AuditLog
	Mail       Mailer
	// CookieSecure sets Secure on cookies; CORSOrigins are the browser origins allowed with
	// credentials; Signup opens self sign-up; DecoyKey keys mfa-info's answers for unknown e-mails.
	CookieSecure bool
	CORSOrigins  []string
	Signup       bool
	DecoyKey     []byte
	// AuditClientTokens stores every client_credentials token as an audit event; without it the
	// token's access-log line names its client and jti (docs/audit.md).
	AuditClientTokens bool
	// TrustedProxies are the networks whose X-Forwarded-For is believed for the client IP.
	TrustedProxies []netip.Prefix
	// Metrics, if set, are served at /metrics and fed by the handlers.
	Metrics *Metrics
	// OpenAPI is the document served at /openapi.yaml.
	OpenAPI []byte
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

func (d Deps) logins() logins {
	return logins{users: d.Users, mfa: d.MFA, oneTime: d.OneTime, throttle: d.Throttle}
}

func (d Deps) now() func() time.Time {
	if d.Now != nil {
		return d.Now
	}
	return time.Now
}

// AccessVerifier checks an access token offline; *tokens.Verifier is one.
type AccessVerifier interface {
	Verify(ctx context.Context, token string) (tokens.AccessClaims, error)
}

// RevocationChecker says whether a verified token's session or user was revoked since it was
// issued; *tokens.RevocationCache is one.
type RevocationChecker interface {
	Revoked(c tokens.AccessClaims) bool
}

// NewServer returns the whole HTTP API as one handler.
func NewServer(d Deps) http.Handler {
	if d.Draining == nil {
		d.Draining = new(atomic.Bool)
	}
	mux := http.NewServeMux()
	addRoutes(mux, d)
	var h http.Handler = withUnroutedProblems(mux, d.Logger)
	h = withSecurityHeaders(strings.HasPrefix(d.Issuer, "https://"), h)
	h = withRecover(d.Logger, h)
	h = withAccessLog(d.Logger, d.Metrics, h)
	h = withRequestID(h)
	return h
}

// withUnroutedProblems answers a request under /api/ that no route takes as every other API
// error is answered, in application/problem+json: the mux's own 404 and 405 are plain text.
// Everything else, redirects to a canonical path included, is the mux's.
func withUnroutedProblems(mux *http.ServeMux, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			mux.ServeHTTP(w, r)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // which sets the request's pattern and path values (a second lookup: ~100 ns)
			return
		}
		// The mux's answer says which of the two it is, and a 405 lists the methods in Allow.
		var unrouted unroutedAnswer
		h.ServeHTTP(&unrouted, r)
		p := errNotFound
		// Every /api/ path takes OPTIONS (the CORS preflight route): with nothing else, there is
		// no resource there.
		allow := unrouted.Header().Values("Allow")
		if unrouted.status == http.StatusMethodNotAllowed && !slices.Equal(allow, []string{http.MethodOptions}) {
			p = newProblem(http.StatusMethodNotAllowed, "method_not_allowed", "The resource does not accept this method.")
			p.header = http.Header{"Allow": allow}
		}
		writeProblem(w, r, log, p)
	})
}

// unroutedAnswer keeps the status and header of the mux's own answer, and drops its body.
type unroutedAnswer struct {
	header http.Header
	status int
}

func (s *unroutedAnswer) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *unroutedAnswer) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *unroutedAnswer) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}
