package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/tokens"
)

// ResultBook keeps the results of psychological tests for the resource API;
// *assessment.Service is one. It applies who may see and change which result (SPEC §5): the
// handlers pass the caller as an assessment.Actor and translate the answer.
type ResultBook interface {
	CreateResult(ctx context.Context, a assessment.Actor, n assessment.NewResult) (assessment.Result, error)
	Result(ctx context.Context, a assessment.Actor, id string) (assessment.Result, error)
	UpdateResult(ctx context.Context, a assessment.Actor, id string, u assessment.ResultUpdate) (assessment.Result, error)
	DeleteResult(ctx context.Context, a assessment.Actor, id string) error
	SetFeedbackDate(ctx context.Context, a assessment.Actor, id string, at time.Time) error
	SetFeedbackDates(ctx context.Context, a assessment.Actor, ids []string, at time.Time) error
	ListByUser(ctx context.Context, a assessment.Actor, orgID, userID string, p assessment.Page) ([]assessment.Result, string, error)
	ListByGroup(ctx context.Context, a assessment.Actor, orgID, groupID string, p assessment.Page) ([]assessment.Result, string, error)
}

// AssessmentService is the assessment domain as the resource API uses it.
type AssessmentService interface {
	TestCatalogue
	ResultBook
}

// assessmentAPI is the part of the resource API that serves tests, results and the audit log.
// It is the resource API (same authentication, same error writer, same directory) plus the
// assessment service, the audit log and what an audit event needs to know of a request.
type assessmentAPI struct {
	*resourceAPI
	assess AssessmentService
}

func newAssessmentAPI(a *resourceAPI, d Deps) *assessmentAPI {
	return &assessmentAPI{resourceAPI: a, assess: d.Assessment}
}

// actor is the caller as the assessment domain sees it, taken from the verified token only.
func (a *assessmentAPI) actor(r *http.Request) (assessment.Actor, error) {
	claims, err := a.user(r)
	return actorOf(claims), err
}

func actorOf(c tokens.AccessClaims) assessment.Actor {
	return assessment.Actor{UserID: c.Subject, OrgID: c.Org, Perms: c.Perms}
}

// noStore marks every answer of h, errors and 204s included, as never to be cached: results
// are sensitive personal data (DP-01).
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// resultHandler handles a route of one result for a caller authenticated as a user: claims
// are theirs, id is the result's, from the path.
type resultHandler func(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims, id string) error

// oneResult adapts a resultHandler to the routes with {result}.
func (a *assessmentAPI) oneResult(fn resultHandler) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		claims, err := a.user(r)
		if err != nil {
			return err
		}
		return fn(w, r, claims, r.PathValue("result"))
	}
}

// resultBody is the body of POST /api/results.
type resultBody struct {
	UserID    string          `json:"user_id"`
	TestID    string          `json:"test_id"`
	GroupID   string          `json:"group_id"`
	Scores    json.RawMessage `json:"scores"`
	Answers   json.RawMessage `json:"answers"`
	AppliedAt time.Time       `json:"applied_at"`
}

// resultPatchBody is the body of PATCH /api/results/{result}: an absent field stays as it is,
// "answers": null removes the answers. Whose result it is, of which test and group, never changes.
type resultPatchBody struct {
	Scores    json.RawMessage `json:"scores"`
	Answers   json.RawMessage `json:"answers"`
	AppliedAt *time.Time      `json:"applied_at"`
}

// feedbackBody is the body of PUT /api/results/{result}/feedback-date.
type feedbackBody struct {
	FeedbackAt time.Time `json:"feedback_at"`
}

// bulkFeedbackBody is the body of POST /api/results/feedback-date.
type bulkFeedbackBody struct {
	ResultIDs  []string  `json:"result_ids"`
	FeedbackAt time.Time `json:"feedback_at"`
}

// createResult is POST /api/results.
func (a *assessmentAPI) createResult(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	res, err := a.newResult(r, claims)
	if err := a.auditChange(r, err, a.resultEvent(r, claims, audit.ResultCreated, res.ID, res.OrgID)); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/results/"+res.ID)
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (a *assessmentAPI) newResult(r *http.Request, claims tokens.AccessClaims) (assessment.Result, error) {
	var body resultBody
	if err := decodeJSON(r, &body); err != nil {
		return assessment.Result{}, err
	}
	orgID, err := a.recordingOrganization(r.Context(), claims, body.UserID)
	if err != nil {
		return assessment.Result{}, err
	}
	return a.assess.CreateResult(r.Context(), actorOf(claims), assessment.NewResult{
		OrgID: orgID, UserID: body.UserID, TestID: body.TestID, GroupID: body.GroupID,
		Scores: body.Scores, Answers: body.Answers, AppliedAt: body.AppliedAt,
	})
}

// recordingOrganization is the organization a new result is recorded in: for a platform
// administrator, who belongs to none, the evaluated user's; for everyone else "", which the
// assessment service reads as the caller's own (and there checks the user belongs to it).
func (a *assessmentAPI) recordingOrganization(ctx context.Context, claims tokens.AccessClaims, userID string) (string, error) {
	if !holdsAny(claims, []string{identity.PermPlatformAdmin}) {
		return "", nil
	}
	u, err := a.accounts.User(ctx, userID)
	if errors.Is(err, identity.ErrNotFound) || err == nil && u.OrgID == "" {
		return "", validation(fieldError{Field: "user_id", Message: "does not name an active user of the organization"})
	}
	return u.OrgID, err
}

// getResult is GET /api/results/{result}: the result as the caller may see it (group managers
// and the evaluated user get no answers).
func (a *assessmentAPI) getResult(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims, id string) error {
	res, err := a.assess.Result(r.Context(), actorOf(claims), id)
	if err := a.auditRead(r, err, a.resultEvent(r, claims, audit.ResultRead, id, res.OrgID)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// updateResult is PATCH /api/results/{result}: scores, answers, applied_at.
func (a *assessmentAPI) updateResult(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims, id string) error {
	var body resultPatchBody
	var res assessment.Result
	err := decodeJSON(r, &body)
	if err == nil {
		res, err = a.assess.UpdateResult(r.Context(), actorOf(claims), id, assessment.ResultUpdate{
			Scores: body.Scores, Answers: body.Answers, AppliedAt: body.AppliedAt,
		})
	}
	if err := a.auditChange(r, err, a.resultEvent(r, claims, audit.ResultUpdated, id, res.OrgID)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// deleteResult is DELETE /api/results/{result}: the result disappears from reads and lists
// and stays in the database.
func (a *assessmentAPI) deleteResult(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims, id string) error {
	ctx := r.Context()
	org := a.organizationOfResult(ctx, claims, id)
	err := a.assess.DeleteResult(ctx, actorOf(claims), id)
	if err := a.auditChange(r, err, a.resultEvent(r, claims, audit.ResultDeleted, id, org)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setFeedbackDate is PUT /api/results/{result}/feedback-date: from that instant on, the
// evaluated user may read the result.
func (a *assessmentAPI) setFeedbackDate(w http.ResponseWriter, r *http.Request, claims tokens.AccessClaims, id string) error {
	ctx := r.Context()
	org := a.organizationOfResult(ctx, claims, id)
	var body feedbackBody
	err := decodeJSON(r, &body)
	if err == nil {
		err = a.assess.SetFeedbackDate(ctx, actorOf(claims), id, body.FeedbackAt)
	}
	e := a.resultEvent(r, claims, audit.ResultFeedbackSet, id, org)
	e.Details = feedbackDetails(body.FeedbackAt, err)
	if err := a.auditChange(r, err, e); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setFeedbackDates is POST /api/results/feedback-date: the feedback date of several results of
// one organization, all or nothing. One unknown, deleted, foreign or malformed id changes
// nothing and is named in a 422; one the caller may not change makes it a 403.
func (a *assessmentAPI) setFeedbackDates(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var body bulkFeedbackBody
	org := ""
	if err = decodeJSON(r, &body); err == nil {
		if len(body.ResultIDs) > 0 {
			// The service acts in the organization of the first result.
			org = a.organizationOfResult(ctx, claims, body.ResultIDs[0])
		}
		err = a.assess.SetFeedbackDates(ctx, actorOf(claims), body.ResultIDs, body.FeedbackAt)
	}
	subjects, outcome := feedbackSubjects(body.ResultIDs, err)
	events := make([]audit.Event, len(subjects))
	for i, id := range subjects {
		events[i] = a.resultEvent(r, claims, audit.ResultFeedbackSet, id, org)
		events[i].Details = feedbackDetails(body.FeedbackAt, err)
		events[i].Outcome = outcome
	}
	if err := a.auditChange(r, err, events...); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// feedbackDetails are the details of a feedback-date event: the date set, as stored
// (microseconds, UTC), when it was.
func feedbackDetails(at time.Time, err error) map[string]string {
	if err != nil {
		return nil
	}
	return map[string]string{"after": at.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)}
}

// organizationOfResult is the organization a change of the result acts in, for its audit
// event: the caller's own, or, for a platform administrator, the result's, read before the
// change (a deleted result can no longer be read). "" when it cannot be told.
func (a *assessmentAPI) organizationOfResult(ctx context.Context, claims tokens.AccessClaims, id string) string {
	if claims.Org != "" || !holdsAny(claims, []string{identity.PermPlatformAdmin}) {
		return claims.Org
	}
	res, err := a.assess.Result(ctx, actorOf(claims), id)
	if err != nil {
		return ""
	}
	return res.OrgID
}

// listUserResults is GET /api/users/{user}/results (me is the caller).
func (a *assessmentAPI) listUserResults(w http.ResponseWriter, r *http.Request) error {
	return a.listResults(w, r, func(ctx context.Context, claims tokens.AccessClaims) (string, string, error) {
		id := r.PathValue("user")
		if id == "me" {
			id = claims.Subject
		}
		u, err := a.accounts.User(ctx, id)
		return u.OrgID, id, err
	}, a.assess.ListByUser)
}

// listGroupResults is GET /api/groups/{group}/results.
func (a *assessmentAPI) listGroupResults(w http.ResponseWriter, r *http.Request) error {
	return a.listResults(w, r, func(ctx context.Context, _ tokens.AccessClaims) (string, string, error) {
		id := r.PathValue("group")
		g, err := a.accounts.Group(ctx, id)
		return g.OrgID, id, err
	}, a.assess.ListByGroup)
}

// resultLister lists one page of the results of a user or group of an organization.
type resultLister func(ctx context.Context, a assessment.Actor, orgID, id string, p assessment.Page) ([]assessment.Result, string, error)

// listResults answers one page of the results of the user or group that owner finds (its
// organization and id), and records the listing.
func (a *assessmentAPI) listResults(w http.ResponseWriter, r *http.Request,
	owner func(context.Context, tokens.AccessClaims) (org, id string, err error), list resultLister) error {
	claims, err := a.user(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	org, id, err := owner(ctx, claims)
	var items []assessment.Result
	var next string
	if err == nil {
		var page assessment.Page
		if page, err = assessmentPage(r); err == nil {
			items, next, err = list(ctx, actorOf(claims), org, id, page)
		}
	}
	if err != nil {
		org = "" // not the caller's to know
	}
	if err := a.auditRead(r, err, a.resultEvent(r, claims, audit.ResultListed, id, org)); err != nil {
		return err
	}
	listOf(w, items, next)
	return nil
}
