package server

import (
	"net/http"
	"slices"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/tokens"
)

// action is something a caller asks to do to a resource of the API.
type action string

const (
	actOrgCreate     action = "organization.create"
	actOrgList       action = "organization.list"
	actOrgRead       action = "organization.read"
	actOrgRename     action = "organization.rename"
	actOrgDeactivate action = "organization.deactivate"

	actFieldCreate action = "field.create"
	actFieldList   action = "field.list"
	actFieldRead   action = "field.read"
	actFieldUpdate action = "field.update"
	actFieldDelete action = "field.delete"

	actUserCreate      action = "user.create"
	actUserList        action = "user.list"   // the users of one organization
	actUserSearch      action = "user.search" // users of every organization
	actUserRead        action = "user.read"
	actUserRename      action = "user.rename" // a change of the name alone
	actUserUpdate      action = "user.update" // name, e-mail, custom field values
	actUserPermissions action = "user.permissions"
	actUserExpire      action = "user.expire_password"
	actUserDeactivate  action = "user.deactivate"

	actGroupCreate        action = "group.create"
	actGroupList          action = "group.list" // the groups of one organization
	actGroupRead          action = "group.read" // with its members and managers
	actGroupMembers       action = "group.members"
	actGroupUpdate        action = "group.update"
	actGroupDelete        action = "group.delete"
	actGroupAddMember     action = "group.add_member"
	actGroupRemoveMember  action = "group.remove_member"
	actGroupAddManager    action = "group.add_manager"
	actGroupRemoveManager action = "group.remove_manager"
	actUserGroups         action = "user.groups" // the groups a user is a member of
	actUserManagedGroups  action = "user.managed_groups"

	// The audit log of one organization, and the platform's whole log. Who may see results is
	// the assessment domain's rule, not this table's.
	actAuditRead     action = "audit.read"
	actAuditPlatform action = "audit.read_platform"
)

// rule is who may do an action besides platform:admin, who may do everything (SPEC §5).
type rule struct {
	// scoped actions have a target organization: a caller of another organization gets 404,
	// never the record, and nobody but platform:admin sees a deactivated organization.
	scoped bool
	// inOrg lists the permissions, any of which lets a caller act inside their own organization;
	// anyMember lets every user of the organization act. Neither: platform:admin only.
	inOrg     []string
	anyMember bool
	// anyOrg lists the platform permissions, any of which lets a caller act in every
	// organization (support reads users); for an unscoped action, at all.
	anyOrg []string
	// self lets a user act on their own record; manager lets the managers of the group the
	// resource belongs to act on it.
	self    bool
	manager bool
}

// authzRules is the authorization table of the API. An action that is not here is denied.
var authzRules = map[action]rule{
	actOrgCreate:     {},
	actOrgList:       {},
	actOrgRead:       {scoped: true, anyMember: true},
	actOrgRename:     {scoped: true, inOrg: []string{identity.PermOrgAdmin}},
	actOrgDeactivate: {scoped: true},

	actFieldCreate: {scoped: true, inOrg: orgAdmin},
	actFieldList:   {scoped: true, inOrg: usersReaders, anyOrg: support},
	actFieldRead:   {scoped: true, inOrg: usersReaders, anyOrg: support},
	actFieldUpdate: {scoped: true, inOrg: orgAdmin},
	actFieldDelete: {scoped: true, inOrg: orgAdmin},

	actUserCreate:      {scoped: true, inOrg: usersWriters},
	actUserList:        {scoped: true, inOrg: usersReaders, anyOrg: support},
	actUserSearch:      {anyOrg: support},
	actUserRead:        {scoped: true, inOrg: usersReaders, anyOrg: support, self: true},
	actUserRename:      {scoped: true, inOrg: usersWriters, self: true},
	actUserUpdate:      {scoped: true, inOrg: usersWriters},
	actUserPermissions: {scoped: true, inOrg: orgAdmin},
	actUserExpire:      {scoped: true, inOrg: usersWriters},
	actUserDeactivate:  {scoped: true, inOrg: usersWriters},

	// A group's managers read it and change its members, not its managers; reading includes
	// listing, so groups:read lists the organization's groups.
	actGroupCreate:        {scoped: true, inOrg: groupsWriters},
	actGroupList:          {scoped: true, inOrg: groupsReaders},
	actGroupRead:          {scoped: true, inOrg: groupsReaders, manager: true},
	actGroupMembers:       {scoped: true, inOrg: groupsReaders, manager: true},
	actGroupUpdate:        {scoped: true, inOrg: groupsWriters},
	actGroupDelete:        {scoped: true, inOrg: groupsWriters},
	actGroupAddMember:     {scoped: true, inOrg: groupsWriters, manager: true},
	actGroupRemoveMember:  {scoped: true, inOrg: groupsWriters, manager: true},
	actGroupAddManager:    {scoped: true, inOrg: groupsWriters},
	actGroupRemoveManager: {scoped: true, inOrg: groupsWriters},
	actUserGroups:         {scoped: true, inOrg: groupsReaders, self: true},
	actUserManagedGroups:  {scoped: true, inOrg: groupsReaders, self: true},

	// The audit log tells who read whose results: only administrators read it (AU-03).
	actAuditRead:     {scoped: true, inOrg: orgAdmin},
	actAuditPlatform: {},
}

// Permission sets of the table.
var (
	orgAdmin     = []string{identity.PermOrgAdmin}
	usersReaders = []string{identity.PermOrgAdmin, identity.PermUsersRead, identity.PermUsersWrite}
	usersWriters = []string{identity.PermOrgAdmin, identity.PermUsersWrite}
	support      = []string{identity.PermSupport}

	groupsReaders = []string{identity.PermOrgAdmin, identity.PermGroupsRead, identity.PermGroupsWrite}
	groupsWriters = []string{identity.PermOrgAdmin, identity.PermGroupsWrite}
)

// target is what an action is about, as stored: its organization ("" for platform staff and
// for actions without one) and whether that is active, whether it is the caller's own record,
// whether the caller manages the group it belongs to.
type target struct {
	org     string
	active  bool
	self    bool
	managed bool
}

var (
	errForbidden = newProblem(http.StatusForbidden, "forbidden", "You are not allowed to do this.")
	errNotFound  = newProblem(http.StatusNotFound, "not_found", "The resource does not exist.")
)

// authorize decides whether the caller may do act to a resource of the target organization
// (ignored for actions that have none): nil to allow, a 404 problem where the resource must not
// be revealed, a 403 problem otherwise. It is the one place the API decides.
func authorize(act action, caller tokens.AccessClaims, t target) error {
	r, ok := authzRules[act]
	switch {
	case !ok:
		return errForbidden
	case holdsAny(caller, []string{identity.PermPlatformAdmin}):
		return nil
	case r.self && t.self:
		return nil
	case !r.scoped:
		if holdsAny(caller, r.anyOrg) {
			return nil
		}
		return errForbidden
	case t.org != "" && t.active && holdsAny(caller, r.anyOrg):
		return nil
	// The tenant comes from the verified token only (AC-02).
	case caller.Org == "" || caller.Org != t.org || !t.active:
		return errNotFound
	case r.anyMember || holdsAny(caller, r.inOrg) || (r.manager && t.managed):
		return nil
	}
	return errForbidden
}

// authorizeMore authorizes a further action on a resource the caller was already allowed to
// read: where authorize would hide it (404), the caller is only not allowed (403).
func authorizeMore(act action, caller tokens.AccessClaims, t target) error {
	err := authorize(act, caller, t)
	if err == errNotFound {
		return errForbidden
	}
	return err
}

// holdsAny reports whether the caller holds one of perms.
func holdsAny(caller tokens.AccessClaims, perms []string) bool {
	return slices.ContainsFunc(perms, func(p string) bool { return slices.Contains(caller.Perms, p) })
}

// checkGrant applies the no-escalation rules of SPEC §5 to a change of a user's permissions
// from before to after: every permission added or removed must be one the caller holds, and
// platform permissions change only by platform:admin (AC-04). org:admin, the administrator of
// its organization, counts as holding every organization permission.
func checkGrant(caller tokens.AccessClaims, before, after []string) error {
	if holdsAny(caller, []string{identity.PermPlatformAdmin}) {
		return nil
	}
	for _, p := range symmetricDifference(before, after) {
		switch {
		case identity.IsPlatformPermission(p):
			return errForbidden
		case !holdsAny(caller, []string{p, identity.PermOrgAdmin}):
			return errForbidden
		}
	}
	return nil
}

func symmetricDifference(a, b []string) []string {
	var out []string
	for _, p := range a {
		if !slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			out = append(out, p)
		}
	}
	return out
}
