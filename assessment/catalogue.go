package assessment

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Lengths of a test's texts, in code points.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 4000
	MaxVersionLength     = 50
)

// NewTest is what creating a test takes.
type NewTest struct {
	Name        string
	Description string
	Version     string
	ScoreSchema json.RawMessage
}

// TestUpdate is a change to a test; nil fields stay as they are. Results already recorded keep
// their scores when the schema changes: the schema is checked when scores are written.
type TestUpdate struct {
	Name        *string
	Description *string
	Version     *string
	ScoreSchema json.RawMessage
}

// CreateTest adds an active test to the catalogue. It needs platform:admin or tests:write.
func (s *Service) CreateTest(ctx context.Context, a Actor, n NewTest) (Test, error) {
	if !mayWriteTests(a) {
		return Test{}, fmt.Errorf("create test: %w", ErrForbidden)
	}
	var v ValidationError
	validateTestTexts(&v, n.Name, n.Description, n.Version)
	validateSchema(&v, n.ScoreSchema)
	if err := v.err(); err != nil {
		return Test{}, err
	}
	id, err := newID()
	if err != nil {
		return Test{}, fmt.Errorf("create test: %w", err)
	}
	now := s.timestamp()
	t := Test{ID: id, Name: n.Name, Description: n.Description, Version: n.Version,
		ScoreSchema: compact(n.ScoreSchema), Active: true, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateTest(ctx, t); err != nil {
		return Test{}, fmt.Errorf("create test: %w", err)
	}
	return t, nil
}

// Test returns a test the actor may see, or ErrNotFound.
func (s *Service) Test(ctx context.Context, a Actor, id string) (Test, error) {
	t, err := s.test(ctx, id)
	if err == nil && !maySeeTest(a, t) {
		err = ErrNotFound
	}
	if err != nil {
		return Test{}, fmt.Errorf("test %q: %w", id, err)
	}
	return t, nil
}

func (s *Service) test(ctx context.Context, id string) (Test, error) {
	if !isID(id) {
		return Test{}, ErrNotFound
	}
	return s.store.Test(ctx, id)
}

// ListTests returns one page of the catalogue in creation order, and the cursor of the next page
// ("" after the last). includeInactive adds the deactivated tests for those who may see them and
// is ignored for everyone else, who only ever see active tests.
func (s *Service) ListTests(ctx context.Context, a Actor, p Page, includeInactive bool) ([]Test, string, error) {
	after, limit, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	list, err := s.store.Tests(ctx, after, limit+1, includeInactive && mayWriteTests(a))
	if err != nil {
		return nil, "", fmt.Errorf("list tests: %w", err)
	}
	list, next := nextPage(list, limit, func(t Test) string { return t.ID })
	return list, next, nil
}

// UpdateTest changes a test's texts or schema. It needs platform:admin or tests:write.
func (s *Service) UpdateTest(ctx context.Context, a Actor, id string, u TestUpdate) (Test, error) {
	// Permission first: someone who may not change the catalogue learns nothing from validation.
	if !mayWriteTests(a) {
		return Test{}, fmt.Errorf("update test %q: %w", id, ErrForbidden)
	}
	if err := u.validate(); err != nil {
		return Test{}, err
	}
	t, err := s.changeTest(ctx, a, id, func(t *Test) {
		t.Name = deref(u.Name, t.Name)
		t.Description = deref(u.Description, t.Description)
		t.Version = deref(u.Version, t.Version)
		if u.ScoreSchema != nil {
			t.ScoreSchema = compact(u.ScoreSchema)
		}
	})
	if err != nil {
		return Test{}, fmt.Errorf("update test %q: %w", id, err)
	}
	return t, nil
}

// validate checks the fields the update sets: those it leaves were checked when they were set.
func (u TestUpdate) validate() error {
	var v ValidationError
	if u.Name != nil {
		validateText(&v, "name", *u.Name, MaxNameLength, false)
	}
	if u.Description != nil {
		validateText(&v, "description", *u.Description, MaxDescriptionLength, true)
	}
	if u.Version != nil {
		validateText(&v, "version", *u.Version, MaxVersionLength, false)
	}
	if u.ScoreSchema != nil {
		validateSchema(&v, u.ScoreSchema)
	}
	return v.err()
}

// deref is *p, or otherwise when p is nil: the value of an update's optional field.
func deref[T any](p *T, otherwise T) T {
	if p == nil {
		return otherwise
	}
	return *p
}

// DeactivateTest takes a test out of the catalogue: no new result can use it, and only those who
// may change the catalogue still see it. Its results stay. Deactivating twice is not an error.
func (s *Service) DeactivateTest(ctx context.Context, a Actor, id string) error {
	_, err := s.changeTest(ctx, a, id, func(t *Test) { t.Active = false })
	if err != nil {
		return fmt.Errorf("deactivate test %q: %w", id, err)
	}
	return nil
}

// changeTest is the read-modify-write of a test by someone who may change the catalogue.
func (s *Service) changeTest(ctx context.Context, a Actor, id string, change func(*Test)) (Test, error) {
	if !mayWriteTests(a) {
		return Test{}, ErrForbidden
	}
	if !isID(id) {
		return Test{}, ErrNotFound
	}
	return s.store.UpdateTest(ctx, id, func(t Test) (Test, error) {
		change(&t)
		t.UpdatedAt = s.timestamp()
		return t, nil
	})
}

func validateTestTexts(v *ValidationError, name, description, version string) {
	validateText(v, "name", name, MaxNameLength, false)
	validateText(v, "description", description, MaxDescriptionLength, true)
	validateText(v, "version", version, MaxVersionLength, false)
}

// validateText checks one text field. Only a description may be blank or span several lines.
func validateText(v *ValidationError, field, s string, max int, multiline bool) {
	unsafe := unsafeRune
	if multiline {
		unsafe = func(r rune) bool { return r != '\n' && r != '\t' && unsafeRune(r) }
	}
	switch {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case !multiline && strings.TrimSpace(s) == "":
		v.add(field, "must not be blank")
	case utf8.RuneCountInString(s) > max:
		v.add(field, "must be at most %d characters", max)
	case strings.ContainsFunc(s, unsafe):
		v.add(field, "must not contain control or bidirectional formatting characters")
	}
}

// unsafeRune reports characters that can make a text display as something it is not: control
// characters and the bidirectional overrides and isolates.
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

func validateSchema(v *ValidationError, schema json.RawMessage) {
	switch {
	case len(schema) == 0:
		v.add("score_schema", "is required")
	case len(schema) > MaxJSONBytes:
		v.add("score_schema", "must be at most %d bytes", MaxJSONBytes)
	default:
		if _, err := compileSchema(schema); err != nil {
			v.add("score_schema", "%s", err)
		}
	}
}
