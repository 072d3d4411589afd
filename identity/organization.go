package identity

import (
	"context"
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
