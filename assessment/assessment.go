// Package assessment holds the psychological tests of the platform's catalogue and the results
// people obtain in them: the domain types, their validation, the Store contract every backend
// implements, the rules of who may see and change what (access.go), and the Service that applies
// them. It imports no other domain: what it needs to know about users and groups it asks through
// the Access interface, which the identity service satisfies.
package assessment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the package. Callers match them with errors.Is; the messages are not for end users.
var (
	// ErrNotFound: no such test or result, or one the actor must not learn exists (another
	// organization's result, an inactive test for a reader of the catalogue).
	ErrNotFound = errors.New("assessment: not found")
	// ErrForbidden: the record is in the actor's own organization (or is a catalogue entry), but
	// the actor's permissions do not allow the operation.
	ErrForbidden = errors.New("assessment: forbidden")
	// ErrExists: a record with the same ID already exists.
	ErrExists = errors.New("assessment: already exists")
	// ErrInvalid: the input breaks a rule; a *ValidationError says which fields and why.
	ErrInvalid = errors.New("assessment: invalid input")
	// ErrUnavailable: the store could not be reached; callers fail closed (503).
	ErrUnavailable = errors.New("assessment: store unavailable")
)

// FieldError is one broken rule: Field is the input's JSON name, Message completes the sentence
// that starts with it ("scores" + "must be valid JSON").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every broken rule of one input, so that a caller can fix them all at once.
// It matches ErrInvalid with errors.Is, as identity's does, so that one error writer maps both.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns e, or nil when no rule was broken (never a typed nil inside an error).
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// MissingError names the record of a multi-record operation that does not exist (or is deleted,
// or is another organization's), so that the caller can say which one. It matches ErrNotFound.
type MissingError struct {
	ID string
}

func (e *MissingError) Error() string { return fmt.Sprintf("assessment: %s not found", e.ID) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// Test is one psychological test of the platform-wide catalogue. ScoreSchema is a JSON Schema
// (draft 2020-12) that every result's scores must satisfy.
type Test struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Version     string          `json:"version"`
	ScoreSchema json.RawMessage `json:"score_schema"`
	Active      bool            `json:"active"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// Result is what one user obtained in one test. It belongs to the user's organization. A deleted
// result never leaves the store again: reads and lists skip it, so the type has no deletion time.
type Result struct {
	ID      string          `json:"id"`
	OrgID   string          `json:"org_id"`
	UserID  string          `json:"user_id"`
	TestID  string          `json:"test_id"`
	GroupID string          `json:"group_id,omitempty"` // "" when the result is attached to no group
	Scores  json.RawMessage `json:"scores"`
	// Answers are the raw answers, nil when none were recorded or the reader may not see them.
	Answers   json.RawMessage `json:"answers,omitempty"`
	AppliedAt time.Time       `json:"applied_at"`
	// FeedbackAt is when the evaluated user receives feedback (the "devolutiva") and from which
	// they may read the result; zero while no date is set.
	FeedbackAt time.Time `json:"feedback_at,omitzero"`
	CreatedBy  string    `json:"created_by"` // the user who recorded the result
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Store is everything the assessment domain persists; each backend passes the assessmenttest
// conformance suite. It stores what it is given: validation and access rules are the Service's.
type Store interface {
	TestStore
	ResultStore
}

// TestStore persists the catalogue.
type TestStore interface {
	// CreateTest stores a new test, or fails with ErrExists if the ID is taken.
	CreateTest(ctx context.Context, t Test) error
	// Test returns the test with the given ID, active or not, or ErrNotFound.
	Test(ctx context.Context, id string) (Test, error)
	// Tests returns at most limit tests whose ID is greater than after ("" for the first page),
	// ordered by ID; inactive ones only when includeInactive.
	Tests(ctx context.Context, after string, limit int, includeInactive bool) ([]Test, error)
	// UpdateTest reads the test, passes it to update and stores the result as one atomic step.
	// ID and CreatedAt cannot change. An error from update aborts and is returned as is.
	UpdateTest(ctx context.Context, id string, update func(Test) (Test, error)) (Test, error)
}

// ResultStore persists results. Every method but ResultOrganization takes the organization, and
// every query it runs is restricted to it: a result of another organization is not found.
// Deleted results are not found either.
type ResultStore interface {
	// CreateResult stores a new result. It fails with ErrExists if the ID is taken and with a
	// *ValidationError on "test_id" if TestID names no test.
	CreateResult(ctx context.Context, r Result) error
	// Result returns the organization's result with the given ID, or ErrNotFound.
	Result(ctx context.Context, orgID, id string) (Result, error)
	// ResultOrganization returns the organization of the result with the given ID, or
	// ErrNotFound. It reveals nothing else: platform administrators act across organizations and
	// need it to name the organization of every other call.
	ResultOrganization(ctx context.Context, id string) (string, error)
	// Results returns one page of the organization's results that match f, ordered by ID.
	Results(ctx context.Context, f ResultFilter) ([]Result, error)
	// UpdateResults reads the organization's results with the given IDs, passes each to update
	// and stores them, all in one transaction: either every result changes or none does. An
	// unknown ID fails with a *MissingError naming it; an error from update aborts everything and
	// is returned as is. ID, OrgID, UserID, TestID, GroupID, CreatedBy and CreatedAt cannot
	// change.
	// It returns the updated results in the order of ids.
	UpdateResults(ctx context.Context, orgID string, ids []string, update func(Result) (Result, error)) ([]Result, error)
	// DeleteResult marks the organization's result deleted at the given time: it disappears from
	// reads and lists, and its scores and answers are erased; the rest of the row stays in the
	// database. It fails with ErrNotFound if there is no such
	// result or it is already deleted, so that of concurrent deletes exactly one succeeds.
	DeleteResult(ctx context.Context, orgID, id string, at time.Time) error
	// PurgeResults deletes for good, row and all, at most limit results of any organization
	// applied before the given time, deleted or not, and returns how many it deleted (the
	// retention of PORTARIA_RESULT_RETENTION).
	PurgeResults(ctx context.Context, appliedBefore time.Time, limit int) (int, error)
}

// ResultFilter selects one page of an organization's results.
type ResultFilter struct {
	OrgID   string // required
	UserID  string // "" for any user
	GroupID string // "" for any group (or none)
	// ReleasedAt, when not zero, keeps only results whose FeedbackAt is set and not after it:
	// those the evaluated user may read at that instant.
	ReleasedAt time.Time
	After      string // the ID to continue after, "" for the first page
	Limit      int
}

// Page limits of lists (SPEC §5).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// Page asks for one page of a list: at most Limit items (DefaultPageLimit when 0) after the
// opaque Cursor of the previous page ("" for the first).
type Page struct {
	Limit  int
	Cursor string
}
