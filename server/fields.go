package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/portaria/portaria/identity"
)

// FieldManager changes an organization's custom fields; *identity.Service is one.
type FieldManager interface {
	CreateField(ctx context.Context, orgID string, n identity.NewField) (identity.Field, error)
	Field(ctx context.Context, orgID, id string) (identity.Field, error)
	ListFields(ctx context.Context, orgID string, p identity.Page) ([]identity.Field, string, error)
	UpdateField(ctx context.Context, orgID, id string, p identity.FieldPatch) (identity.Field, error)
	DeleteField(ctx context.Context, orgID, id string) error
}

type newFieldBody struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Required bool     `json:"required"`
	Options  []string `json:"options"`
}

type fieldPatchBody struct {
	Name     *string   `json:"name"`
	Required *bool     `json:"required"`
	Options  *[]string `json:"options"`
}

// createField is POST /api/organizations/{org}/fields.
func (a *resourceAPI) createField(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actFieldCreate)
	if err != nil {
		return err
	}
	var body newFieldBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	f, err := a.accounts.CreateField(r.Context(), o.ID, identity.NewField(body))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/organizations/"+o.ID+"/fields/"+f.ID)
	writeJSON(w, http.StatusCreated, f)
	return nil
}

// listFields is GET /api/organizations/{org}/fields.
func (a *resourceAPI) listFields(w http.ResponseWriter, r *http.Request) error {
	_, o, err := a.organization(r, actFieldList)
	if err != nil {
		return err
	}
	return writePage(w, r, func(p identity.Page) ([]identity.Field, string, error) {
		return a.accounts.ListFields(r.Context(), o.ID, p)
	})
}

// field loads the field of the path, within the organization of the path, after authorizing act
// there: another organization's field is 404 like an unknown one.
func (a *resourceAPI) field(r *http.Request, act action) (identity.Field, error) {
	_, o, err := a.organization(r, act)
	if err != nil {
		return identity.Field{}, err
	}
	f, err := a.accounts.Field(r.Context(), o.ID, r.PathValue("field"))
	if errors.Is(err, identity.ErrNotFound) {
		return f, errNotFound
	}
	return f, err
}

// getField is GET /api/organizations/{org}/fields/{field}.
func (a *resourceAPI) getField(w http.ResponseWriter, r *http.Request) error {
	f, err := a.field(r, actFieldRead)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

// updateField is PATCH /api/organizations/{org}/fields/{field}: name, required, more choices.
func (a *resourceAPI) updateField(w http.ResponseWriter, r *http.Request) error {
	f, err := a.field(r, actFieldUpdate)
	if err != nil {
		return err
	}
	var body fieldPatchBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	f, err = a.accounts.UpdateField(r.Context(), f.OrgID, f.ID, identity.FieldPatch(body))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

// deleteField is DELETE /api/organizations/{org}/fields/{field}: permanent, with every value.
func (a *resourceAPI) deleteField(w http.ResponseWriter, r *http.Request) error {
	f, err := a.field(r, actFieldDelete)
	if err != nil {
		return err
	}
	if err := a.accounts.DeleteField(r.Context(), f.OrgID, f.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
