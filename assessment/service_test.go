package assessment_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/assessment"
	"github.com/portaria/portaria/assessment/sqlstore"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

// fakeAccess is identity as this package sees it: which active users belong to which
// organization, and who is a member or a manager of which group. Storage is never faked: the
// service runs on a real SQLite store.
type fakeAccess struct {
	mu       sync.Mutex
	orgOf    map[string]string   // active user → organization
	groupOrg map[string]string   // group → organization
	members  map[string][]string // group → users
	managers map[string][]string // group → users
	asked    atomic.Int32        // ManagesGroup calls
	err      error               // returned by every call when set
}

func (f *fakeAccess) ManagesGroup(_ context.Context, orgID, groupID, userID string) (bool, error) {
	f.asked.Add(1)
	return f.in(f.managers, orgID, groupID, userID)
}

func (f *fakeAccess) IsMember(_ context.Context, orgID, groupID, userID string) (bool, error) {
	return f.in(f.members, orgID, groupID, userID)
}

func (f *fakeAccess) in(m map[string][]string, orgID, groupID, userID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groupOrg[groupID] == orgID && f.orgOf[userID] == orgID && slices.Contains(m[groupID], userID), f.err
}

func (f *fakeAccess) UserInOrganization(_ context.Context, orgID, userID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.orgOf[userID] == orgID, f.err
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

type env struct {
	svc    *assessment.Service
	db     *sqldb.DB
	access *fakeAccess
	clock  *atomic.Pointer[time.Time]
	// One organization with a group: its manager, a member (the evaluated user), a psychologist
	// holding results:write, a reader holding results:read and a plain user.
	org, group                                 string
	manager, evaluated, writer, reader, nobody assessment.Actor
	test                                       assessment.Test // active, scores {"anxiety": 0..100}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := sqldb.Open(t.Context(), testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), sqlstore.Migrations); err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, clock: new(atomic.Pointer[time.Time]), org: newID(), group: newID()}
	e.clock.Store(&now)
	e.access = &fakeAccess{orgOf: map[string]string{}, groupOrg: map[string]string{e.group: e.org},
		members: map[string][]string{}, managers: map[string][]string{}}
	// Every service test runs with results sealed at rest, as the server does.
	e.svc = assessment.NewService(sqlstore.New(db), e.access, assessment.Options{Now: func() time.Time { return *e.clock.Load() }, Sealer: testenv.NewSealer(t)})
	e.manager, e.evaluated = e.user(e.org), e.user(e.org)
	e.writer = e.user(e.org, assessment.PermResultsWrite)
	e.reader = e.user(e.org, assessment.PermResultsRead)
	e.nobody = e.user(e.org)
	e.access.managers[e.group] = []string{e.manager.UserID}
	e.access.members[e.group] = []string{e.evaluated.UserID}
	e.test = e.createTest(t, `{"type":"object","properties":{"anxiety":{"type":"integer","minimum":0,"maximum":100}},"required":["anxiety"]}`)
	return e
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// user adds an active user of the organization to the fake and returns them as an actor.
func (e *env) user(org string, perms ...string) assessment.Actor {
	a := assessment.Actor{UserID: newID(), OrgID: org, Perms: perms}
	e.access.orgOf[a.UserID] = org
	return a
}

func (e *env) set(at time.Time) { e.clock.Store(&at) }

var admin = assessment.Actor{UserID: newID(), Perms: []string{assessment.PermPlatformAdmin}}

func (e *env) createTest(t *testing.T, schema string) assessment.Test {
	t.Helper()
	test, err := e.svc.CreateTest(t.Context(), admin, assessment.NewTest{Name: "STAI", Version: "1", ScoreSchema: json.RawMessage(schema)})
	if err != nil {
		t.Fatalf("CreateTest: %v", err)
	}
	return test
}

// newResult is a valid result of the evaluated user, attached to the group.
func (e *env) newResult() assessment.NewResult {
	return assessment.NewResult{UserID: e.evaluated.UserID, TestID: e.test.ID, GroupID: e.group,
		Scores: json.RawMessage(`{"anxiety": 42}`), Answers: json.RawMessage(`[3, 1, 4]`), AppliedAt: now.Add(-time.Hour)}
}

func (e *env) createResult(t *testing.T, n assessment.NewResult) assessment.Result {
	t.Helper()
	r, err := e.svc.CreateResult(t.Context(), e.writer, n)
	if err != nil {
		t.Fatalf("CreateResult: %v", err)
	}
	return r
}

// fieldsOf returns the fields a validation error names, or fails the test if err is not one.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var v *assessment.ValidationError
	if !errors.As(err, &v) || !errors.Is(err, assessment.ErrInvalid) {
		t.Fatalf("got %v, want a validation error", err)
	}
	var fields []string
	for _, f := range v.Fields {
		fields = append(fields, f.Field)
	}
	return fields
}

// requireFields checks one case of a validation table: err is nil when fields is nil, otherwise
// a validation error on exactly these fields. It reports whether the input was accepted.
func requireFields(t *testing.T, err error, fields []string) bool {
	t.Helper()
	if fields == nil {
		if err != nil {
			t.Fatalf("got %v, want the input accepted", err)
		}
		return true
	}
	if got := fieldsOf(t, err); !slices.Equal(got, fields) {
		t.Errorf("fields %v, want %v (%v)", got, fields, err)
	}
	return false
}

func requireIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// TestPurgeExpiredResults is PORTARIA_RESULT_RETENTION: results applied more than the retention
// ago are gone for good, in every organization; younger ones stay; no retention purges nothing.
func TestPurgeExpiredResults(t *testing.T) {
	e := newEnv(t)
	old, young := e.newResult(), e.newResult()
	old.AppliedAt = now.Add(-100 * 24 * time.Hour)
	young.AppliedAt = now.Add(-89 * 24 * time.Hour)
	oldR, youngR := e.createResult(t, old), e.createResult(t, young)
	if n, err := e.svc.PurgeExpiredResults(t.Context(), 0); err != nil || n != 0 {
		t.Fatalf("no retention purged %d (%v)", n, err)
	}
	if n, err := e.svc.PurgeExpiredResults(t.Context(), 90*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("a 90-day retention purged %d (%v), want 1", n, err)
	}
	if _, err := e.svc.Result(t.Context(), e.reader, oldR.ID); !errors.Is(err, assessment.ErrNotFound) {
		t.Errorf("the result applied 100 days ago: %v, want ErrNotFound", err)
	}
	if _, err := e.svc.Result(t.Context(), e.reader, youngR.ID); err != nil {
		t.Errorf("the result applied 89 days ago: %v", err)
	}
	// A day later the clock has moved: the other one's turn comes at 90 days.
	e.set(now.Add(24*time.Hour + time.Second))
	if n, err := e.svc.PurgeExpiredResults(t.Context(), 90*24*time.Hour); err != nil || n != 1 {
		t.Errorf("a day later the purge deleted %d (%v), want 1", n, err)
	}
}
