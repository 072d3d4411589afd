// Package identity holds who may use Portaria: OAuth clients, organizations and users with their
// passwords, permissions and second factors (TOTP and recovery codes); groups and the rest as
// they arrive. It holds the domain types, their validation, the Store contract that every backend
// implements and the Service that applies the rules on top of it.
package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the package. Callers match them with errors.Is; the messages are not for end users.
var (
	// ErrNotFound: no such client, organization or user.
	ErrNotFound = errors.New("identity: not found")
	// ErrExists: an object with the same identifier already exists.
	ErrExists = errors.New("identity: already exists")
	// ErrInvalid: the input breaks a rule; a *ValidationError says which fields and why.
	ErrInvalid = errors.New("identity: invalid input")
	// ErrInvalidClient: client authentication failed. The wrapped reason is for logs only: an
	// OAuth client must not learn whether the id or the secret was wrong.
	ErrInvalidClient = errors.New("identity: client authentication failed")
	// ErrInvalidCredentials: a user's e-mail and password do not authenticate. It is the one
	// answer for an unknown e-mail, a wrong password, a user without a password, and a deactivated
	// user or organization, always returned as this very value (never wrapped with a reason) and
	// after the same amount of hashing, so that nothing tells these cases apart.
	ErrInvalidCredentials = errors.New("identity: invalid credentials")
	// ErrBusy: every password-hashing slot stayed taken for Options.HashWait; callers answer 503
	// with Retry-After.
	ErrBusy = errors.New("identity: too many password checks in progress")
	// ErrUnavailable: the store could not be reached; callers fail closed (503).
	ErrUnavailable = errors.New("identity: store unavailable")
	// ErrInvalidOTP: a one-time code (TOTP or recovery code) was wrong, already used, or the user
	// has no 2FA to check it against. It is one answer for all of these.
	ErrInvalidOTP = errors.New("identity: invalid one-time code")
)

// FieldError is one broken rule: Field is the input's JSON/CLI name, Message completes the
// sentence that starts with it ("name" + "must not be blank").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every broken rule of one input, so that a caller can fix them all at once.
// It matches ErrInvalid with errors.Is.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns e, or nil when no rule was broken (never a typed nil inside an error).
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Store is everything the identity domain persists. It grows one small interface per kind of
// object; each backend passes the identitytest conformance suite.
type Store interface {
	ClientStore
	OrganizationStore
	UserStore
	MFAStore
	FieldStore
	GroupStore
}

// ClientStore persists OAuth clients. It stores what it is given: validation and secret hashing
// belong to the Service.
type ClientStore interface {
	// CreateClient stores a new client. It fails with ErrExists if the ID is taken and with a
	// *ValidationError on "org_id" (ErrInvalid) if OrgID names no organization.
	CreateClient(ctx context.Context, c Client) error
	// Client returns the client with the given ID, or ErrNotFound.
	Client(ctx context.Context, id string) (Client, error)
	// Clients returns every client, ordered by ID (which is creation order for UUIDv7 IDs).
	Clients(ctx context.Context) ([]Client, error)
	// UpdateClient reads the client, passes it to update and stores the result, as one atomic
	// step: concurrent updates of the same client run one after the other, never interleaved.
	// ID and CreatedAt cannot change. An error from update aborts and is returned as is. It fails
	// with ErrNotFound if there is no such client and like CreateClient on a missing organization.
	UpdateClient(ctx context.Context, id string, update func(Client) (Client, error)) (Client, error)
	// DeleteClient removes the client, or fails with ErrNotFound.
	DeleteClient(ctx context.Context, id string) error
}

// OrganizationStore persists organizations.
type OrganizationStore interface {
	// CreateOrganization stores a new organization, or fails with ErrExists if the ID is taken.
	CreateOrganization(ctx context.Context, o Organization) error
	// Organization returns the organization with the given ID, or ErrNotFound.
	Organization(ctx context.Context, id string) (Organization, error)
	// UpdateOrganization is the read-modify-write of one organization, atomic like UpdateClient.
	// ID and CreatedAt cannot change.
	UpdateOrganization(ctx context.Context, id string, update func(Organization) (Organization, error)) (Organization, error)
	// Organizations returns at most limit organizations whose ID is greater than after ("" for
	// the first page), ordered by ID: one index range scan, whatever the page.
	Organizations(ctx context.Context, after string, limit int) ([]Organization, error)
}

// UserStore persists users, their password hashes included. The key under which e-mails are
// unique is NormalizeEmail(Email), which the store computes itself on every write, so that it
// can never disagree with the address it stores.
type UserStore interface {
	// CreateUser stores a new user. It fails with ErrExists if the ID or the normalised e-mail is
	// taken, and with a *ValidationError on "org_id" if OrgID names no organization.
	CreateUser(ctx context.Context, u User) error
	// User returns the user with the given ID, or ErrNotFound.
	User(ctx context.Context, id string) (User, error)
	// UserByEmail returns the user whose normalised e-mail is normalized, or ErrNotFound.
	UserByEmail(ctx context.Context, normalized string) (User, error)
	// OrganizationUser returns the user with the given ID if they belong to the organization,
	// or ErrNotFound: the lookup of a tenant's user carries the tenant.
	OrganizationUser(ctx context.Context, orgID, id string) (User, error)
	// UpdateUser is the read-modify-write of one user, atomic like UpdateClient: the password
	// hash changes through it too. ID and CreatedAt cannot change; a new e-mail fails with
	// ErrExists if another user holds it, a new OrgID like CreateUser.
	UpdateUser(ctx context.Context, id string, update func(User) (User, error)) (User, error)
	// UserIDsInOrganization returns the ids of the organization's (not deleted) users.
	UserIDsInOrganization(ctx context.Context, orgID string) ([]string, error)
	// Users returns at most q.Limit users matching q whose ID is greater than q.After, ordered
	// by ID: with q.OrgID set, one index range scan of that organization whatever the page.
	Users(ctx context.Context, q UserQuery) ([]User, error)
	// UpdateOrganizationUser is UpdateUser for changes that depend on the rest of the user's
	// organization: it also passes update the number of the organization's other active users
	// who hold org:admin, counted under a lock of the organization, so that two concurrent
	// changes cannot both take away its last administrator.
	UpdateOrganizationUser(ctx context.Context, id string, update func(u User, otherAdmins int) (User, error)) (User, error)
}

// Organization is a tenant: its users and clients belong to it.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
