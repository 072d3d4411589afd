package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/portaria/portaria/tokens"
)

// resourceAPI is the multi-tenant resource API of SPEC §5 (organizations, users, groups, …). It
// checks access tokens offline and needs neither the key ring nor the token endpoint, so
// `portaria serve --role api` serves it on its own.
type resourceAPI struct {
	auditor
	log       *slog.Logger
	issuerURL string
	cors      []string
	now       func() time.Time
	auth      bearerAuth
	accounts  Directory
	sessions  *tokens.Sessions
	oneTime   *tokens.OneTimeTokens
	mail      Mailer
}

// Directory is what the resource API reads and changes of the identity domain, one small
// interface per area; *identity.Service is one.
type Directory interface {
	OrganizationManager
	UserManager
	FieldManager
	GroupManager
}

func newResourceAPI(d Deps, auth bearerAuth) *resourceAPI {
	return &resourceAPI{
		auditor: newAuditor(d),
		log:     d.Logger, issuerURL: d.Issuer, cors: d.CORSOrigins, now: d.now(), auth: auth,
		accounts: d.Directory, sessions: d.Sessions, oneTime: d.OneTime, mail: d.Mail,
	}
}

// handle adapts a handler that returns an error: problems are written by the one error writer.
func (a *resourceAPI) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeProblem(w, r, a.log, err)
		}
	})
}

// unsafe wraps a state-changing endpoint with the Origin check of cookie-authenticated requests
// (CK-03), as the account API does.
func (a *resourceAPI) unsafe(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return a.handle(func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get("Authorization") == "" {
			if err := checkOrigin(r, a.issuerURL, a.cors); err != nil {
				return err
			}
		}
		return fn(w, r)
	})
}

// user authenticates the caller of the request as a user: a client_credentials token is refused.
func (a *resourceAPI) user(r *http.Request) (tokens.AccessClaims, error) {
	return a.auth.user(r)
}
