package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// OrganizationManager changes organizations for the resource API; *identity.Service is one.
type OrganizationManager interface {
	CreateOrganization(ctx context.Context, name string) (identity.Organization, error)
	Organization(ctx context.Context, id string) (identity.Organization, error)
	ListOrganizations(ctx context.Context, p identity.Page) ([]identity.Organization, string, error)
	RenameOrganization(ctx context.Context, id, name string) (identity.Organization, error)
	SetOrganizationActive(ctx context.Context, id string, active bool) error
	OrganizationUserIDs(ctx context.Context, orgID string) ([]string, error)
}

type organizationBody struct {
	Name string `json:"name"`
}

// createOrganization is POST /api/organizations.
func (a *resourceAPI) createOrganization(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	if err := authorize(actOrgCreate, claims, target{}); err != nil {
		return err
	}
	var body organizationBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	o, err := a.accounts.CreateOrganization(r.Context(), body.Name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/organizations/"+o.ID)
	writeJSON(w, http.StatusCreated, o)
	return nil
}

// listOrganizations is GET /api/organizations?limit=&cursor=.
func (a *resourceAPI) listOrganizations(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	if err := authorize(actOrgList, claims, target{}); err != nil {
		return err
	}
	return writePage(w, r, func(p identity.Page) ([]identity.Organization, string, error) {
		return a.accounts.ListOrganizations(r.Context(), p)
	})
}

// pageOf reads the limit and cursor of a list request.
func pageOf(r *http.Request) (identity.Page, error) {
	q := r.URL.Query()
	p := identity.Page{Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > identity.MaxPageLimit {
			return p, validation(fieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", identity.MaxPageLimit)})
		}
		p.Limit = n
	}
	return p, nil
}

// organization loads the organization of the path and authorizes act on it. An unknown
// organization and one the caller may not see answer the same 404.
func (a *resourceAPI) organization(r *http.Request, act action) (tokens.AccessClaims, identity.Organization, error) {
	claims, err := a.user(r)
	if err != nil {
		return claims, identity.Organization{}, err
	}
	o, err := a.accounts.Organization(r.Context(), r.PathValue("org"))
	if errors.Is(err, identity.ErrNotFound) {
		return claims, o, errNotFound
	}
	if err != nil {
		return claims, o, err
	}
	if err := authorize(act, claims, target{org: o.ID, active: o.Active}); err != nil {
		return claims, o, err
	}
	return claims, o, nil
}

// getOrganization is GET /api/organizations/{org}.
func (a *resourceAPI) getOrganization(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actOrgRead)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

// renameOrganization is PATCH /api/organizations/{org}: the name is the only field that changes.
func (a *resourceAPI) renameOrganization(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actOrgRename)
	if err != nil {
		return err
	}
	var body organizationBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	o, err = a.accounts.RenameOrganization(r.Context(), o.ID, body.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

// deactivateOrganization is POST /api/organizations/{org}/deactivate. Its users can no longer
// log in or refresh (the token endpoint checks the organization on both), and their sessions end:
// refresh tokens at once, access tokens at every resource server within seconds.
func (a *resourceAPI) deactivateOrganization(w http.ResponseWriter, r *http.Request) error {
	claims, o, err := a.organization(r, actOrgDeactivate)
	if err != nil {
		return err
	}
	if err := a.accounts.SetOrganizationActive(r.Context(), o.ID, false); err != nil {
		return err
	}
	ids, err := a.accounts.OrganizationUserIDs(r.Context(), o.ID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := a.sessions.RevokeUser(r.Context(), id); err != nil {
			return err
		}
	}
	e := byCaller(claims, audit.OrgDeactivated, nil, o.ID, nil)
	e.OrgID = o.ID
	a.security(r, e)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
