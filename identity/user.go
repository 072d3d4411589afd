package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Permissions a user can hold (SPEC §5). Platform permissions apply across organizations; the
// others only inside the user's own organization.
const (
	PermPlatformAdmin = "platform:admin"
	PermSupport       = "support"
	PermTestsWrite    = "tests:write"

	PermOrgAdmin     = "org:admin"
	PermUsersRead    = "users:read"
	PermUsersWrite   = "users:write"
	PermGroupsRead   = "groups:read"
	PermGroupsWrite  = "groups:write"
	PermResultsRead  = "results:read"
	PermResultsWrite = "results:write"
)

var (
	platformPermissions     = []string{PermPlatformAdmin, PermSupport, PermTestsWrite}
	organizationPermissions = []string{PermOrgAdmin, PermUsersRead, PermUsersWrite, PermGroupsRead,
		PermGroupsWrite, PermResultsRead, PermResultsWrite}
)

// IsPlatformPermission reports whether p is one of the platform-level permissions.
func IsPlatformPermission(p string) bool { return slices.Contains(platformPermissions, p) }

// MaxEmailBytes is the longest e-mail address accepted (RFC 5321's path limit less the brackets).
const MaxEmailBytes = 254

// MaxNameLength is the longest name of a user, organization or client, in code points.
const MaxNameLength = 200

// User is a person who logs in.
type User struct {
	ID    string `json:"id"`
	OrgID string `json:"org_id,omitempty"` // "" for platform staff
	// Email is the address as given (trimmed); NormalizeEmail(Email) is unique among users.
	Email             string    `json:"email"`
	Name              string    `json:"name"`
	Active            bool      `json:"active"`
	EmailVerified     bool      `json:"email_verified"`
	Permissions       []string  `json:"permissions"`
	PasswordExpired   bool      `json:"password_expired"`             // the next login must change the password
	PasswordChangedAt time.Time `json:"password_changed_at,omitzero"` // zero while no password is set
	// MFAEnabled says whether the user has 2FA on (a confirmed TOTP enrolment), so that a login
	// knows to ask for a second factor. The store derives it; UpdateUser cannot change it.
	MFAEnabled bool `json:"mfa_enabled"`
	// Fields are the custom field values, by field ID, as canonical JSON (see Field).
	Fields    map[string]json.RawMessage `json:"fields"`
	CreatedAt time.Time                  `json:"created_at"`
	UpdatedAt time.Time                  `json:"updated_at"`
	// PasswordHash is the argon2id PHC string, "" while no password is set. Only the Service and
	// the Store see it: users the Service returns have it cleared.
	PasswordHash string `json:"-"`
}

// NewUser is what creating a user takes.
type NewUser struct {
	OrgID         string // "" for platform staff
	Email         string
	Name          string
	Password      string // optional: "" leaves the user without a password (an invitation sets it)
	Permissions   []string
	Active        bool
	EmailVerified bool
	Fields        map[string]json.RawMessage // custom field values by field ID
}

// NormalizeEmail returns the key under which e-mail addresses are unique and looked up at login:
// trimmed, NFKC-normalised and case-folded (IN-03), so that "ﬀ@x.test" (U+FB00) and "FF@x.test"
// are one address. The second NFKC pass keeps the result stable, since folding can undo it.
func NormalizeEmail(email string) string {
	s := norm.NFKC.String(strings.TrimSpace(email))
	return norm.NFKC.String(cases.Fold().String(s))
}

// unsafeRune reports whether r must not appear in an identifier or a display name: control
// characters (CR, LF, NUL, ESC…), line and paragraph separators, which split log lines, and
// bidirectional embeddings, overrides and isolates, which make text display other than it reads.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// validateEmail accepts a bare address as net/mail parses it: no display name, no comment, no
// quoted local part and no domain literal, nothing that net/mail would rewrite.
func validateEmail(v *ValidationError, email string) {
	trimmed := strings.TrimSpace(email)
	switch {
	case !utf8.ValidString(email):
		v.add("email", "must be valid UTF-8")
	case trimmed == "":
		v.add("email", "must not be blank")
	case len(trimmed) > MaxEmailBytes:
		v.add("email", "must be at most %d bytes", MaxEmailBytes)
	case strings.ContainsFunc(trimmed, unsafeRune):
		v.add("email", "must not contain control or bidirectional formatting characters")
	default:
		a, err := mail.ParseAddress(trimmed)
		if err != nil || a.Name != "" || a.Address != trimmed || strings.Contains(trimmed, "@[") {
			v.add("email", "must be a plain e-mail address such as name@example.com")
		}
	}
}

func validatePermissions(v *ValidationError, perms []string, orgID string) {
	for i, p := range perms {
		switch {
		case !IsPlatformPermission(p) && !slices.Contains(organizationPermissions, p):
			v.add("permissions", "contains unknown permission %q", p)
		case slices.Contains(perms[:i], p):
			v.add("permissions", "lists %q twice", p)
		case orgID == "" && !IsPlatformPermission(p):
			// An organization permission only means something inside an organization.
			v.add("permissions", "may include %q only for a user of an organization", p)
		}
	}
}

// validate checks every rule that needs no database; the password policy and the organization
// are checked by CreateUser.
func (n NewUser) validate(v *ValidationError) {
	if n.OrgID != "" && !isUUID(n.OrgID) {
		v.add("org_id", "must be a UUID")
	}
	validateEmail(v, n.Email)
	validateName(v, n.Name)
	validatePermissions(v, n.Permissions, n.OrgID)
}

// CreateUser creates a user, with a password when n.Password is set. A *ValidationError lists
// every broken rule, the organization's included (it must exist and be active); an e-mail that
// normalises like another user's fails with ErrExists.
func (s *Service) CreateUser(ctx context.Context, n NewUser) (User, error) {
	var v ValidationError
	n.validate(&v)
	var password string
	if n.Password != "" {
		password = s.checkPasswordPolicy(&v, n.Password, n.Email)
	}
	orgID := strings.ToLower(n.OrgID)
	var fields map[string]json.RawMessage
	if isID(orgID) {
		if err := s.requireActiveOrganization(ctx, &v, orgID); err != nil {
			return User{}, fmt.Errorf("create user: %w", err)
		}
		var err error
		if fields, err = s.applyFields(ctx, &v, orgID, nil, n.Fields, true); err != nil {
			return User{}, fmt.Errorf("create user: %w", err)
		}
	} else if len(n.Fields) > 0 {
		v.add("fields", "are only for users of an organization")
	}
	if fields == nil {
		fields = map[string]json.RawMessage{}
	}
	if err := v.err(); err != nil {
		return User{}, err
	}

	id, err := uuid.NewV7()
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	now := s.timestamp()
	u := User{
		ID:            id.String(),
		OrgID:         orgID,
		Email:         strings.TrimSpace(n.Email),
		Name:          n.Name,
		Active:        n.Active,
		EmailVerified: n.EmailVerified,
		Permissions:   append([]string{}, n.Permissions...),
		Fields:        fields,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if password != "" {
		if u.PasswordHash, err = s.hashPassword(ctx, password); err != nil {
			return User{}, fmt.Errorf("create user: %w", err)
		}
		u.PasswordChangedAt = now
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	u.PasswordHash = ""
	return u, nil
}

// requireActiveOrganization adds a field error unless id names an active organization. Only a
// store failure is returned.
func (s *Service) requireActiveOrganization(ctx context.Context, v *ValidationError, id string) error {
	o, err := s.store.Organization(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		v.add("org_id", "does not name an existing organization")
	case err != nil:
		return err
	case !o.Active:
		v.add("org_id", "names a deactivated organization")
	}
	return nil
}

// User returns the user with the given ID, or ErrNotFound.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	if u, ok := s.users.get(id); ok {
		return u, nil
	}
	err := ErrNotFound
	var u User
	if isID(id) {
		u, err = s.store.User(ctx, id)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", id, err)
	}
	u.PasswordHash = ""
	s.users.put(id, u)
	return u, nil
}

// UserByEmail returns the user whose e-mail normalises like email, or ErrNotFound.
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := s.userByEmail(ctx, email)
	if err != nil {
		return User{}, fmt.Errorf("user by e-mail: %w", err)
	}
	u.PasswordHash = ""
	return u, nil
}

// userByEmail looks a user up with the hash. An address that could not have been registered is
// not found without asking the store (which may refuse, say, a NUL byte).
func (s *Service) userByEmail(ctx context.Context, email string) (User, error) {
	var v ValidationError
	validateEmail(&v, email)
	if v.err() != nil {
		return User{}, ErrNotFound
	}
	return s.store.UserByEmail(ctx, NormalizeEmail(email))
}

// SetUserActive activates or deactivates a user. A deactivated user cannot log in; ending the
// sessions they have is the caller's part.
func (s *Service) SetUserActive(ctx context.Context, id string, active bool) error {
	return s.updateUser(ctx, "set active", id, func(u User) (User, error) {
		u.Active = active
		return u, nil
	})
}

// ExpirePassword makes the user change their password at the next login (PW-07): Authenticate
// still succeeds, and the caller answers password_change_required instead of issuing tokens.
func (s *Service) ExpirePassword(ctx context.Context, id string) error {
	return s.updateUser(ctx, "expire password", id, func(u User) (User, error) {
		u.PasswordExpired = true
		return u, nil
	})
}

// updateUser runs update on the stored user and moves UpdatedAt.
func (s *Service) updateUser(ctx context.Context, op, id string, update func(User) (User, error)) error {
	defer s.users.forget(id)
	err := ErrNotFound
	if isID(id) {
		_, err = s.store.UpdateUser(ctx, id, func(u User) (User, error) {
			u, err := update(u)
			u.UpdatedAt = s.timestamp()
			return u, err
		})
	}
	if err != nil {
		return fmt.Errorf("%s of user %q: %w", op, id, err)
	}
	return nil
}
