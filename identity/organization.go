package identity

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"
)

// CreateOrganization creates an active organization.
func (s *Service) CreateOrganization(ctx context.Context, name string) (Organization, error) {
	var v ValidationError
	validateName(&v, name)
	if err := v.err(); err != nil {
		return Organization{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Organization{}, fmt.Errorf("create organization: %w", err)
	}
	now := s.timestamp()
	o := Organization{ID: id.String(), Name: name, Active: true, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateOrganization(ctx, o); err != nil {
		return Organization{}, fmt.Errorf("create organization: %w", err)
	}
	return o, nil
}

// Organization returns the organization with the given ID, active or not, or ErrNotFound.
func (s *Service) Organization(ctx context.Context, id string) (Organization, error) {
	if o, ok := s.orgs.get(id); ok {
		return o, nil
	}
	err := ErrNotFound
	var o Organization
	if isID(id) {
		o, err = s.store.Organization(ctx, id)
	}
	if err != nil {
		return Organization{}, fmt.Errorf("organization %q: %w", id, err)
	}
	s.orgs.put(id, o)
	return o, nil
}

// SetOrganizationActive activates or deactivates an organization. The users of a deactivated
// organization cannot log in, and no user can be added to it.
func (s *Service) SetOrganizationActive(ctx context.Context, id string, active bool) error {
	defer s.orgs.forget(id)
	err := ErrNotFound
	if isID(id) {
		_, err = s.store.UpdateOrganization(ctx, id, func(o Organization) (Organization, error) {
			o.Active = active
			o.UpdatedAt = s.timestamp()
			return o, nil
		})
	}
	if err != nil {
		return fmt.Errorf("set active of organization %q: %w", id, err)
	}
	return nil
}

// Page limits of lists (SPEC §5).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// Page asks for one page of a list: at most Limit items (DefaultPageLimit when 0) after the
// opaque Cursor of the previous page ("" for the first).
type Page struct {
	Limit  int
	Cursor string
}

// encodeCursor makes the opaque cursor that continues a list after the record with this ID.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// decodeCursor returns the ID a cursor continues after, adding a field error if it is not one
// this package made.
func decodeCursor(v *ValidationError, cursor string) string {
	if cursor == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || !isID(string(b)) {
		v.add("cursor", "is not a cursor of this list")
		return ""
	}
	return string(b)
}

// checkPage validates p and returns the ID to continue after and the page size.
func checkPage(p Page) (string, int, error) {
	var v ValidationError
	limit := p.Limit
	switch {
	case limit == 0:
		limit = DefaultPageLimit
	case limit < 1 || limit > MaxPageLimit:
		v.add("limit", "must be between 1 and %d", MaxPageLimit)
	}
	after := decodeCursor(&v, p.Cursor)
	return after, limit, v.err()
}

// ListOrganizations returns one page of organizations, active or not, in creation order, and
// the cursor of the next page ("" after the last).
func (s *Service) ListOrganizations(ctx context.Context, p Page) ([]Organization, string, error) {
	return listPage("organizations", p, func(o Organization) string { return o.ID }, func(after string, limit int) ([]Organization, error) {
		return s.store.Organizations(ctx, after, limit)
	})
}

// RenameOrganization changes an organization's name and returns the organization.
func (s *Service) RenameOrganization(ctx context.Context, id, name string) (Organization, error) {
	var v ValidationError
	validateName(&v, name)
	if err := v.err(); err != nil {
		return Organization{}, err
	}
	defer s.orgs.forget(id)
	err := ErrNotFound
	var o Organization
	if isID(id) {
		o, err = s.store.UpdateOrganization(ctx, id, func(o Organization) (Organization, error) {
			o.Name = name
			o.UpdatedAt = s.timestamp()
			return o, nil
		})
	}
	if err != nil {
		return Organization{}, fmt.Errorf("rename organization %q: %w", id, err)
	}
	return o, nil
}

// OrganizationUserIDs returns the ids of an organization's users: deactivating the organization
// ends their sessions.
func (s *Service) OrganizationUserIDs(ctx context.Context, orgID string) ([]string, error) {
	if !isID(orgID) {
		return nil, fmt.Errorf("users of organization %q: %w", orgID, ErrNotFound)
	}
	ids, err := s.store.UserIDsInOrganization(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("users of organization %q: %w", orgID, err)
	}
	return ids, nil
}
