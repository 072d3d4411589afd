package assessment

import (
	"context"
	"slices"
	"time"
)

// This file is the whole of who may see and change what in this package (SPEC §5, issue 6).
// The Service asks these functions and nothing else; docs/assessment.md has the same rules as a
// table.

// Permissions this package looks at: the strings of SPEC §5, the same the identity package grants.
const (
	PermPlatformAdmin = "platform:admin"
	PermTestsWrite    = "tests:write"
	PermResultsRead   = "results:read"
	PermResultsWrite  = "results:write"
)

// Actor is who asks: the authenticated user, their organization ("" for platform staff) and
// their permissions, as the access token carries them. Every Service method takes one as an
// argument, so that the domain never reads them from a request context.
type Actor struct {
	UserID string
	OrgID  string
	Perms  []string
}

func (a Actor) has(perm string) bool { return slices.Contains(a.Perms, perm) }

func (a Actor) isAdmin() bool { return a.has(PermPlatformAdmin) }

// inOrg reports whether the actor belongs to the organization: organization-level permissions
// count only there.
func (a Actor) inOrg(orgID string) bool { return a.OrgID != "" && a.OrgID == orgID }

// Access is what this package needs to know about users and groups, which the identity domain
// owns. *identity.Service satisfies it; tests fake it.
type Access interface {
	// ManagesGroup reports whether the user manages the group, both in the organization.
	ManagesGroup(ctx context.Context, orgID, groupID, userID string) (bool, error)
	// IsMember reports whether the user is a member of the group, both in the organization.
	IsMember(ctx context.Context, orgID, groupID, userID string) (bool, error)
	// UserInOrganization reports whether the user exists, is active and belongs to the organization.
	UserInOrganization(ctx context.Context, orgID, userID string) (bool, error)
}

// rights are what an actor may do with one result.
type rights struct {
	read    bool // see the result, scores included
	answers bool // see the raw answers too
	write   bool // change, delete or set the feedback date of the result
}

// decide is the visibility rule of one result. manages says whether the actor manages the group
// the result is attached to (ignored for a result without a group). It fails with ErrNotFound
// for another organization's result, so that its existence never shows, and with ErrForbidden
// when the actor may not even read it.
//
//   - platform:admin may do everything, in every organization;
//   - in the result's organization, results:write may read and write, results:read may read,
//     both with the raw answers;
//   - a manager of the result's group may read it, without the answers, never write;
//   - the evaluated user may read it, without the answers, from its feedback date on.
//
// Nothing else grants anything: support, org:admin and the other permissions see no results.
func decide(a Actor, r Result, manages bool, now time.Time) (rights, error) {
	switch {
	case a.isAdmin():
		return rights{read: true, answers: true, write: true}, nil
	case !a.inOrg(r.OrgID):
		return rights{}, ErrNotFound
	case a.has(PermResultsWrite):
		return rights{read: true, answers: true, write: true}, nil
	case a.has(PermResultsRead):
		return rights{read: true, answers: true}, nil
	case manages && r.GroupID != "":
		return rights{read: true}, nil
	case a.UserID != "" && a.UserID == r.UserID && released(r, now):
		return rights{read: true}, nil
	}
	return rights{}, ErrForbidden
}

// released reports whether the evaluated user may read the result at now: its feedback date is
// set and has come (the very instant counts).
func released(r Result, now time.Time) bool {
	return !r.FeedbackAt.IsZero() && !now.Before(r.FeedbackAt)
}

// mayWrite is decide for a change: managers and the evaluated user never write, so whether the
// actor manages the group does not matter.
func mayWrite(a Actor, r Result, now time.Time) error {
	rt, err := decide(a, r, false, now)
	if err != nil {
		return err
	}
	if !rt.write {
		return ErrForbidden
	}
	return nil
}

// view is the result as an actor with these rights sees it.
func (r Result) view(rt rights) Result {
	if !rt.answers {
		r.Answers = nil
	}
	return r
}

// listScope says which of an organization's results an actor may list, by user (self reports
// whether the actor is that user) or by group (manages reports whether the actor manages it):
// all of them, or only those released to the evaluated user (releasedOnly). Each listed result
// still goes through decide, which strips the answers where they must not show.
func listScope(a Actor, orgID string, self, manages bool) (releasedOnly bool, err error) {
	switch {
	case a.isAdmin():
		return false, nil
	case !a.inOrg(orgID):
		return false, ErrNotFound
	case a.has(PermResultsRead), a.has(PermResultsWrite), manages:
		return false, nil
	case self:
		return true, nil
	}
	return false, ErrForbidden
}

// mayWriteTests says whether the actor may change the platform-wide catalogue.
func mayWriteTests(a Actor) bool { return a.isAdmin() || a.has(PermTestsWrite) }

// maySeeTest says whether the actor may read a test: everyone reads active tests; a deactivated
// one stays visible to those who may change the catalogue and is not found for everyone else.
func maySeeTest(a Actor, t Test) bool { return t.Active || mayWriteTests(a) }
