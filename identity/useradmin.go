package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrLastAdmin: the change would leave an organization without an active org:admin.
var ErrLastAdmin = errors.New("identity: the organization's last administrator cannot be removed")

// MaxQueryLength is the longest search text of a user list, in code points.
const MaxQueryLength = 200

// UserQuery selects users for UserStore.Users. Empty members do not filter.
type UserQuery struct {
	OrgID      string // the organization; "" for every organization
	Query      string // folded text found in the name or the normalised e-mail
	Active     *bool
	Permission string            // users holding this permission
	Fields     map[string]string // field ID → canonical JSON value the user holds
	After      string            // ID to continue after
	Limit      int
}

// UserFilter is what a caller may filter a user list by (SPEC §5).
type UserFilter struct {
	OrgID      string
	Query      string
	Active     *bool
	Permission string
	// Fields filter on custom field values, by field ID, as text ("RH", "12.5", "true",
	// "2026-03-01"); only with OrgID, whose fields they are.
	Fields map[string]string
}

// ListUsers returns one page of users matching f, in creation order, and the cursor of the
// next page ("" after the last). Deleted users are never listed.
func (s *Service) ListUsers(ctx context.Context, f UserFilter, p Page) ([]User, string, error) {
	var v ValidationError
	after, limit, err := checkPage(p)
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return nil, "", err
		}
		v = *ve
	}
	q := UserQuery{OrgID: f.OrgID, Active: f.Active, Permission: f.Permission, After: after, Limit: limit + 1}
	if f.OrgID != "" && !isID(f.OrgID) {
		v.add("org", "must be an organization ID")
	}
	if f.Permission != "" && !IsPlatformPermission(f.Permission) && !slices.Contains(organizationPermissions, f.Permission) {
		v.add("permission", "is not a known permission")
	}
	switch {
	case !utf8.ValidString(f.Query), strings.ContainsFunc(f.Query, unsafeRune):
		v.add("q", "must be text without control or bidirectional formatting characters")
	case utf8.RuneCountInString(f.Query) > MaxQueryLength:
		v.add("q", "must be at most %d characters", MaxQueryLength)
	default:
		q.Query = NormalizeEmail(f.Query)
	}
	if len(f.Fields) > 0 {
		if q.Fields, err = s.fieldFilter(ctx, &v, f.OrgID, f.Fields); err != nil {
			return nil, "", err
		}
	}
	if err := v.err(); err != nil {
		return nil, "", err
	}
	list, err := s.store.Users(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = encodeCursor(list[limit-1].ID)
	}
	for i := range list {
		list[i].PasswordHash = ""
	}
	return list, next, nil
}

// fieldFilter turns field filters into the canonical values the store compares. Numbers and
// booleans are read as JSON, the other types are text.
func (s *Service) fieldFilter(ctx context.Context, v *ValidationError, orgID string, text map[string]string) (map[string]string, error) {
	if orgID == "" {
		v.add("fields", "filter only the users of one organization")
		return nil, nil
	}
	defs, err := s.Fields(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(text))
	for _, id := range slices.Sorted(maps.Keys(text)) {
		i := slices.IndexFunc(defs, func(f Field) bool { return f.ID == id })
		if i < 0 {
			v.add("field."+id, "is not a field of this organization")
			continue
		}
		raw, _ := json.Marshal(text[id])
		if defs[i].Type == FieldNumber || defs[i].Type == FieldBoolean {
			raw = []byte(text[id])
		}
		if c, ok := defs[i].canonical(v, "field."+id, raw); ok {
			out[id] = string(c)
		}
	}
	return out, nil
}

// OrganizationUser returns a user of the organization, or ErrNotFound for anyone else: the query
// itself carries the organization, so a caller scoped to one tenant cannot read another's user
// even if a check above were missed.
func (s *Service) OrganizationUser(ctx context.Context, orgID, id string) (User, error) {
	err := ErrNotFound
	var u User
	if isID(orgID) && isID(id) {
		u, err = s.store.OrganizationUser(ctx, orgID, id)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q of organization %q: %w", id, orgID, err)
	}
	u.PasswordHash = ""
	return u, nil
}

// UserPatch changes a user; nil members stay as they are. Fields changes only the values it
// names (a JSON null removes one).
type UserPatch struct {
	Name   *string
	Email  *string
	Fields map[string]json.RawMessage
}

// UpdateUser applies p to the user and returns the user. A new e-mail must be unused once
// normalised (ErrExists) and is no longer verified.
func (s *Service) UpdateUser(ctx context.Context, id string, p UserPatch) (User, error) {
	defer s.users.forget(id)
	err := ErrNotFound
	var u User
	if isID(id) {
		u, err = s.store.UpdateUser(ctx, id, func(u User) (User, error) {
			var v ValidationError
			if p.Name != nil {
				validateName(&v, *p.Name)
				u.Name = *p.Name
			}
			if p.Email != nil && *p.Email != u.Email {
				validateEmail(&v, *p.Email)
				if NormalizeEmail(*p.Email) != NormalizeEmail(u.Email) {
					u.EmailVerified = false
				}
				u.Email = strings.TrimSpace(*p.Email)
			}
			if len(p.Fields) > 0 && u.OrgID == "" {
				v.add("fields", "are only for users of an organization")
			} else if fields, err := s.applyFields(ctx, &v, u.OrgID, u.Fields, p.Fields, false); err != nil {
				return u, err
			} else {
				u.Fields = fields
			}
			u.UpdatedAt = s.timestamp()
			return u, v.err()
		})
	}
	if err != nil {
		return User{}, fmt.Errorf("update user %q: %w", id, err)
	}
	u.PasswordHash = ""
	return u, nil
}

// SetPermissions replaces the user's permissions and returns those they held before. allow,
// called with the permissions as they are inside the same transaction, is the caller's rule of
// who may grant what (its error aborts the change); this one keeps every organization with an
// active org:admin (ErrLastAdmin).
func (s *Service) SetPermissions(ctx context.Context, id string, perms []string, allow func(before []string) error) ([]string, error) {
	var before []string
	err := s.updateOrganizationUser(ctx, "set permissions", id, func(u User, otherAdmins int) (User, error) {
		var v ValidationError
		validatePermissions(&v, perms, u.OrgID)
		if err := v.err(); err != nil {
			return u, err
		}
		if err := allow(u.Permissions); err != nil {
			return u, err
		}
		before = u.Permissions
		if u.Active && u.OrgID != "" && slices.Contains(u.Permissions, PermOrgAdmin) && !slices.Contains(perms, PermOrgAdmin) && otherAdmins == 0 {
			return u, ErrLastAdmin
		}
		u.Permissions = append([]string{}, perms...)
		return u, nil
	})
	return before, err
}

// DeactivateUser deactivates a user, unless they are their organization's last active
// org:admin (ErrLastAdmin). Ending their sessions is the caller's part.
func (s *Service) DeactivateUser(ctx context.Context, id string) error {
	return s.updateOrganizationUser(ctx, "deactivate", id, func(u User, otherAdmins int) (User, error) {
		if u.Active && u.OrgID != "" && slices.Contains(u.Permissions, PermOrgAdmin) && otherAdmins == 0 {
			return u, ErrLastAdmin
		}
		u.Active = false
		return u, nil
	})
}

func (s *Service) updateOrganizationUser(ctx context.Context, op, id string, update func(User, int) (User, error)) error {
	defer s.users.forget(id)
	err := ErrNotFound
	if isID(id) {
		_, err = s.store.UpdateOrganizationUser(ctx, id, func(u User, otherAdmins int) (User, error) {
			u, err := update(u, otherAdmins)
			u.UpdatedAt = s.timestamp()
			return u, err
		})
	}
	if err != nil {
		return fmt.Errorf("%s of user %q: %w", op, id, err)
	}
	return nil
}
