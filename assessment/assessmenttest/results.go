package assessmenttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
)

// seedTest stores a test for results to name, and returns its id.
func seedTest(t *testing.T, s assessment.Store) string {
	t.Helper()
	test := newTest()
	createTest(t, s, test)
	return test.ID
}

func newResult(orgID, testID string) assessment.Result {
	return assessment.Result{
		ID:         newID(),
		OrgID:      orgID,
		UserID:     newID(),
		TestID:     testID,
		GroupID:    newID(),
		Scores:     raw(`{"openness":3.5,"conscientiousness":4}`),
		Answers:    raw(`[1,5,3,"n/a"]`),
		AppliedAt:  at(-time.Hour),
		FeedbackAt: at(24 * time.Hour),
		CreatedBy:  newID(),
		CreatedAt:  at(0),
		UpdatedAt:  at(time.Second),
	}
}

func createResult(t *testing.T, s assessment.Store, r assessment.Result) {
	t.Helper()
	if err := s.CreateResult(t.Context(), r); err != nil {
		t.Fatalf("CreateResult: %v", err)
	}
}

func getResult(t *testing.T, s assessment.Store, r assessment.Result) assessment.Result {
	t.Helper()
	got, err := s.Result(t.Context(), r.OrgID, r.ID)
	if err != nil {
		t.Fatalf("Result(%s): %v", r.ID, err)
	}
	return got
}

// setFeedback is an updater that sets the feedback date.
func setFeedback(when time.Time) func(assessment.Result) (assessment.Result, error) {
	return func(r assessment.Result) (assessment.Result, error) {
		r.FeedbackAt = when
		return r, nil
	}
}

func resultID(r assessment.Result) string { return r.ID }

func testCreateResult(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	createResult(t, s, r)
	sameRecord(t, "result", getResult(t, s, r), r)
}

func testBareResult(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	r.GroupID, r.Answers, r.FeedbackAt = "", nil, time.Time{}
	createResult(t, s, r)
	sameRecord(t, "result", getResult(t, s, r), r)
}

func testJSONRoundTrip(t *testing.T, s assessment.Store) {
	testID := seedTest(t, s)
	for _, doc := range []string{`{"b":1,"a":[1.50,2e3,null]}`, `"çãé 日本 \u0000 \"q\""`, `[]`, `0`, `{"a":{"b":{"c":true}}}`} {
		r := newResult(newID(), testID)
		r.Scores, r.Answers = raw(doc), raw(doc)
		createResult(t, s, r)
		sameRecord(t, "result", getResult(t, s, r), r)
	}
}

func testResultTestKey(t *testing.T, s assessment.Store) {
	r := newResult(newID(), newID())
	err := s.CreateResult(t.Context(), r)
	var v *assessment.ValidationError
	if !errors.Is(err, assessment.ErrInvalid) || !errors.As(err, &v) || len(v.Fields) != 1 || v.Fields[0].Field != "test_id" {
		t.Errorf("CreateResult with an unknown test: got %v, want a validation error on test_id", err)
	}
	_, err = s.Result(t.Context(), r.OrgID, r.ID)
	requireNotFound(t, "Result of a refused result", err)
}

func testDuplicateResult(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	createResult(t, s, r)
	other := newResult(newID(), r.TestID)
	other.ID = r.ID
	if err := s.CreateResult(t.Context(), other); !errors.Is(err, assessment.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	sameRecord(t, "result", getResult(t, s, r), r)
}

func testOrganizationPredicate(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	createResult(t, s, r)
	other := newID()

	_, err := s.Result(t.Context(), other, r.ID)
	requireNotFound(t, "Result", err)
	_, err = s.UpdateResults(t.Context(), other, []string{r.ID}, func(r assessment.Result) (assessment.Result, error) {
		t.Error("updater called for another organization's result")
		return r, nil
	})
	requireMissing(t, err, r.ID)
	requireNotFound(t, "DeleteResult", s.DeleteResult(t.Context(), other, r.ID, at(time.Hour)))
	for _, f := range []assessment.ResultFilter{{OrgID: other, UserID: r.UserID}, {OrgID: other, GroupID: r.GroupID}, {OrgID: other}} {
		f.Limit = 10
		if got, err := s.Results(t.Context(), f); err != nil || len(got) != 0 {
			t.Errorf("Results(%+v): got %v, %v; want nothing", f, got, err)
		}
	}
	sameRecord(t, "result", getResult(t, s, r), r)
}

func requireMissing(t *testing.T, err error, id string) {
	t.Helper()
	var missing *assessment.MissingError
	if !errors.As(err, &missing) || missing.ID != id || !errors.Is(err, assessment.ErrNotFound) {
		t.Errorf("got %v, want a MissingError naming %s", err, id)
	}
}

func testResultOrganization(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	createResult(t, s, r)
	if got, err := s.ResultOrganization(t.Context(), r.ID); err != nil || got != r.OrgID {
		t.Errorf("got %q, %v; want %q", got, err, r.OrgID)
	}
	_, err := s.ResultOrganization(t.Context(), newID())
	requireNotFound(t, "ResultOrganization of an unknown id", err)
}

func testSoftDelete(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	kept := r
	kept.ID = newID()
	createResult(t, s, r)
	createResult(t, s, kept)
	if err := s.DeleteResult(t.Context(), r.OrgID, r.ID, at(time.Hour)); err != nil {
		t.Fatal(err)
	}

	_, err := s.Result(t.Context(), r.OrgID, r.ID)
	requireNotFound(t, "Result", err)
	_, err = s.ResultOrganization(t.Context(), r.ID)
	requireNotFound(t, "ResultOrganization", err)
	_, err = s.UpdateResults(t.Context(), r.OrgID, []string{kept.ID, r.ID}, setFeedback(at(time.Minute)))
	requireMissing(t, err, r.ID)
	requireNotFound(t, "second DeleteResult", s.DeleteResult(t.Context(), r.OrgID, r.ID, at(2*time.Hour)))
	for _, f := range []assessment.ResultFilter{{UserID: r.UserID}, {GroupID: r.GroupID}, {}} {
		f.OrgID, f.Limit = r.OrgID, 10
		got, err := s.Results(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		sameRecord(t, fmt.Sprintf("Results(%+v)", f), got, []assessment.Result{kept})
	}
	sameRecord(t, "kept result", getResult(t, s, kept), kept)
}

func testConcurrentDelete(t *testing.T, s assessment.Store) {
	r := newResult(newID(), seedTest(t, s))
	createResult(t, s, r)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			switch err := s.DeleteResult(t.Context(), r.OrgID, r.ID, at(time.Hour)); {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, assessment.ErrNotFound):
				t.Errorf("DeleteResult: %v", err)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d deletes succeeded, want exactly 1", n)
	}
}

func testListResults(t *testing.T, s assessment.Store) {
	testID := seedTest(t, s)
	org, user, group := newID(), newID(), newID()
	var all []assessment.Result
	for i := range 8 {
		r := newResult(org, testID)
		if i%4 != 3 {
			r.UserID = user // 6 of them
		}
		if i%2 == 0 {
			r.GroupID = group // 4 of them
		}
		all = append(all, r)
	}
	// The same user and group ids in another organization must not show.
	stranger := newResult(newID(), testID)
	stranger.UserID, stranger.GroupID = user, group
	createResult(t, s, stranger)
	for _, i := range []int{5, 0, 7, 2, 1, 6, 3, 4} {
		createResult(t, s, all[i])
	}
	byUser := slices.DeleteFunc(slices.Clone(all), func(r assessment.Result) bool { return r.UserID != user })
	byGroup := slices.DeleteFunc(slices.Clone(all), func(r assessment.Result) bool { return r.GroupID != group })
	sameRecord(t, "by user", listAll(t, s, assessment.ResultFilter{OrgID: org, UserID: user}), byUser)
	sameRecord(t, "by group", listAll(t, s, assessment.ResultFilter{OrgID: org, GroupID: group}), byGroup)
	sameRecord(t, "by user and group", ids(listAll(t, s, assessment.ResultFilter{OrgID: org, UserID: user, GroupID: group}), resultID),
		ids(slices.DeleteFunc(slices.Clone(byUser), func(r assessment.Result) bool { return r.GroupID != group }), resultID))
}

// listAll reads every page of f, three results at a time.
func listAll(t *testing.T, s assessment.Store, f assessment.ResultFilter) []assessment.Result {
	t.Helper()
	var got []assessment.Result
	f.Limit = 3
	for {
		page, err := s.Results(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < f.Limit {
			return got
		}
		f.After = page[len(page)-1].ID
	}
}

func testReleasedFilter(t *testing.T, s assessment.Store) {
	testID := seedTest(t, s)
	org, user := newID(), newID()
	var want []string
	for _, c := range []struct {
		feedback time.Time
		released bool
	}{
		{time.Time{}, false},
		{at(-24 * time.Hour), true},
		{at(0), true}, // the instant itself counts
		{at(time.Microsecond), false},
		{at(24 * time.Hour), false},
	} {
		r := newResult(org, testID)
		r.UserID, r.FeedbackAt = user, c.feedback
		createResult(t, s, r)
		if c.released {
			want = append(want, r.ID)
		}
	}
	got := listAll(t, s, assessment.ResultFilter{OrgID: org, UserID: user, ReleasedAt: at(0)})
	sameRecord(t, "released results", ids(got, resultID), want)
}

func testUpdateResults(t *testing.T, s assessment.Store) {
	list := seedResults(t, s, 2, nil)
	r1, r2 := list[0], list[1]
	edit := func(r assessment.Result) assessment.Result {
		r.Scores, r.Answers = raw(`{"openness":1}`), nil
		r.AppliedAt, r.FeedbackAt, r.UpdatedAt = at(-2*time.Hour), at(time.Minute), at(time.Hour)
		return r
	}
	got, err := s.UpdateResults(t.Context(), r1.OrgID, []string{r2.ID, r1.ID}, func(old assessment.Result) (assessment.Result, error) {
		changed := edit(old)
		// None of these may change.
		changed.ID, changed.OrgID, changed.UserID, changed.TestID = "x", newID(), newID(), newID()
		changed.GroupID, changed.CreatedBy, changed.CreatedAt = newID(), newID(), at(-time.Hour)
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []assessment.Result{edit(r2), edit(r1)}
	sameRecord(t, "updated results", got, want)
	sameRecord(t, "result read back", getResult(t, s, r1), want[1])
	sameRecord(t, "result read back", getResult(t, s, r2), want[0])
}

func testUpdateResultsAborts(t *testing.T, s assessment.Store) {
	list := seedResults(t, s, 2, nil)
	r1, r2 := list[0], list[1]
	refused := errors.New("refused")
	_, err := s.UpdateResults(t.Context(), r1.OrgID, []string{r1.ID, r2.ID}, func(r assessment.Result) (assessment.Result, error) {
		if r.ID == r2.ID {
			return r, fmt.Errorf("no: %w", refused)
		}
		r.FeedbackAt = at(time.Minute)
		return r, nil
	})
	if !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
	sameRecord(t, "first result", getResult(t, s, r1), r1)
	sameRecord(t, "second result", getResult(t, s, r2), r2)
}

func testUpdateResultsMissing(t *testing.T, s assessment.Store) {
	list := seedResults(t, s, 2, nil)
	r1, r2 := list[0], list[1]
	unknown := newID()
	_, err := s.UpdateResults(t.Context(), r1.OrgID, []string{r1.ID, unknown, r2.ID}, setFeedback(at(time.Minute)))
	requireMissing(t, err, unknown)
	sameRecord(t, "first result", getResult(t, s, r1), r1)
	sameRecord(t, "last result", getResult(t, s, r2), r2)
}

// counted is the scores of the concurrency tests: how many updates a result went through.
type counted struct {
	N int `json:"n"`
}

// bump is an updater that counts one more update and sets the feedback date.
func bump(feedback time.Time) func(assessment.Result) (assessment.Result, error) {
	return func(r assessment.Result) (assessment.Result, error) {
		var c counted
		if err := json.Unmarshal(r.Scores, &c); err != nil {
			return r, err
		}
		c.N++
		b, err := json.Marshal(c)
		r.Scores, r.FeedbackAt = b, feedback
		return r, err
	}
}

// seedResults stores n results of one organization, each changed by edit if given, and
// returns them.
func seedResults(t *testing.T, s assessment.Store, n int, edit func(*assessment.Result)) []assessment.Result {
	testID, org := seedTest(t, s), newID()
	list := make([]assessment.Result, n)
	for i := range list {
		list[i] = newResult(org, testID)
		if edit != nil {
			edit(&list[i])
		}
		createResult(t, s, list[i])
	}
	return list
}

// seedCounted stores n results of one organization with a zero count, and returns them.
func seedCounted(t *testing.T, s assessment.Store, n int) []assessment.Result {
	return seedResults(t, s, n, func(r *assessment.Result) {
		r.Scores, r.FeedbackAt = raw(`{"n":0}`), time.Time{}
	})
}

// requireAllOrNothing checks that every live result went through exactly `updates` bulk updates
// and that they share one feedback date: no update was lost or applied to only some of them.
func requireAllOrNothing(t *testing.T, s assessment.Store, list []assessment.Result, updates int) {
	t.Helper()
	var feedback []time.Time
	for _, r := range list {
		got, err := s.Result(t.Context(), r.OrgID, r.ID)
		if errors.Is(err, assessment.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var c counted
		if err := json.Unmarshal(got.Scores, &c); err != nil || c.N != updates {
			t.Errorf("result %s went through %d updates (%v), want %d", r.ID, c.N, err, updates)
		}
		feedback = append(feedback, got.FeedbackAt)
	}
	if len(slices.Compact(feedback)) > 1 {
		t.Errorf("results have different feedback dates %v: a bulk update was applied to only some", feedback)
	}
}

func testConcurrentBulkUpdates(t *testing.T, s assessment.Store) {
	list := seedCounted(t, s, 5)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			order := ids(list, resultID)
			if i%2 == 1 {
				slices.Reverse(order) // opposite lock orders must not deadlock
			}
			if _, err := s.UpdateResults(t.Context(), list[0].OrgID, order, bump(at(time.Duration(i)*time.Minute))); err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	requireAllOrNothing(t, s, list, n)
}

func testBulkUpdateRacingDelete(t *testing.T, s assessment.Store) {
	list := seedCounted(t, s, 5)
	victim := list[2]
	var succeeded atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := s.UpdateResults(t.Context(), victim.OrgID, ids(list, resultID), bump(at(time.Duration(i)*time.Minute)))
			switch {
			case err == nil:
				succeeded.Add(1)
			case !errors.Is(err, assessment.ErrNotFound):
				t.Errorf("update %d: %v", i, err)
			}
		})
		if i == 3 {
			wg.Go(func() {
				if err := s.DeleteResult(t.Context(), victim.OrgID, victim.ID, at(time.Hour)); err != nil {
					t.Errorf("DeleteResult: %v", err)
				}
			})
		}
	}
	wg.Wait()
	requireAllOrNothing(t, s, list, int(succeeded.Load()))
}

func testPurgeResults(t *testing.T, s assessment.Store) {
	testID := seedTest(t, s)
	var old, kept []assessment.Result
	for i, applied := range []time.Duration{-72 * time.Hour, -49 * time.Hour, -48*time.Hour - time.Microsecond, -48 * time.Hour, -time.Hour} {
		r := newResult(newID(), testID) // each of its own organization: a purge crosses them
		r.AppliedAt = at(applied)
		createResult(t, s, r)
		if i == 1 { // deleted already: purged all the same
			if err := s.DeleteResult(t.Context(), r.OrgID, r.ID, at(0)); err != nil {
				t.Fatal(err)
			}
		}
		if applied < -48*time.Hour {
			old = append(old, r)
		} else {
			kept = append(kept, r)
		}
	}
	before := at(-48 * time.Hour)
	var purged []int
	for range 3 {
		n, err := s.PurgeResults(t.Context(), before, 2)
		if err != nil {
			t.Fatal(err)
		}
		purged = append(purged, n)
	}
	if !slices.Equal(purged, []int{2, 1, 0}) {
		t.Errorf("purges of at most 2 deleted %v, want [2 1 0]", purged)
	}
	for _, r := range old {
		_, err := s.Result(t.Context(), r.OrgID, r.ID)
		requireNotFound(t, "a purged result", err)
		_, err = s.ResultOrganization(t.Context(), r.ID)
		requireNotFound(t, "a purged result's organization", err)
	}
	for _, r := range kept {
		got, err := s.Result(t.Context(), r.OrgID, r.ID)
		if err != nil {
			t.Errorf("a result applied at %v, not before %v: %v", r.AppliedAt, before, err)
			continue
		}
		sameRecord(t, "a kept result", got, r)
	}
}
