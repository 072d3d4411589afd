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
}

// authzRules is the authorization table of the API. An action that is not here is denied.
var authzRules = map[action]rule{
	actOrgCreate:     {},
	actOrgList:       {},
	actOrgRead:       {scoped: true, anyMember: true},
	actOrgRename:     {scoped: true, inOrg: []string{identity.PermOrgAdmin}},
	actOrgDeactivate: {scoped: true},
}

// target is the organization an action is about, as stored.
type target struct {
	org    string
	active bool
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
	if !ok {
		return errForbidden
	}
	if slices.Contains(caller.Perms, identity.PermPlatformAdmin) {
		return nil
	}
	if r.scoped {
		// The tenant comes from the verified token only (AC-02).
		if caller.Org == "" || caller.Org != t.org || !t.active {
			return errNotFound
		}
	}
	if !r.scoped || !(r.anyMember || slices.ContainsFunc(r.inOrg, func(p string) bool { return slices.Contains(caller.Perms, p) })) {
		return errForbidden
	}
	return nil
}
