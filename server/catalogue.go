package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/portaria/portaria/assessment"
)

// TestCatalogue is the platform-wide catalogue of psychological tests as the resource API uses
// it; *assessment.Service is one. It decides who may change the catalogue: the handlers only
// pass the caller along.
type TestCatalogue interface {
	CreateTest(ctx context.Context, a assessment.Actor, n assessment.NewTest) (assessment.Test, error)
	Test(ctx context.Context, a assessment.Actor, id string) (assessment.Test, error)
	ListTests(ctx context.Context, a assessment.Actor, p assessment.Page, includeInactive bool) ([]assessment.Test, string, error)
	UpdateTest(ctx context.Context, a assessment.Actor, id string, u assessment.TestUpdate) (assessment.Test, error)
	DeactivateTest(ctx context.Context, a assessment.Actor, id string) error
}

// testBody is the body of POST /api/tests.
type testBody struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Version     string          `json:"version"`
	ScoreSchema json.RawMessage `json:"score_schema"`
}

// testPatchBody is the body of PATCH /api/tests/{test}: an absent field stays as it is.
type testPatchBody struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Version     *string         `json:"version"`
	ScoreSchema json.RawMessage `json:"score_schema"`
}

// createTest is POST /api/tests.
func (a *assessmentAPI) createTest(w http.ResponseWriter, r *http.Request) error {
	actor, err := a.actor(r)
	if err != nil {
		return err
	}
	var body testBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	t, err := a.assess.CreateTest(r.Context(), actor, assessment.NewTest{
		Name: body.Name, Description: body.Description, Version: body.Version, ScoreSchema: body.ScoreSchema,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/tests/"+t.ID)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// listTests is GET /api/tests?include_inactive=&limit=&cursor=, in creation order. Deactivated
// tests are listed only when asked for, and only to those who may change the catalogue.
func (a *assessmentAPI) listTests(w http.ResponseWriter, r *http.Request) error {
	actor, err := a.actor(r)
	if err != nil {
		return err
	}
	inactive := false
	if s := r.URL.Query().Get("include_inactive"); s != "" {
		if inactive, err = strconv.ParseBool(s); err != nil {
			return validation(fieldError{Field: "include_inactive", Message: "must be true or false"})
		}
	}
	page, err := assessmentPage(r)
	if err != nil {
		return err
	}
	list, next, err := a.assess.ListTests(r.Context(), actor, page, inactive)
	if err != nil {
		return err
	}
	listOf(w, list, next)
	return nil
}

// getTest is GET /api/tests/{test}.
func (a *assessmentAPI) getTest(w http.ResponseWriter, r *http.Request) error {
	actor, err := a.actor(r)
	if err != nil {
		return err
	}
	t, err := a.assess.Test(r.Context(), actor, r.PathValue("test"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// updateTest is PATCH /api/tests/{test}. Results already recorded keep their scores.
func (a *assessmentAPI) updateTest(w http.ResponseWriter, r *http.Request) error {
	actor, err := a.actor(r)
	if err != nil {
		return err
	}
	var body testPatchBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	t, err := a.assess.UpdateTest(r.Context(), actor, r.PathValue("test"), assessment.TestUpdate{
		Name: body.Name, Description: body.Description, Version: body.Version, ScoreSchema: body.ScoreSchema,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// deactivateTest is POST /api/tests/{test}/deactivate: no new result may use the test; its
// results stay.
func (a *assessmentAPI) deactivateTest(w http.ResponseWriter, r *http.Request) error {
	actor, err := a.actor(r)
	if err != nil {
		return err
	}
	if err := a.assess.DeactivateTest(r.Context(), actor, r.PathValue("test")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// assessmentPage reads the limit and cursor of a list request, with the limits of SPEC §5.
func assessmentPage(r *http.Request) (assessment.Page, error) {
	p, err := pageOf(r)
	return assessment.Page{Limit: p.Limit, Cursor: p.Cursor}, err
}
