package identity

import (
	"context"
	"errors"
	"fmt"
)

// The three methods below are what the assessment domain asks about users and groups (its
// Access interface). They live here, as thin wrappers, so that assessment never imports
// identity: cmd/portaria asserts that *Service satisfies the interface.

// ManagesGroup reports whether the user manages the group, both in the organization.
func (s *Service) ManagesGroup(ctx context.Context, orgID, groupID, userID string) (bool, error) {
	return s.HasGroupUser(ctx, orgID, groupID, userID, RoleManager)
}

// IsMember reports whether the user is a member of the group, both in the organization.
func (s *Service) IsMember(ctx context.Context, orgID, groupID, userID string) (bool, error) {
	return s.HasGroupUser(ctx, orgID, groupID, userID, RoleMember)
}

// UserInOrganization reports whether the user exists, is active and belongs to the
// organization. An unknown user is false, not an error: the caller turns it into a field error.
func (s *Service) UserInOrganization(ctx context.Context, orgID, userID string) (bool, error) {
	u, err := s.User(ctx, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("user in organization %q: %w", orgID, err)
	}
	return u.Active && orgID != "" && u.OrgID == orgID, nil
}
