package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/portaria/portaria/identity"
)

// GroupManager changes groups and who belongs to them for the resource API; *identity.Service
// is one.
type GroupManager interface {
	CreateGroup(ctx context.Context, orgID string, in identity.GroupInput) (identity.Group, error)
	Group(ctx context.Context, id string) (identity.Group, error)
	ListGroups(ctx context.Context, orgID string, p identity.Page) ([]identity.Group, string, error)
	UpdateGroup(ctx context.Context, orgID, id string, in identity.GroupInput) (identity.Group, error)
	DeleteGroup(ctx context.Context, orgID, id string) error
	GroupRoster(ctx context.Context, orgID, groupID string) (identity.Roster, error)
	GroupUsers(ctx context.Context, orgID, groupID string, role identity.GroupRole, p identity.Page) ([]identity.GroupUser, string, error)
	HasGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole) (bool, error)
	AddGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole) error
	RemoveGroupUser(ctx context.Context, orgID, groupID, userID string, role identity.GroupRole) error
	UserGroups(ctx context.Context, orgID, userID string, role identity.GroupRole, p identity.Page) ([]identity.Group, string, error)
}

// groupBody is the body of POST and PATCH: an absent (or null) field is not set, which PATCH
// leaves as it is; "" clears the description.
type groupBody struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (b groupBody) input() identity.GroupInput {
	return identity.GroupInput{Name: b.Name, Description: b.Description}
}

// userRef is a user as a group's record names them.
type userRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// groupWithRoster is GET /api/groups/{group}: the group, its members and its managers.
type groupWithRoster struct {
	identity.Group
	Members  []userRef `json:"members"`
	Managers []userRef `json:"managers"`
}

func userRefs(users []identity.GroupUser) []userRef {
	refs := make([]userRef, len(users))
	for i, u := range users {
		refs[i] = userRef{ID: u.ID, Name: u.Name}
	}
	return refs
}

// group loads the group of the path and authorizes act on it. An unknown or deleted group and
// one the caller may not see answer the same 404.
func (a *resourceAPI) group(r *http.Request, act action) (identity.Group, error) {
	claims, err := a.user(r)
	if err != nil {
		return identity.Group{}, err
	}
	ctx := r.Context()
	g, err := a.accounts.Group(ctx, r.PathValue("group"))
	if errors.Is(err, identity.ErrNotFound) {
		return g, errNotFound
	}
	if err != nil {
		return g, err
	}
	o, err := a.accounts.Organization(ctx, g.OrgID)
	if err != nil {
		return g, err
	}
	t := target{org: g.OrgID, active: o.Active}
	// Only a user of the group's organization can manage it: nobody else costs a query.
	if claims.Org == g.OrgID {
		if t.managed, err = a.accounts.HasGroupUser(ctx, g.OrgID, g.ID, claims.Subject, identity.RoleManager); err != nil {
			return g, err
		}
	}
	return g, authorize(act, claims, t)
}

// createGroup is POST /api/organizations/{org}/groups.
func (a *resourceAPI) createGroup(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actGroupCreate)
	if err != nil {
		return err
	}
	var body groupBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	g, err := a.accounts.CreateGroup(r.Context(), o.ID, body.input())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/groups/"+g.ID)
	writeJSON(w, http.StatusCreated, g)
	return nil
}

// listGroups is GET /api/organizations/{org}/groups?limit=&cursor=, in creation order.
func (a *resourceAPI) listGroups(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actGroupList)
	if err != nil {
		return err
	}
	return writePage(w, r, func(p identity.Page) ([]identity.Group, string, error) {
		return a.accounts.ListGroups(r.Context(), o.ID, p)
	})
}

// getGroup is GET /api/groups/{group}, with every member and manager.
func (a *resourceAPI) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.group(r, actGroupRead)
	if err != nil {
		return err
	}
	roster, err := a.accounts.GroupRoster(r.Context(), g.OrgID, g.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, groupWithRoster{Group: g, Members: userRefs(roster.Members), Managers: userRefs(roster.Managers)})
	return nil
}

// listGroupMembers is GET /api/groups/{group}/members?limit=&cursor=, by user ID.
func (a *resourceAPI) listGroupMembers(w http.ResponseWriter, r *http.Request) error {
	g, err := a.group(r, actGroupMembers)
	if err != nil {
		return err
	}
	return writePage(w, r, func(p identity.Page) ([]identity.GroupUser, string, error) {
		return a.accounts.GroupUsers(r.Context(), g.OrgID, g.ID, identity.RoleMember, p)
	})
}

// updateGroup is PATCH /api/groups/{group}: name and description.
func (a *resourceAPI) updateGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.group(r, actGroupUpdate)
	if err != nil {
		return err
	}
	var body groupBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	g, err = a.accounts.UpdateGroup(r.Context(), g.OrgID, g.ID, body.input())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

// deleteGroup is DELETE /api/groups/{group}: a soft delete; the memberships stay stored.
func (a *resourceAPI) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.group(r, actGroupDelete)
	if err != nil {
		return err
	}
	if err := a.accounts.DeleteGroup(r.Context(), g.OrgID, g.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// addGroupMember is PUT /api/groups/{group}/members/{user}.
func (a *resourceAPI) addGroupMember(w http.ResponseWriter, r *http.Request) error {
	return a.linkGroupUser(w, r, actGroupAddMember, identity.RoleMember, true)
}

// removeGroupMember is DELETE /api/groups/{group}/members/{user}.
func (a *resourceAPI) removeGroupMember(w http.ResponseWriter, r *http.Request) error {
	return a.linkGroupUser(w, r, actGroupRemoveMember, identity.RoleMember, false)
}

// addGroupManager is PUT /api/groups/{group}/managers/{user}.
func (a *resourceAPI) addGroupManager(w http.ResponseWriter, r *http.Request) error {
	return a.linkGroupUser(w, r, actGroupAddManager, identity.RoleManager, true)
}

// removeGroupManager is DELETE /api/groups/{group}/managers/{user}.
func (a *resourceAPI) removeGroupManager(w http.ResponseWriter, r *http.Request) error {
	return a.linkGroupUser(w, r, actGroupRemoveManager, identity.RoleManager, false)
}

// linkGroupUser links the user of the path to the group of the path in the role (add) or
// unlinks them; both are idempotent. A user outside the group's organization is 404 whoever
// asks, so that its users cannot be probed through someone else's group.
func (a *resourceAPI) linkGroupUser(w http.ResponseWriter, r *http.Request, act action, role identity.GroupRole, add bool) error {
	g, err := a.group(r, act)
	if err != nil {
		return err
	}
	change := a.accounts.RemoveGroupUser
	if add {
		change = a.accounts.AddGroupUser
	}
	if err := change(r.Context(), g.OrgID, g.ID, r.PathValue("user"), role); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listUserGroups is GET /api/users/{user}/groups: the groups the user is a member of, whether
// or not they also manage them.
func (a *resourceAPI) listUserGroups(w http.ResponseWriter, r *http.Request) error {
	return a.userGroups(w, r, actUserGroups, identity.RoleMember)
}

// listManagedGroups is GET /api/users/{user}/managed-groups.
func (a *resourceAPI) listManagedGroups(w http.ResponseWriter, r *http.Request) error {
	return a.userGroups(w, r, actUserManagedGroups, identity.RoleManager)
}

// userGroups writes one page of the user's groups in the role, in creation order.
func (a *resourceAPI) userGroups(w http.ResponseWriter, r *http.Request, act action, role identity.GroupRole) error {
	_, u, _, err := a.targetUser(r, act)
	if err != nil {
		return err
	}
	return writePage(w, r, func(p identity.Page) ([]identity.Group, string, error) {
		return a.accounts.UserGroups(r.Context(), u.OrgID, u.ID, role, p)
	})
}

// writePage answers a list request: it reads the page asked for, lists it and writes it.
func writePage[T any](w http.ResponseWriter, r *http.Request, list func(identity.Page) ([]T, string, error)) error {
	page, err := pageOf(r)
	if err != nil {
		return err
	}
	items, next, err := list(page)
	if err != nil {
		return err
	}
	listOf(w, items, next)
	return nil
}
