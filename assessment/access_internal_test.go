package assessment

import (
	"errors"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	feedback := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := Result{ID: "r", OrgID: "org", UserID: "evaluated", GroupID: "group", FeedbackAt: feedback}
	noGroup := r
	noGroup.GroupID = ""
	noFeedback := r
	noFeedback.FeedbackAt = time.Time{}
	before, after := feedback.Add(-time.Nanosecond), feedback.Add(time.Nanosecond)
	all := rights{read: true, answers: true, write: true}
	member := func(perms ...string) Actor { return Actor{UserID: "someone", OrgID: "org", Perms: perms} }
	stranger := func(perms ...string) Actor { return Actor{UserID: "someone", OrgID: "elsewhere", Perms: perms} }
	evaluated := Actor{UserID: "evaluated", OrgID: "org"}

	tests := []struct {
		name    string
		actor   Actor
		result  Result
		manages bool
		now     time.Time
		want    rights
		wantErr error
	}{
		{"a platform admin of another organization may do everything", stranger(PermPlatformAdmin), r, false, before, all, nil},
		{"a platform admin of no organization may do everything", Actor{UserID: "a", Perms: []string{PermPlatformAdmin}}, r, false, before, all, nil},
		{"results:write in the organization reads with answers and writes", member(PermResultsWrite), r, false, before, all, nil},
		{"results:read in the organization reads with answers, never writes", member(PermResultsRead), r, false, before, rights{read: true, answers: true}, nil},
		{"results:read in another organization does not find it", stranger(PermResultsRead), r, false, before, rights{}, ErrNotFound},
		{"results:write in another organization does not find it", stranger(PermResultsWrite), r, false, before, rights{}, ErrNotFound},
		{"organization permissions without an organization grant nothing", Actor{UserID: "a", Perms: []string{PermResultsRead}}, Result{ID: "r"}, false, before, rights{}, ErrNotFound},
		{"a manager of the result's group reads it without answers", member(), r, true, before, rights{read: true}, nil},
		{"a manager of another organization's group does not find it", stranger(), r, true, before, rights{}, ErrNotFound},
		{"managing counts only for a result attached to a group", member(), noGroup, true, before, rights{}, ErrForbidden},
		{"the evaluated user may not read it a nanosecond before the feedback date", evaluated, r, false, before, rights{}, ErrForbidden},
		{"the evaluated user reads it without answers at the feedback date", evaluated, r, false, feedback, rights{read: true}, nil},
		{"the evaluated user reads it without answers a nanosecond after", evaluated, r, false, after, rights{read: true}, nil},
		{"the evaluated user may not read it while no feedback date is set", evaluated, noFeedback, false, after, rights{}, ErrForbidden},
		{"the evaluated user with results:read sees the answers too", Actor{UserID: "evaluated", OrgID: "org", Perms: []string{PermResultsRead}}, r, false, before, rights{read: true, answers: true}, nil},
		{"another user of the organization may not read it, even after feedback", member(), r, false, after, rights{}, ErrForbidden},
		{"an actor without a user id is nobody's evaluated user", Actor{OrgID: "org"}, Result{OrgID: "org", FeedbackAt: feedback}, false, after, rights{}, ErrForbidden},
		{"support sees nothing in the organization", member("support"), r, false, after, rights{}, ErrForbidden},
		{"support sees nothing elsewhere", stranger("support"), r, false, after, rights{}, ErrNotFound},
		{"org:admin sees no results", member("org:admin"), r, false, after, rights{}, ErrForbidden},
		{"tests:write sees no results", member(PermTestsWrite), r, false, after, rights{}, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decide(tt.actor, tt.result, tt.manages, tt.now)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestListScope(t *testing.T) {
	tests := []struct {
		name             string
		actor            Actor
		self, manages    bool
		wantReleasedOnly bool
		wantErr          error
	}{
		{"a platform admin lists everything anywhere", Actor{Perms: []string{PermPlatformAdmin}}, false, false, false, nil},
		{"results:read lists everything in the organization", Actor{OrgID: "org", Perms: []string{PermResultsRead}}, false, false, false, nil},
		{"results:write lists everything in the organization", Actor{OrgID: "org", Perms: []string{PermResultsWrite}}, false, false, false, nil},
		{"results:read of another organization finds nothing", Actor{OrgID: "elsewhere", Perms: []string{PermResultsRead}}, false, false, false, ErrNotFound},
		{"a group's manager lists the group", Actor{OrgID: "org"}, false, true, false, nil},
		{"the evaluated user lists only what was released", Actor{OrgID: "org"}, true, false, true, nil},
		{"anyone else in the organization is refused", Actor{OrgID: "org", Perms: []string{"support", "org:admin"}}, false, false, false, ErrForbidden},
		{"anyone else elsewhere finds nothing", Actor{OrgID: "elsewhere"}, true, true, false, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			releasedOnly, err := listScope(tt.actor, "org", tt.self, tt.manages)
			if releasedOnly != tt.wantReleasedOnly || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("got %v, %v; want %v, %v", releasedOnly, err, tt.wantReleasedOnly, tt.wantErr)
			}
		})
	}
}

func TestTestVisibility(t *testing.T) {
	active, inactive := Test{Active: true}, Test{}
	tests := []struct {
		name      string
		actor     Actor
		mayWrite  bool
		seeActive bool
		seeRetire bool
	}{
		{"a platform admin changes the catalogue and sees all of it", Actor{Perms: []string{PermPlatformAdmin}}, true, true, true},
		{"tests:write changes the catalogue and sees all of it", Actor{Perms: []string{PermTestsWrite}}, true, true, true},
		{"results:write only reads active tests", Actor{OrgID: "org", Perms: []string{PermResultsWrite}}, false, true, false},
		{"a user without permissions only reads active tests", Actor{UserID: "u"}, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mayWriteTests(tt.actor); got != tt.mayWrite {
				t.Errorf("mayWriteTests = %v, want %v", got, tt.mayWrite)
			}
			if got := maySeeTest(tt.actor, active); got != tt.seeActive {
				t.Errorf("maySeeTest(active) = %v, want %v", got, tt.seeActive)
			}
			if got := maySeeTest(tt.actor, inactive); got != tt.seeRetire {
				t.Errorf("maySeeTest(inactive) = %v, want %v", got, tt.seeRetire)
			}
		})
	}
}
