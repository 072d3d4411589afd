package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/mail"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// UserManager administers users for the resource API; *identity.Service is one.
type UserManager interface {
	User(ctx context.Context, id string) (identity.User, error)
	OrganizationUser(ctx context.Context, orgID, id string) (identity.User, error)
	CreateUser(ctx context.Context, n identity.NewUser) (identity.User, error)
	ListUsers(ctx context.Context, f identity.UserFilter, p identity.Page) ([]identity.User, string, error)
	UpdateUser(ctx context.Context, id string, p identity.UserPatch) (identity.User, error)
	SetPermissions(ctx context.Context, id string, perms []string, allow func(before []string) error) ([]string, error)
	DeactivateUser(ctx context.Context, id string) error
	ExpirePassword(ctx context.Context, id string) error
}

// crossOrganization are the permissions that reach users of every organization.
var crossOrganization = []string{identity.PermPlatformAdmin, identity.PermSupport}

var errLastAdmin = newProblem(http.StatusConflict, "last_admin", "The organization must keep an active administrator.")

// listOf writes one page of a list: {"items":[…],"next_cursor":…}, null at the end.
func listOf[T any](w http.ResponseWriter, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	var cursor *string
	if next != "" {
		cursor = &next
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": cursor})
}

// targetUser loads the user of the path ("me" is the caller) and authorizes act on them; the
// target is returned for other actions on the same user. An unknown user and one the caller
// may not see answer the same 404.
func (a *resourceAPI) targetUser(r *http.Request, act action) (tokens.AccessClaims, identity.User, target, error) {
	var t target
	claims, err := a.user(r)
	if err != nil {
		return claims, identity.User{}, t, err
	}
	id := r.PathValue("user")
	if id == "me" {
		id = claims.Subject
	}
	ctx := r.Context()
	var u identity.User
	switch {
	case id == claims.Subject || holdsAny(claims, crossOrganization):
		u, err = a.accounts.User(ctx, id)
	case claims.Org == "":
		err = identity.ErrNotFound
	default:
		// Everyone else reads users of their own organization only, by a query that says so (AC-02).
		u, err = a.accounts.OrganizationUser(ctx, claims.Org, id)
	}
	if errors.Is(err, identity.ErrNotFound) {
		return claims, u, t, errNotFound
	}
	if err != nil {
		return claims, u, t, err
	}
	t = target{org: u.OrgID, active: true, self: u.ID == claims.Subject}
	if u.OrgID != "" {
		o, err := a.accounts.Organization(ctx, u.OrgID)
		if err != nil {
			return claims, u, t, err
		}
		t.active = o.Active
	}
	return claims, u, t, authorize(act, claims, t)
}

type newUserBody struct {
	Email       string                     `json:"email"`
	Name        string                     `json:"name"`
	Permissions []string                   `json:"permissions"`
	Fields      map[string]json.RawMessage `json:"fields"`
}

// createUser is POST /api/organizations/{org}/users: the user is active, has no password yet
// and gets an invitation e-mail with a link to set one (SPEC §4, valid 7 days).
func (a *resourceAPI) createUser(w http.ResponseWriter, r *http.Request) error {
	claims, o, err := a.organization(r, actUserCreate)
	if err != nil {
		return err
	}
	var body newUserBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if err := checkGrant(claims, nil, body.Permissions); err != nil {
		return err
	}
	ctx := r.Context()
	u, err := a.accounts.CreateUser(ctx, identity.NewUser{OrgID: o.ID, Email: body.Email, Name: body.Name,
		Permissions: body.Permissions, Fields: body.Fields, Active: true})
	if err != nil {
		return err
	}
	a.invite(ctx, u, preferredLanguage(r))
	w.Header().Set("Location", "/api/users/"+u.ID)
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// invite sends u the invitation to set a password. The user exists whatever happens here: a
// failure is logged, and the user can still ask for a reset link (POST /api/auth/password/forgot).
func (a *resourceAPI) invite(ctx context.Context, u identity.User, lang string) {
	tok, err := a.oneTime.Issue(ctx, tokens.OneTime{Purpose: purposeInvite, Subject: u.ID}, inviteTTL)
	if err == nil {
		link := a.issuerURL + "/reset-password#" + url.Values{"token": {tok}, "email": {u.Email}}.Encode()
		err = a.mail.Deliver(mail.Invitation, lang, mail.Data{To: u.Email, Name: u.Name, Link: link, Code: tok, ExpiresIn: inviteTTL})
	}
	if err != nil {
		a.log.ErrorContext(ctx, "invitation not sent", "user", u.ID, "err", err, "request_id", requestID(ctx))
	}
}

// listOrganizationUsers is GET /api/organizations/{org}/users.
func (a *resourceAPI) listOrganizationUsers(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actUserList)
	if err != nil {
		return err
	}
	f, err := userFilterOf(r.URL.Query())
	if err != nil {
		return err
	}
	f.OrgID = o.ID
	return a.listUsersWith(w, r, f)
}

// listUsers is GET /api/users: every organization's users, for platform staff.
func (a *resourceAPI) listUsers(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	if err := authorize(actUserSearch, claims, target{}); err != nil {
		return err
	}
	q := r.URL.Query()
	f, err := userFilterOf(q)
	if err != nil {
		return err
	}
	f.OrgID = strings.ToLower(q.Get("org"))
	return a.listUsersWith(w, r, f)
}

func (a *resourceAPI) listUsersWith(w http.ResponseWriter, r *http.Request, f identity.UserFilter) error {
	return writePage(w, r, func(p identity.Page) ([]identity.User, string, error) {
		return a.accounts.ListUsers(r.Context(), f, p)
	})
}

// userFilterOf reads the filters of a user list: q, active, permission and field.<id>.
func userFilterOf(q url.Values) (identity.UserFilter, error) {
	f := identity.UserFilter{Query: q.Get("q"), Permission: q.Get("permission")}
	if s := q.Get("active"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return f, validation(fieldError{Field: "active", Message: "must be true or false"})
		}
		f.Active = &b
	}
	for k, v := range q {
		if id, ok := strings.CutPrefix(k, "field."); ok {
			if f.Fields == nil {
				f.Fields = map[string]string{}
			}
			f.Fields[id] = v[0]
		}
	}
	return f, nil
}

// getUser is GET /api/users/{user} and /api/users/me.
func (a *resourceAPI) getUser(w http.ResponseWriter, r *http.Request) error {
	_, u, _, err := a.targetUser(r, actUserRead)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// userPatchBody is the only shape PATCH /api/users/{user} binds: permissions, organization,
// activity and password state have endpoints of their own (AC-03).
type userPatchBody struct {
	Name   *string                    `json:"name"`
	Email  *string                    `json:"email"`
	Fields map[string]json.RawMessage `json:"fields"`
}

// updateUser is PATCH /api/users/{user}: an administrator changes name, e-mail and field
// values; a user may change their own name.
func (a *resourceAPI) updateUser(w http.ResponseWriter, r *http.Request) error {
	claims, u, t, err := a.targetUser(r, actUserRead)
	if err != nil {
		return err
	}
	var body userPatchBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	act := actUserUpdate
	if body.Email == nil && body.Fields == nil {
		act = actUserRename
	}
	if err := authorizeMore(act, claims, t); err != nil {
		return err
	}
	u, err = a.accounts.UpdateUser(r.Context(), u.ID, identity.UserPatch{Name: body.Name, Email: body.Email, Fields: body.Fields})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

type permissionsBody struct {
	Permissions *[]string `json:"permissions"`
}

// setPermissions is PUT /api/users/{user}/permissions. Nobody changes their own permissions,
// grants or takes away a permission they do not hold, or removes the last active org:admin of
// an organization; only platform:admin changes platform permissions (SPEC §5, AC-04).
func (a *resourceAPI) setPermissions(w http.ResponseWriter, r *http.Request) error {
	claims, u, t, err := a.targetUser(r, actUserRead)
	if err != nil {
		return err
	}
	if t.self {
		return errForbidden
	}
	if claims, err = a.liveCaller(r.Context(), claims); err != nil {
		return err
	}
	if err := authorizeMore(actUserPermissions, claims, t); err != nil {
		return err
	}
	var body permissionsBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	if body.Permissions == nil {
		return validation(fieldError{Field: "permissions", Message: "must be a list of permissions"})
	}
	ctx := r.Context()
	after := *body.Permissions
	before, err := a.accounts.SetPermissions(ctx, u.ID, after, func(before []string) error { return checkGrant(claims, before, after) })
	err = userChangeProblem(err)
	e := byCaller(claims, audit.PermissionsChanged, err, u.ID, map[string]string{"after": strings.Join(after, " ")})
	if err == nil {
		e.Details["before"] = strings.Join(before, " ")
	}
	e.OrgID = u.OrgID
	a.security(r, e)
	if err != nil {
		return err
	}
	// New permissions reach the token at the next refresh; the sessions stay.
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// liveCaller re-reads the calling user for the actions that change who may do what (AC-05):
// permission changes, deactivation and password expiry are judged on the caller's permissions
// as they are now, not as a token issued up to its lifetime ago recorded them. A caller since
// deactivated, deleted or moved to another organization is refused. Other routes trust the
// token's claims, which a refresh renews.
func (a *resourceAPI) liveCaller(ctx context.Context, claims tokens.AccessClaims) (tokens.AccessClaims, error) {
	u, err := a.accounts.User(ctx, claims.Subject)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return claims, errForbidden
	case err != nil:
		return claims, err
	case !u.Active || u.OrgID != claims.Org:
		return claims, errForbidden
	}
	claims.Perms = u.Permissions
	return claims, nil
}

// onUser is the security event of a successful change of u by the caller.
func (a *resourceAPI) onUser(claims tokens.AccessClaims, typ string, u identity.User) audit.Event {
	e := byCaller(claims, typ, nil, u.ID, nil)
	e.OrgID = u.OrgID
	return e
}

func userChangeProblem(err error) error {
	if errors.Is(err, identity.ErrLastAdmin) {
		return errLastAdmin
	}
	return err
}

// expirePassword is POST /api/users/{user}/password/expire: forces a password change at the next
// login and ends the user's sessions (PW-07).
func (a *resourceAPI) expirePassword(w http.ResponseWriter, r *http.Request) error {
	claims, u, t, err := a.targetUser(r, actUserRead)
	if err != nil {
		return err
	}
	if claims, err = a.liveCaller(r.Context(), claims); err != nil {
		return err
	}
	if err := authorizeMore(actUserExpire, claims, t); err != nil {
		return err
	}
	ctx := r.Context()
	if err := a.accounts.ExpirePassword(ctx, u.ID); err != nil {
		return err
	}
	if err := a.sessions.RevokeUser(ctx, u.ID); err != nil {
		return err
	}
	a.security(r, a.onUser(claims, audit.PasswordExpired, u))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deactivateUser is POST /api/users/{user}/deactivate: the user can no longer log in or refresh,
// and their sessions end. Nobody deactivates themself, and an organization keeps an active
// administrator.
func (a *resourceAPI) deactivateUser(w http.ResponseWriter, r *http.Request) error {
	claims, u, t, err := a.targetUser(r, actUserRead)
	if err != nil {
		return err
	}
	if t.self {
		return errForbidden
	}
	if claims, err = a.liveCaller(r.Context(), claims); err != nil {
		return err
	}
	if err := authorizeMore(actUserDeactivate, claims, t); err != nil {
		return err
	}
	ctx := r.Context()
	if err := a.accounts.DeactivateUser(ctx, u.ID); err != nil {
		return userChangeProblem(err)
	}
	if err := a.sessions.RevokeUser(ctx, u.ID); err != nil {
		return err
	}
	a.security(r, a.onUser(claims, audit.UserDeactivated, u))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
