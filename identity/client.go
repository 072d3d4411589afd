package identity

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Grant types a client can be registered for.
const (
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	// GrantMFA completes a password login for a user with 2FA (SPEC §3).
	GrantMFA = "urn:portaria:grant-type:mfa"
)

// Limits of a client's own token lifetimes.
const (
	MaxAccessTTL  = 24 * time.Hour
	MaxRefreshTTL = 8760 * time.Hour
)

// userInfoScopes may always be requested by a client holding the password grant (SPEC §3).
var userInfoScopes = []string{"openid", "profile", "email"}

// Client is a registered OAuth client.
type Client struct {
	ID     string   `json:"client_id"`
	Name   string   `json:"name"`
	Public bool     `json:"public"` // no secret; authenticates by client_id alone
	Grants []string `json:"grants"`
	Scopes []string `json:"scopes"`
	OrgID  string   `json:"org_id,omitempty"` // "" = not tied to an organization
	// AccessTTL is both the default and the maximum lifetime of the client's access tokens;
	// RefreshTTL the lifetime of its refresh families. 0 means the server's default. In JSON
	// they are Go duration strings ("15m0s"), omitted when 0.
	AccessTTL  time.Duration `json:"-"`
	RefreshTTL time.Duration `json:"-"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
	// SecretHash is HMAC-SHA256(pepper, secret); nil for public clients. Only the Service and
	// the Store see it: clients the Service returns have it cleared.
	SecretHash []byte `json:"-"`
}

// AllowsGrant reports whether the client may use grant type g. Holding the password grant implies
// the MFA grant, which only finishes a password login: without it, users with 2FA could not log in.
func (c Client) AllowsGrant(g string) bool {
	if slices.Contains(c.Grants, g) {
		return true
	}
	return g == GrantMFA && slices.Contains(c.Grants, GrantPassword)
}

// AllowsScopes reports whether the client may request every scope in requested: each must be one
// of its registered scopes, or openid/profile/email when it holds the password grant. Narrowing
// to what the user may have is the caller's job.
func (c Client) AllowsScopes(requested []string) bool {
	password := slices.Contains(c.Grants, GrantPassword)
	for _, s := range requested {
		if !slices.Contains(c.Scopes, s) && !(password && slices.Contains(userInfoScopes, s)) {
			return false
		}
	}
	return true
}

// clientFields has Client's fields without its methods, so that MarshalJSON can reuse them.
type clientFields Client

type clientJSON struct {
	clientFields
	AccessTTL  string `json:"access_ttl,omitempty"`
	RefreshTTL string `json:"refresh_ttl,omitempty"`
}

// MarshalJSON writes TTLs as duration strings and empty lists as [] rather than null. Because
// Client has this method, a struct that embeds Client marshals as the Client alone: to print a
// client with its new secret, marshal a struct that names the Client field instead.
func (c Client) MarshalJSON() ([]byte, error) {
	v := clientJSON{clientFields: clientFields(c)}
	if v.Grants == nil {
		v.Grants = []string{}
	}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if c.AccessTTL != 0 {
		v.AccessTTL = c.AccessTTL.String()
	}
	if c.RefreshTTL != 0 {
		v.RefreshTTL = c.RefreshTTL.String()
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Client) UnmarshalJSON(data []byte) error {
	var v clientJSON
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*c = Client(v.clientFields)
	var err error
	if c.AccessTTL, err = parseTTL(v.AccessTTL); err != nil {
		return fmt.Errorf("access_ttl: %w", err)
	}
	if c.RefreshTTL, err = parseTTL(v.RefreshTTL); err != nil {
		return fmt.Errorf("refresh_ttl: %w", err)
	}
	return nil
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// NewClient is what registering a client takes.
type NewClient struct {
	Name       string
	Grants     []string
	Scopes     []string
	OrgID      string // optional: the organization the client belongs to
	Public     bool
	AccessTTL  time.Duration // 0 = server default
	RefreshTTL time.Duration // 0 = server default
}

// validate checks every rule that needs no database; the store checks that OrgID exists.
func (n NewClient) validate() error {
	var v ValidationError
	validateName(&v, n.Name)
	validateGrants(&v, n.Grants, n.Public)
	validateScopes(&v, n.Scopes)
	validateTTL(&v, "access_ttl", n.AccessTTL, MaxAccessTTL)
	validateTTL(&v, "refresh_ttl", n.RefreshTTL, MaxRefreshTTL)
	if n.OrgID != "" && !isUUID(n.OrgID) {
		v.add("org_id", "must be a UUID")
	}
	return v.err()
}

func validateName(v *ValidationError, name string) {
	switch {
	case !utf8.ValidString(name):
		v.add("name", "must be valid UTF-8")
	case strings.TrimSpace(name) == "":
		v.add("name", "must not be blank")
	case utf8.RuneCountInString(name) > MaxNameLength:
		v.add("name", "must be at most %d characters", MaxNameLength)
	case strings.ContainsFunc(name, unsafeRune):
		v.add("name", "must not contain control or bidirectional formatting characters")
	}
}

func validateGrants(v *ValidationError, grants []string, public bool) {
	if len(grants) == 0 {
		v.add("grants", "must include at least one grant")
	}
	for i, g := range grants {
		switch {
		case !slices.Contains([]string{GrantClientCredentials, GrantPassword, GrantRefreshToken, GrantMFA}, g):
			v.add("grants", "contains unknown grant %q", g)
		case slices.Contains(grants[:i], g):
			v.add("grants", "lists %q twice", g)
		case g == GrantClientCredentials && public:
			// client_credentials authenticates the client itself; without a secret anyone could.
			v.add("grants", "must not include %s for a public client", g)
		}
	}
}

func validateScopes(v *ValidationError, scopes []string) {
	for i, s := range scopes {
		switch {
		case !isScopeToken(s):
			v.add("scopes", "contains invalid scope %q", s)
		case slices.Contains(scopes[:i], s):
			v.add("scopes", "lists %q twice", s)
		}
	}
}

// isScopeToken reports whether s is an RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// validateTTL also requires whole seconds: token lifetimes are counted in seconds (expires_in,
// exp), so a fraction would be silently lost.
func validateTTL(v *ValidationError, field string, d, max time.Duration) {
	switch {
	case d < 0:
		v.add(field, "must not be negative")
	case d > max:
		v.add(field, "must be at most %s", max)
	case d%time.Second != 0:
		v.add(field, "must be a whole number of seconds")
	}
}

// isUUID reports whether s is a UUID in its 36-character form, in either case.
func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// isID reports whether s can be an ID Portaria generated: a canonical (lower-case) UUID. Anything
// else cannot exist, so it need not reach the database (which may refuse, say, a NUL byte).
func isID(s string) bool {
	return isUUID(s) && strings.ToLower(s) == s
}
