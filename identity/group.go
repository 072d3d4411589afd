package identity

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxDescriptionLength is the longest description of a group, in code points.
const MaxDescriptionLength = 2000

// Group is a set of users of one organization. Its managers need not be members: they may change
// who is (the API's rule), and the results attached to the group are theirs to see.
type Group struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// GroupRole is how a user is linked to a group.
type GroupRole string

const (
	RoleMember  GroupRole = "member"
	RoleManager GroupRole = "manager"
)

// GroupUser is a user as a group lists them.
type GroupUser struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Roster is everyone linked to a group, each list ordered by user ID.
type Roster struct {
	Members  []GroupUser
	Managers []GroupUser
}

// GroupInput is what creating a group takes; in an update, nil fields stay as they are.
type GroupInput struct {
	Name        *string
	Description *string
}

// GroupStore persists groups and the links of users to them. Every method but Group (which
// returns the group's organization for the caller to check) matches only the groups and users of
// the organization it is given, so that no caller can reach across tenants by passing another
// organization's IDs; soft-deleted groups and users are never matched.
type GroupStore interface {
	// CreateGroup stores a new group. It fails with ErrExists if the ID is taken and with a
	// *ValidationError on "org_id" if OrgID names no organization.
	CreateGroup(ctx context.Context, g Group) error
	// Group returns the live group with the given ID, whatever its organization (the caller
	// checks OrgID), or ErrNotFound.
	Group(ctx context.Context, id string) (Group, error)
	// UpdateGroup is the read-modify-write of one live group of the organization, atomic like
	// UpdateClient. Only Name, Description and UpdatedAt change.
	UpdateGroup(ctx context.Context, orgID, id string, update func(Group) (Group, error)) (Group, error)
	// DeleteGroup soft-deletes a live group of the organization, or fails with ErrNotFound. Its
	// links stay stored, unreachable.
	DeleteGroup(ctx context.Context, orgID, id string, at time.Time) error
	// Groups returns at most limit live groups of the organization whose ID is greater than
	// after, ordered by ID.
	Groups(ctx context.Context, orgID, after string, limit int) ([]Group, error)
	// AddGroupUser links the user to the group in the role, in one transaction that finds both in
	// the organization; linking twice is not an error. It fails with ErrNotFound unless the group
	// is live and the user active and not deleted.
	AddGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole, at time.Time) error
	// RemoveGroupUser unlinks the user, if linked. It fails with ErrNotFound unless the group is
	// live and the user not deleted.
	RemoveGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole) error
	// GroupUsers returns at most limit users linked to the group in the role whose ID is greater
	// than after, ordered by ID.
	GroupUsers(ctx context.Context, orgID, groupID string, role GroupRole, after string, limit int) ([]GroupUser, error)
	// HasGroupUser reports whether the user is linked to the live group in the role.
	HasGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole) (bool, error)
	// UserGroups returns at most limit live groups the user is linked to in the role, whose ID is
	// greater than after, ordered by ID.
	UserGroups(ctx context.Context, orgID, userID string, role GroupRole, after string, limit int) ([]Group, error)
}

func validateDescription(v *ValidationError, d string) {
	switch {
	case !utf8.ValidString(d):
		v.add("description", "must be valid UTF-8")
	case utf8.RuneCountInString(d) > MaxDescriptionLength:
		v.add("description", "must be at most %d characters", MaxDescriptionLength)
	case strings.ContainsFunc(d, unsafeRune):
		v.add("description", "must not contain control or bidirectional formatting characters")
	}
}

// validate checks the fields that are set; create requires the name.
func (in GroupInput) validate(v *ValidationError, create bool) {
	switch {
	case in.Name != nil:
		validateName(v, *in.Name)
	case create:
		v.add("name", "is required")
	}
	if in.Description != nil {
		validateDescription(v, *in.Description)
	}
}

func (in GroupInput) apply(g Group) Group {
	if in.Name != nil {
		g.Name = *in.Name
	}
	if in.Description != nil {
		g.Description = *in.Description
	}
	return g
}

// CreateGroup creates a group in an active organization; an unknown organization is ErrNotFound.
func (s *Service) CreateGroup(ctx context.Context, orgID string, in GroupInput) (Group, error) {
	var v ValidationError
	in.validate(&v, true)
	// The organization is the path of the request, not a field: an unknown one is not found.
	o, err := s.Organization(ctx, orgID)
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	if !o.Active {
		v.add("org_id", "names a deactivated organization")
	}
	if err := v.err(); err != nil {
		return Group{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	now := s.timestamp()
	g := in.apply(Group{ID: id.String(), OrgID: orgID, CreatedAt: now, UpdatedAt: now})
	if err := s.store.CreateGroup(ctx, g); err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// Group returns the live group with the given ID, or ErrNotFound. The caller decides from its
// OrgID whether the asker may see it.
func (s *Service) Group(ctx context.Context, id string) (Group, error) {
	err := ErrNotFound
	var g Group
	if isID(id) {
		g, err = s.store.Group(ctx, id)
	}
	if err != nil {
		return Group{}, fmt.Errorf("group %q: %w", id, err)
	}
	return g, nil
}

// UpdateGroup changes the fields of in that are set and returns the group.
func (s *Service) UpdateGroup(ctx context.Context, orgID, id string, in GroupInput) (Group, error) {
	var v ValidationError
	in.validate(&v, false)
	if err := v.err(); err != nil {
		return Group{}, err
	}
	err := ErrNotFound
	var g Group
	if isID(orgID) && isID(id) {
		g, err = s.store.UpdateGroup(ctx, orgID, id, func(g Group) (Group, error) {
			g = in.apply(g)
			g.UpdatedAt = s.timestamp()
			return g, nil
		})
	}
	if err != nil {
		return Group{}, fmt.Errorf("update group %q: %w", id, err)
	}
	return g, nil
}

// DeleteGroup soft-deletes a group: it disappears from reads and lists, and its links stay in
// the database.
func (s *Service) DeleteGroup(ctx context.Context, orgID, id string) error {
	err := ErrNotFound
	if isID(orgID) && isID(id) {
		err = s.store.DeleteGroup(ctx, orgID, id, s.timestamp())
	}
	if err != nil {
		return fmt.Errorf("delete group %q: %w", id, err)
	}
	return nil
}

// ListGroups returns one page of the organization's groups in creation order.
func (s *Service) ListGroups(ctx context.Context, orgID string, p Page) ([]Group, string, error) {
	return listPage("groups of organization "+orgID, p, groupID, func(after string, limit int) ([]Group, error) {
		if !isID(orgID) {
			return nil, ErrNotFound
		}
		return s.store.Groups(ctx, orgID, after, limit)
	})
}

// GroupUsers returns one page of the users linked to a group in the role, by user ID.
func (s *Service) GroupUsers(ctx context.Context, orgID, groupID string, role GroupRole, p Page) ([]GroupUser, string, error) {
	return listPage(string(role)+"s of group "+groupID, p, groupUserID, func(after string, limit int) ([]GroupUser, error) {
		if !isID(orgID) || !isID(groupID) {
			return nil, ErrNotFound
		}
		return s.store.GroupUsers(ctx, orgID, groupID, role, after, limit)
	})
}

// UserGroups returns one page of the live groups the user is linked to in the role.
func (s *Service) UserGroups(ctx context.Context, orgID, userID string, role GroupRole, p Page) ([]Group, string, error) {
	return listPage("groups of user "+userID, p, groupID, func(after string, limit int) ([]Group, error) {
		if !isID(orgID) || !isID(userID) {
			return []Group{}, nil // platform staff belong to no group
		}
		return s.store.UserGroups(ctx, orgID, userID, role, after, limit)
	})
}

// GroupRoster returns every member and manager of a group.
func (s *Service) GroupRoster(ctx context.Context, orgID, groupID string) (Roster, error) {
	var r Roster
	var err error
	if r.Members, err = s.allGroupUsers(ctx, orgID, groupID, RoleMember); err != nil {
		return Roster{}, err
	}
	if r.Managers, err = s.allGroupUsers(ctx, orgID, groupID, RoleManager); err != nil {
		return Roster{}, err
	}
	return r, nil
}

// allGroupUsers walks the pages of GroupUsers: the store never reads an unbounded result at once.
func (s *Service) allGroupUsers(ctx context.Context, orgID, groupID string, role GroupRole) ([]GroupUser, error) {
	all := []GroupUser{}
	p := Page{Limit: MaxPageLimit}
	for {
		page, next, err := s.GroupUsers(ctx, orgID, groupID, role, p)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		p.Cursor = next
	}
}

// HasGroupUser reports whether the user is linked to the group in the role.
func (s *Service) HasGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole) (bool, error) {
	if !isID(orgID) || !isID(groupID) || !isID(userID) {
		return false, nil
	}
	ok, err := s.store.HasGroupUser(ctx, orgID, groupID, userID, role)
	if err != nil {
		return false, fmt.Errorf("%s %q of group %q: %w", role, userID, groupID, err)
	}
	return ok, nil
}

// AddGroupUser links a user of the group's organization to it in the role; linking twice is
// not an error. A user of another organization, or none, is ErrNotFound, as is a deleted group;
// a deactivated user is a *ValidationError on "user".
func (s *Service) AddGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole) error {
	err := ErrNotFound
	if isID(orgID) && isID(groupID) {
		err = s.requireActiveUser(ctx, orgID, userID)
	}
	if err == nil {
		// The store checks both again, in its transaction: either may change meanwhile.
		err = s.store.AddGroupUser(ctx, orgID, groupID, userID, role, s.timestamp())
	}
	if err != nil {
		return fmt.Errorf("add %s %q to group %q: %w", role, userID, groupID, err)
	}
	return nil
}

// RemoveGroupUser unlinks a user of the group's organization from it; unlinking twice is not an
// error.
func (s *Service) RemoveGroupUser(ctx context.Context, orgID, groupID, userID string, role GroupRole) error {
	err := ErrNotFound
	if isID(orgID) && isID(groupID) && isID(userID) {
		err = s.store.RemoveGroupUser(ctx, orgID, groupID, userID, role)
	}
	if err != nil {
		return fmt.Errorf("remove %s %q from group %q: %w", role, userID, groupID, err)
	}
	return nil
}

// requireActiveUser fails with ErrNotFound unless userID names a user of the organization, so
// that another organization's users stay invisible, and with a *ValidationError if that user
// is deactivated.
func (s *Service) requireActiveUser(ctx context.Context, orgID, userID string) error {
	u, err := s.User(ctx, userID)
	switch {
	case err != nil:
		return err
	case u.OrgID != orgID:
		return ErrNotFound
	case !u.Active:
		var v ValidationError
		v.add("user", "names a deactivated user")
		return v.err()
	}
	return nil
}

func groupID(g Group) string         { return g.ID }
func groupUserID(u GroupUser) string { return u.ID }

// listPage lists what: it validates p, reads one more item than asked (which says whether another page
// follows, without a count) and returns the page and the cursor of the next one ("" after the
// last). An empty page is an empty slice, never nil.
func listPage[T any](what string, p Page, id func(T) string, read func(after string, limit int) ([]T, error)) ([]T, string, error) {
	after, limit, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	list, err := read(after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = encodeCursor(id(list[limit-1]))
	}
	if list == nil {
		list = []T{}
	}
	return list, next, nil
}
