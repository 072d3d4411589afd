package assessment

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// NewResult is what recording a result takes.
type NewResult struct {
	// OrgID is the evaluated user's organization. "" means the actor's own; platform
	// administrators, who belong to none, name it.
	OrgID     string
	UserID    string
	TestID    string
	GroupID   string          // optional: a group of the organization the user is a member of
	Scores    json.RawMessage // required; must satisfy the test's score schema
	Answers   json.RawMessage // optional; JSON null is the same as none
	AppliedAt time.Time       // when the user took the test; not in the future
}

// ResultUpdate is a change to a result; nil fields stay as they are.
type ResultUpdate struct {
	Scores    json.RawMessage // validated against the test's current schema
	Answers   json.RawMessage // JSON null removes the answers
	AppliedAt *time.Time
}

// CreateResult records a result. It needs results:write in the organization (or
// platform:admin). The test must be active, the scores must satisfy its schema, the user must be
// an active user of the organization and, when a group is given, a member of it.
func (s *Service) CreateResult(ctx context.Context, a Actor, n NewResult) (Result, error) {
	if n.OrgID == "" {
		n.OrgID = a.OrgID
	}
	now := s.timestamp()
	if err := mayWrite(a, Result{OrgID: n.OrgID}, now); err != nil {
		return Result{}, fmt.Errorf("create result: %w", err)
	}
	var v ValidationError
	n.validate(&v, now.Add(s.skew))
	if err := v.err(); err != nil {
		return Result{}, err
	}
	if err := s.checkReferences(ctx, &v, n); err != nil {
		return Result{}, fmt.Errorf("create result: %w", err)
	}
	if err := v.err(); err != nil {
		return Result{}, err
	}
	id, err := newID()
	if err != nil {
		return Result{}, fmt.Errorf("create result: %w", err)
	}
	r := Result{ID: id, OrgID: n.OrgID, UserID: n.UserID, TestID: n.TestID, GroupID: n.GroupID,
		Scores: compact(n.Scores), Answers: answers(n.Answers), AppliedAt: storedTime(n.AppliedAt),
		CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateResult(ctx, r); err != nil {
		return Result{}, fmt.Errorf("create result: %w", err)
	}
	return r, nil
}

// validate checks what needs no lookup; latest is the latest applied_at accepted.
func (n NewResult) validate(v *ValidationError, latest time.Time) {
	checkID(v, "org_id", n.OrgID)
	checkID(v, "user_id", n.UserID)
	checkID(v, "test_id", n.TestID)
	if n.GroupID != "" {
		checkID(v, "group_id", n.GroupID)
	}
	if n.Scores == nil {
		v.add("scores", "is required")
	} else {
		checkJSON(v, "scores", n.Scores)
	}
	if n.Answers != nil {
		checkJSON(v, "answers", n.Answers)
	}
	checkAppliedAt(v, n.AppliedAt, latest)
}

func checkID(v *ValidationError, field, id string) {
	if !isID(id) {
		v.add(field, "must be an id")
	}
}

func checkAppliedAt(v *ValidationError, at, latest time.Time) {
	switch {
	case at.IsZero():
		v.add("applied_at", "is required")
	case at.After(latest):
		v.add("applied_at", "must not be in the future")
	}
}

// checkReferences adds a field error for each record the new result names that does not fit:
// an inactive or unknown test, scores its schema refuses, a user outside the organization, a
// group the user is not a member of. Only a failure to look them up is returned.
func (s *Service) checkReferences(ctx context.Context, v *ValidationError, n NewResult) error {
	if err := s.checkScores(ctx, v, n.TestID, n.Scores, true); err != nil {
		return err
	}
	ok, err := s.access.UserInOrganization(ctx, n.OrgID, n.UserID)
	if err != nil {
		return fmt.Errorf("look up user %q: %w", n.UserID, err)
	}
	if !ok {
		v.add("user_id", "does not name an active user of the organization")
		return nil // a group membership of a user who is not there means nothing
	}
	if n.GroupID == "" {
		return nil
	}
	if ok, err = s.access.IsMember(ctx, n.OrgID, n.GroupID, n.UserID); err != nil {
		return fmt.Errorf("look up membership of group %q: %w", n.GroupID, err)
	}
	if !ok {
		v.add("group_id", "does not name a group of the organization the user is a member of")
	}
	return nil
}

// checkScores validates scores against the schema of the test. A new result needs an active
// test (activeOnly); a result already recorded may change its scores after its test retired.
func (s *Service) checkScores(ctx context.Context, v *ValidationError, testID string, scores json.RawMessage, activeOnly bool) error {
	t, err := s.test(ctx, testID)
	if errors.Is(err, ErrNotFound) || err == nil && activeOnly && !t.Active {
		v.add("test_id", "does not name an active test")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read test %q: %w", testID, err)
	}
	sch, err := compileSchema(t.ScoreSchema)
	if err != nil {
		// Stored schemas compiled when they were written: this one was changed behind our back.
		return fmt.Errorf("score schema of test %q: %s", testID, err)
	}
	validateScores(v, sch, scores)
	return nil
}

// answers is the answers as stored: compact, and nil for none (JSON null included).
func answers(raw json.RawMessage) json.RawMessage {
	if raw == nil || string(compact(raw)) == "null" {
		return nil
	}
	return compact(raw)
}

// Result returns a result the actor may read, without the raw answers unless the actor may see
// them. Another organization's result is ErrNotFound; one of the actor's organization the actor
// may not read is ErrForbidden.
func (s *Service) Result(ctx context.Context, a Actor, id string) (Result, error) {
	r, err := s.load(ctx, a, id)
	if err != nil {
		return Result{}, fmt.Errorf("result %q: %w", id, err)
	}
	rt, err := s.readRights(ctx, a, r)
	if err != nil {
		return Result{}, fmt.Errorf("result %q: %w", id, err)
	}
	return r.view(rt), nil
}

// load reads a result in the organization the actor acts in: their own, or, for a platform
// administrator, the result's.
func (s *Service) load(ctx context.Context, a Actor, id string) (Result, error) {
	if !isID(id) {
		return Result{}, ErrNotFound
	}
	orgID, err := s.organizationOf(ctx, a, id)
	if err != nil {
		return Result{}, err
	}
	return s.store.Result(ctx, orgID, id)
}

// organizationOf is the organization in which the actor looks for the result id.
func (s *Service) organizationOf(ctx context.Context, a Actor, id string) (string, error) {
	if a.isAdmin() {
		return s.store.ResultOrganization(ctx, id)
	}
	if a.OrgID == "" {
		return "", ErrNotFound
	}
	return a.OrgID, nil
}

// readRights applies decide, asking Access whether the actor manages the result's group only
// when the answer depends on it.
func (s *Service) readRights(ctx context.Context, a Actor, r Result) (rights, error) {
	now := s.now()
	rt, err := decide(a, r, false, now)
	if !errors.Is(err, ErrForbidden) || r.GroupID == "" {
		return rt, err
	}
	manages, aerr := s.access.ManagesGroup(ctx, r.OrgID, r.GroupID, a.UserID)
	if aerr != nil {
		return rights{}, fmt.Errorf("look up managers of group %q: %w", r.GroupID, aerr)
	}
	return decide(a, r, manages, now)
}

// UpdateResult changes a result's scores, answers or applied_at. It needs results:write in the
// result's organization (or platform:admin).
func (s *Service) UpdateResult(ctx context.Context, a Actor, id string, u ResultUpdate) (Result, error) {
	r, err := s.load(ctx, a, id)
	if err == nil {
		err = mayWrite(a, r, s.now())
	}
	if err == nil {
		err = s.validateUpdate(ctx, r.TestID, u)
	}
	if err != nil {
		return Result{}, fmt.Errorf("update result %q: %w", id, err)
	}
	updated, err := s.change(ctx, a, r.OrgID, []string{id}, func(r *Result) {
		if u.Scores != nil {
			r.Scores = compact(u.Scores)
		}
		if u.Answers != nil {
			r.Answers = answers(u.Answers)
		}
		if u.AppliedAt != nil {
			r.AppliedAt = storedTime(*u.AppliedAt)
		}
	})
	if err != nil {
		return Result{}, fmt.Errorf("update result %q: %w", id, err)
	}
	return updated[0], nil
}

func (s *Service) validateUpdate(ctx context.Context, testID string, u ResultUpdate) error {
	var v ValidationError
	if u.Scores != nil {
		checkJSON(&v, "scores", u.Scores)
	}
	if u.Answers != nil {
		checkJSON(&v, "answers", u.Answers)
	}
	if u.AppliedAt != nil {
		checkAppliedAt(&v, *u.AppliedAt, s.now().Add(s.skew))
	}
	if u.Scores != nil && v.err() == nil {
		if err := s.checkScores(ctx, &v, testID, u.Scores, false); err != nil {
			return err
		}
	}
	return v.err()
}

// change applies edit to the organization's results with the given ids in one transaction,
// after checking, on each result as it is locked, that the actor may change it.
func (s *Service) change(ctx context.Context, a Actor, orgID string, ids []string, edit func(*Result)) ([]Result, error) {
	now := s.timestamp()
	return s.store.UpdateResults(ctx, orgID, ids, func(r Result) (Result, error) {
		if err := mayWrite(a, r, now); err != nil {
			return Result{}, fmt.Errorf("result %q: %w", r.ID, err)
		}
		edit(&r)
		r.UpdatedAt = now
		return r, nil
	})
}

// DeleteResult deletes a result: it disappears from reads and lists, its scores and answers are
// erased, and the rest of its row stays in the database. It needs results:write in the result's
// organization (or platform:admin).
func (s *Service) DeleteResult(ctx context.Context, a Actor, id string) error {
	r, err := s.load(ctx, a, id)
	if err == nil {
		err = mayWrite(a, r, s.now())
	}
	if err == nil {
		err = s.store.DeleteResult(ctx, r.OrgID, id, s.timestamp())
	}
	if err != nil {
		return fmt.Errorf("delete result %q: %w", id, err)
	}
	return nil
}

// SetFeedbackDate sets when the evaluated user receives feedback on a result, and so from when
// they may read it. It needs results:write in the result's organization (or platform:admin).
func (s *Service) SetFeedbackDate(ctx context.Context, a Actor, id string, at time.Time) error {
	var v ValidationError
	checkFeedbackAt(&v, at)
	if err := v.err(); err != nil {
		return err
	}
	if err := s.setFeedback(ctx, a, []string{id}, at); err != nil {
		return fmt.Errorf("set feedback date of result %q: %w", id, err)
	}
	return nil
}

// SetFeedbackDates sets the feedback date of several results of one organization, all or
// nothing: if one id is malformed, unknown, deleted or another organization's, nothing changes
// and a *ValidationError on "result_ids" names it; if the actor may not change one, nothing
// changes and the error is ErrForbidden. Repeated ids count once.
func (s *Service) SetFeedbackDates(ctx context.Context, a Actor, ids []string, at time.Time) error {
	ids = unique(ids)
	var v ValidationError
	switch {
	case len(ids) == 0:
		v.add("result_ids", "must name at least one result")
	case len(ids) > MaxPageLimit:
		v.add("result_ids", "must name at most %d results", MaxPageLimit)
	}
	for _, id := range ids {
		if !isID(id) {
			v.add("result_ids", "includes %q, which is not an id", id)
		}
	}
	checkFeedbackAt(&v, at)
	if err := v.err(); err != nil {
		return err
	}
	err := s.setFeedback(ctx, a, ids, at)
	var missing *MissingError
	if errors.As(err, &missing) {
		v.add("result_ids", "includes %q, which names no result", missing.ID)
		return v.err()
	}
	if err != nil {
		return fmt.Errorf("set feedback dates of %d results: %w", len(ids), err)
	}
	return nil
}

// setFeedback is the one transaction that sets the feedback date of results of one organization:
// the actor's, or for a platform administrator that of the first result.
func (s *Service) setFeedback(ctx context.Context, a Actor, ids []string, at time.Time) error {
	if !isID(ids[0]) {
		return &MissingError{ID: ids[0]}
	}
	orgID, err := s.organizationOf(ctx, a, ids[0])
	if errors.Is(err, ErrNotFound) {
		return &MissingError{ID: ids[0]}
	}
	if err != nil {
		return err
	}
	at = storedTime(at)
	_, err = s.change(ctx, a, orgID, ids, func(r *Result) { r.FeedbackAt = at })
	return err
}

// checkFeedbackAt requires a date. It may lie in the past or in the future: a future date
// schedules when the user may read the result.
func checkFeedbackAt(v *ValidationError, at time.Time) {
	if at.IsZero() {
		v.add("feedback_at", "is required")
	}
}

// unique is ids without repetitions, in their first order.
func unique(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// ListByUser returns one page of a user's results in creation order, and the cursor of the next
// page ("" after the last). orgID is the user's organization ("" for the actor's own). Holders of
// results:read or results:write in it (and platform:admin) see all of them; the user sees those
// whose feedback date has come, without answers; everyone else is refused.
func (s *Service) ListByUser(ctx context.Context, a Actor, orgID, userID string, p Page) ([]Result, string, error) {
	orgID = cmp.Or(orgID, a.OrgID)
	releasedOnly, err := listScope(a, orgID, a.UserID == userID, false)
	if err == nil && (orgID == "" || !isID(userID)) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("results of user %q: %w", userID, err)
	}
	f := ResultFilter{OrgID: orgID, UserID: userID}
	if releasedOnly {
		f.ReleasedAt = s.now()
	}
	return s.list(ctx, a, f, false, p)
}

// ListByGroup returns one page of the results attached to a group, like ListByUser. orgID is the
// group's organization ("" for the actor's own). Holders of results:read or results:write in it
// (and platform:admin) see all of them; the group's managers see them without answers.
func (s *Service) ListByGroup(ctx context.Context, a Actor, orgID, groupID string, p Page) ([]Result, string, error) {
	orgID = cmp.Or(orgID, a.OrgID)
	manages := false
	_, err := listScope(a, orgID, false, false)
	if errors.Is(err, ErrForbidden) {
		if manages, err = s.access.ManagesGroup(ctx, orgID, groupID, a.UserID); err != nil {
			return nil, "", fmt.Errorf("look up managers of group %q: %w", groupID, err)
		}
		_, err = listScope(a, orgID, false, manages)
	}
	if err == nil && (orgID == "" || !isID(groupID)) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("results of group %q: %w", groupID, err)
	}
	return s.list(ctx, a, ResultFilter{OrgID: orgID, GroupID: groupID}, manages, p)
}

// list reads one page of results and shows each as decide lets the actor see it.
func (s *Service) list(ctx context.Context, a Actor, f ResultFilter, manages bool, p Page) ([]Result, string, error) {
	after, limit, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	f.After, f.Limit = after, limit+1
	list, err := s.store.Results(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list results: %w", err)
	}
	list, next := nextPage(list, limit, func(r Result) string { return r.ID })
	now := s.now()
	shown := list[:0]
	for _, r := range list {
		// The store's filter already kept only these; decide stays the one rule for each.
		if rt, err := decide(a, r, manages, now); err == nil {
			shown = append(shown, r.view(rt))
		}
	}
	return shown, next, nil
}

// purgeBatch bounds one purge statement: however much has expired, no transaction runs long.
const purgeBatch = 500

// PurgeExpiredResults deletes for good every result applied more than retention ago, in every
// organization (PORTARIA_RESULT_RETENTION), and returns how many. It is maintenance, not an
// actor's request: the server runs it on a schedule.
func (s *Service) PurgeExpiredResults(ctx context.Context, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	before := s.timestamp().Add(-retention)
	total := 0
	for {
		n, err := s.store.PurgeResults(ctx, before, purgeBatch)
		total += n
		if err != nil {
			return total, fmt.Errorf("purge results applied before %s: %w", before.Format(time.RFC3339), err)
		}
		if n < purgeBatch {
			return total, nil
		}
	}
}
