package assessment_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
)

func TestCreateResult(t *testing.T) {
	e := newEnv(t)
	got := e.createResult(t, e.newResult())
	want := assessment.Result{ID: got.ID, OrgID: e.org, UserID: e.evaluated.UserID, TestID: e.test.ID, GroupID: e.group,
		Scores: json.RawMessage(`{"anxiety":42}`), Answers: json.RawMessage(`[3,1,4]`), AppliedAt: now.Add(-time.Hour),
		CreatedBy: e.writer.UserID, CreatedAt: now, UpdatedAt: now}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("created %+v\nwant %+v", got, want)
	}
	if read, err := e.svc.Result(t.Context(), e.reader, got.ID); err != nil || !reflect.DeepEqual(read, want) {
		t.Errorf("read back %+v, %v", read, err)
	}
}

func TestCreateResultValidation(t *testing.T) {
	e := newEnv(t)
	retired := e.createTest(t, `{}`)
	if err := e.svc.DeactivateTest(t.Context(), admin, retired.ID); err != nil {
		t.Fatal(err)
	}
	outsider := e.user(newID())
	tests := []struct {
		name   string
		edit   func(*assessment.NewResult)
		fields []string // nil: accepted
	}{
		{"a valid result is accepted", func(*assessment.NewResult) {}, nil},
		{"a result without group or answers is accepted", func(n *assessment.NewResult) { n.GroupID, n.Answers = "", nil }, nil},
		{"null answers are no answers", func(n *assessment.NewResult) { n.Answers = json.RawMessage(`null`) }, nil},
		{"scores the schema refuses name scores", func(n *assessment.NewResult) { n.Scores = json.RawMessage(`{"anxiety":101}`) }, []string{"scores"}},
		{"scores missing a required property name scores", func(n *assessment.NewResult) { n.Scores = json.RawMessage(`{}`) }, []string{"scores"}},
		{"missing scores are refused", func(n *assessment.NewResult) { n.Scores = nil }, []string{"scores"}},
		{"scores that are not JSON are refused", func(n *assessment.NewResult) { n.Scores = json.RawMessage(`{"anxiety":`) }, []string{"scores"}},
		{"answers over 64 KiB are refused", func(n *assessment.NewResult) {
			n.Answers = json.RawMessage(`"` + strings.Repeat("x", assessment.MaxJSONBytes) + `"`)
		}, []string{"answers"}},
		{"an unknown test is refused", func(n *assessment.NewResult) { n.TestID = newID() }, []string{"test_id"}},
		{"a deactivated test is refused", func(n *assessment.NewResult) { n.TestID, n.Scores = retired.ID, json.RawMessage(`{}`) }, []string{"test_id"}},
		{"a user of another organization is refused", func(n *assessment.NewResult) { n.UserID = outsider.UserID }, []string{"user_id"}},
		{"an unknown user is refused", func(n *assessment.NewResult) { n.UserID = newID() }, []string{"user_id"}},
		{"a group the user is not a member of is refused", func(n *assessment.NewResult) { n.UserID = e.nobody.UserID }, []string{"group_id"}},
		{"an unknown group is refused", func(n *assessment.NewResult) { n.GroupID = newID() }, []string{"group_id"}},
		{"malformed ids are refused without lookups", func(n *assessment.NewResult) { n.UserID, n.TestID, n.GroupID = "u", "T", "g" },
			[]string{"user_id", "test_id", "group_id"}},
		{"a missing applied_at is refused", func(n *assessment.NewResult) { n.AppliedAt = time.Time{} }, []string{"applied_at"}},
		{"an applied_at within the clock skew is accepted", func(n *assessment.NewResult) { n.AppliedAt = now.Add(assessment.DefaultClockSkew) }, nil},
		{"an applied_at beyond the clock skew is refused", func(n *assessment.NewResult) {
			n.AppliedAt = now.Add(assessment.DefaultClockSkew + time.Microsecond)
		}, []string{"applied_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := e.newResult()
			tt.edit(&n)
			r, err := e.svc.CreateResult(t.Context(), e.writer, n)
			if !requireFields(t, err, tt.fields) {
				return
			}
			if _, err := e.svc.Result(t.Context(), e.writer, r.ID); err != nil {
				t.Errorf("reading the accepted result: %v", err)
			}
		})
	}
}

func TestCreateResultPermissions(t *testing.T) {
	e := newEnv(t)
	for _, a := range []assessment.Actor{e.reader, e.manager, e.evaluated, e.user(e.org, "org:admin", "support")} {
		_, err := e.svc.CreateResult(t.Context(), a, e.newResult())
		requireIs(t, "CreateResult without results:write", err, assessment.ErrForbidden)
	}
	n := e.newResult()
	n.OrgID = newID()
	_, err := e.svc.CreateResult(t.Context(), e.writer, n)
	requireIs(t, "CreateResult in another organization", err, assessment.ErrNotFound)

	_, err = e.svc.CreateResult(t.Context(), admin, e.newResult())
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"org_id"}) {
		t.Errorf("a platform admin naming no organization: fields %v", got)
	}
	n.OrgID = e.org
	if r, err := e.svc.CreateResult(t.Context(), admin, n); err != nil || r.OrgID != e.org || r.CreatedBy != admin.UserID {
		t.Errorf("a platform admin naming the organization: %+v, %v", r, err)
	}
}

func TestResultVisibility(t *testing.T) {
	e := newEnv(t)
	r := e.createResult(t, e.newResult())
	feedback := now.Add(24 * time.Hour)
	if err := e.svc.SetFeedbackDate(t.Context(), e.writer, r.ID, feedback); err != nil {
		t.Fatal(err)
	}
	other := e.user(newID(), assessment.PermResultsRead, assessment.PermResultsWrite)
	tests := []struct {
		name        string
		actor       assessment.Actor
		at          time.Time
		wantErr     error
		wantAnswers bool
	}{
		{"a platform admin reads it with answers", admin, now, nil, true},
		{"results:write reads it with answers", e.writer, now, nil, true},
		{"results:read reads it with answers", e.reader, now, nil, true},
		{"the group's manager reads it without answers", e.manager, now, nil, false},
		{"the evaluated user may not read it before the feedback date", e.evaluated, feedback.Add(-time.Microsecond), assessment.ErrForbidden, false},
		{"the evaluated user reads it without answers from the feedback date", e.evaluated, feedback, nil, false},
		{"a plain user of the organization may not read it", e.nobody, feedback, assessment.ErrForbidden, false},
		{"support may not read it", e.user(e.org, "support"), feedback, assessment.ErrForbidden, false},
		{"another organization does not find it", other, now, assessment.ErrNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.set(tt.at)
			got, err := e.svc.Result(t.Context(), tt.actor, r.ID)
			if tt.wantErr != nil {
				requireIs(t, "Result", err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Scores) != string(r.Scores) || (got.Answers != nil) != tt.wantAnswers {
				t.Errorf("got scores %s and answers %s; want answers shown: %v", got.Scores, got.Answers, tt.wantAnswers)
			}
		})
	}
}

func TestManagersAreAskedOnlyWhenItMatters(t *testing.T) {
	e := newEnv(t)
	r := e.createResult(t, e.newResult())
	for _, a := range []assessment.Actor{admin, e.reader, e.writer} {
		if _, err := e.svc.Result(t.Context(), a, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.access.asked.Load(); n != 0 {
		t.Errorf("ManagesGroup asked %d times for readers who need no group", n)
	}
	e.access.err = errors.New("identity down")
	if _, err := e.svc.Result(t.Context(), e.manager, r.ID); err == nil || errors.Is(err, assessment.ErrForbidden) {
		t.Errorf("with Access failing: got %v, want its error rather than a decision", err)
	}
}

func TestUpdateResult(t *testing.T) {
	e := newEnv(t)
	r := e.createResult(t, e.newResult())
	e.set(now.Add(time.Hour))
	applied := now.Add(-2 * time.Hour)
	got, err := e.svc.UpdateResult(t.Context(), e.writer, r.ID, assessment.ResultUpdate{
		Scores: json.RawMessage(`{"anxiety": 7}`), Answers: json.RawMessage(`null`), AppliedAt: &applied})
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.Scores, want.Answers, want.AppliedAt, want.UpdatedAt = json.RawMessage(`{"anxiety":7}`), nil, applied, now.Add(time.Hour)
	if read, err := e.svc.Result(t.Context(), e.reader, r.ID); err != nil || !reflect.DeepEqual(read, want) || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v and read %+v, %v\nwant %+v", got, read, err, want)
	}

	_, err = e.svc.UpdateResult(t.Context(), e.writer, r.ID, assessment.ResultUpdate{Scores: json.RawMessage(`{"anxiety":-1}`)})
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"scores"}) {
		t.Errorf("fields %v", got)
	}
	for _, a := range []assessment.Actor{e.reader, e.manager, e.evaluated} {
		_, err := e.svc.UpdateResult(t.Context(), a, r.ID, assessment.ResultUpdate{Scores: json.RawMessage(`{"anxiety":-1}`)})
		requireIs(t, "UpdateResult without results:write", err, assessment.ErrForbidden)
	}
	_, err = e.svc.UpdateResult(t.Context(), e.user(newID(), assessment.PermResultsWrite), r.ID, assessment.ResultUpdate{})
	requireIs(t, "UpdateResult from another organization", err, assessment.ErrNotFound)
}

func TestDeleteResult(t *testing.T) {
	e := newEnv(t)
	r := e.createResult(t, e.newResult())
	requireIs(t, "DeleteResult by a reader", e.svc.DeleteResult(t.Context(), e.reader, r.ID), assessment.ErrForbidden)
	requireIs(t, "DeleteResult from another organization",
		e.svc.DeleteResult(t.Context(), e.user(newID(), assessment.PermResultsWrite), r.ID), assessment.ErrNotFound)
	if err := e.svc.DeleteResult(t.Context(), e.writer, r.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Result(t.Context(), admin, r.ID)
	requireIs(t, "reading a deleted result", err, assessment.ErrNotFound)
	requireIs(t, "deleting it again", e.svc.DeleteResult(t.Context(), e.writer, r.ID), assessment.ErrNotFound)
	if list, _, err := e.svc.ListByUser(t.Context(), e.reader, "", e.evaluated.UserID, assessment.Page{}); err != nil || len(list) != 0 {
		t.Errorf("listing after delete: %v, %v", list, err)
	}
	// Soft: the row stays in the database.
	if n, err := e.db.NewSelect().Table("results").Where("id = ?", r.ID).Count(t.Context()); err != nil || n != 1 {
		t.Errorf("rows of the deleted result: %d, %v; want it kept", n, err)
	}
}

func TestSetFeedbackDates(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for range 3 {
		ids = append(ids, e.createResult(t, e.newResult()).ID)
	}
	feedback := now.Add(48 * time.Hour)
	stranger := e.user(newID())
	n := e.newResult()
	n.OrgID, n.UserID, n.GroupID = stranger.OrgID, stranger.UserID, ""
	foreign, err := e.svc.CreateResult(t.Context(), admin, n)
	if err != nil {
		t.Fatal(err)
	}
	deleted := e.createResult(t, e.newResult())
	if err := e.svc.DeleteResult(t.Context(), e.writer, deleted.ID); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		bad  string
	}{{"an unknown id", newID()}, {"another organization's id", foreign.ID}, {"a deleted id", deleted.ID}} {
		// A platform admin acts in the organization of the first result: one request, one organization.
		for _, a := range []assessment.Actor{e.writer, admin} {
			err := e.svc.SetFeedbackDates(t.Context(), a, append(slices.Clone(ids), tt.bad), feedback)
			var v *assessment.ValidationError
			if !errors.As(err, &v) || len(v.Fields) != 1 || v.Fields[0].Field != "result_ids" || !strings.Contains(v.Fields[0].Message, tt.bad) {
				t.Errorf("%s by %v: got %v, want a validation error naming it", tt.name, a.Perms, err)
			}
		}
	}
	err = e.svc.SetFeedbackDates(t.Context(), e.writer, []string{ids[0], "x"}, time.Time{})
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"result_ids", "feedback_at"}) {
		t.Errorf("malformed id and no date: fields %v", got)
	}
	requireIs(t, "SetFeedbackDates by a reader", e.svc.SetFeedbackDates(t.Context(), e.reader, ids, feedback), assessment.ErrForbidden)
	requireIs(t, "SetFeedbackDates by a manager", e.svc.SetFeedbackDates(t.Context(), e.manager, ids, feedback), assessment.ErrForbidden)
	for _, id := range ids {
		if r, err := e.svc.Result(t.Context(), e.reader, id); err != nil || !r.FeedbackAt.IsZero() {
			t.Fatalf("after refused requests: %+v, %v; want no feedback date", r, err)
		}
	}

	if err := e.svc.SetFeedbackDates(t.Context(), e.writer, append(ids, ids[0]), feedback); err != nil {
		t.Fatal(err)
	}
	e.set(feedback)
	list, next, err := e.svc.ListByUser(t.Context(), e.evaluated, "", e.evaluated.UserID, assessment.Page{})
	if err != nil || next != "" || len(list) != len(ids) {
		t.Fatalf("the evaluated user lists %d results (next %q), %v; want all %d", len(list), next, err, len(ids))
	}
	for _, r := range list {
		if r.Answers != nil || !r.FeedbackAt.Equal(feedback) {
			t.Errorf("the evaluated user sees %+v", r)
		}
	}
}

func TestSetFeedbackDate(t *testing.T) {
	e := newEnv(t)
	r := e.createResult(t, e.newResult())
	requireIs(t, "an unknown id", e.svc.SetFeedbackDate(t.Context(), e.writer, newID(), now), assessment.ErrNotFound)
	requireIs(t, "a malformed id", e.svc.SetFeedbackDate(t.Context(), e.writer, "x", now), assessment.ErrNotFound)
	requireIs(t, "a reader", e.svc.SetFeedbackDate(t.Context(), e.reader, r.ID, now), assessment.ErrForbidden)
	requireIs(t, "another organization", e.svc.SetFeedbackDate(t.Context(), e.user(newID(), assessment.PermResultsWrite), r.ID, now),
		assessment.ErrNotFound)
	if err := e.svc.SetFeedbackDate(t.Context(), admin, r.ID, now.Add(time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	// Stored in whole microseconds: a date a nanosecond after now is now.
	if got, err := e.svc.Result(t.Context(), e.evaluated, r.ID); err != nil || !got.FeedbackAt.Equal(now) {
		t.Errorf("the evaluated user reads %+v, %v", got, err)
	}
}

func TestListByUser(t *testing.T) {
	e := newEnv(t)
	var released []string
	for i := range 5 {
		r := e.createResult(t, e.newResult())
		if i%2 == 0 {
			if err := e.svc.SetFeedbackDate(t.Context(), e.writer, r.ID, now); err != nil {
				t.Fatal(err)
			}
			released = append(released, r.ID)
		}
	}
	all := listAll(t, e, e.reader, e.evaluated.UserID)
	if len(all) != 5 || all[0].Answers == nil {
		t.Errorf("a reader lists %d results, first %+v; want 5 with answers", len(all), all[0])
	}
	own := listAll(t, e, e.evaluated, e.evaluated.UserID)
	if got := idsOf(own); !slices.Equal(got, released) || own[0].Answers != nil {
		t.Errorf("the evaluated user lists %v (answers %s); want %v without answers", got, own[0].Answers, released)
	}
	for _, a := range []assessment.Actor{e.nobody, e.manager} {
		_, _, err := e.svc.ListByUser(t.Context(), a, "", e.evaluated.UserID, assessment.Page{})
		requireIs(t, "listing another user's results without results:read", err, assessment.ErrForbidden)
	}
	_, _, err := e.svc.ListByUser(t.Context(), e.user(newID(), assessment.PermResultsRead), e.org, e.evaluated.UserID, assessment.Page{})
	requireIs(t, "listing from another organization", err, assessment.ErrNotFound)
	if got := idsOf(listAllIn(t, e, admin, e.org, e.evaluated.UserID)); len(got) != 5 {
		t.Errorf("a platform admin lists %v", got)
	}
}

func TestListByGroup(t *testing.T) {
	e := newEnv(t)
	inGroup := e.createResult(t, e.newResult())
	n := e.newResult()
	n.GroupID = ""
	e.createResult(t, n)

	for _, a := range []assessment.Actor{e.manager, e.reader} {
		list, next, err := e.svc.ListByGroup(t.Context(), a, "", e.group, assessment.Page{})
		if err != nil || next != "" || !slices.Equal(idsOf(list), []string{inGroup.ID}) {
			t.Fatalf("listing the group: %v, %q, %v", list, next, err)
		}
		if shown := list[0].Answers != nil; shown != (a.UserID == e.reader.UserID) {
			t.Errorf("answers shown: %v for %v", shown, a.Perms)
		}
	}
	for _, a := range []assessment.Actor{e.nobody, e.evaluated} {
		_, _, err := e.svc.ListByGroup(t.Context(), a, "", e.group, assessment.Page{})
		requireIs(t, "listing a group one does not manage", err, assessment.ErrForbidden)
	}
	_, _, err := e.svc.ListByGroup(t.Context(), e.manager, newID(), e.group, assessment.Page{})
	requireIs(t, "listing in another organization", err, assessment.ErrNotFound)
}

// listAll reads every page of a user's results, two at a time, in the actor's organization.
func listAll(t *testing.T, e *env, a assessment.Actor, userID string) []assessment.Result {
	t.Helper()
	return listAllIn(t, e, a, "", userID)
}

func listAllIn(t *testing.T, e *env, a assessment.Actor, orgID, userID string) []assessment.Result {
	t.Helper()
	var all []assessment.Result
	p := assessment.Page{Limit: 2}
	for {
		page, next, err := e.svc.ListByUser(t.Context(), a, orgID, userID, p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		p.Cursor = next
	}
}

func idsOf(list []assessment.Result) []string {
	ids := make([]string, len(list))
	for i, r := range list {
		ids[i] = r.ID
	}
	return ids
}
