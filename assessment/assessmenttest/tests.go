package assessmenttest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
)

func newTest() assessment.Test {
	return assessment.Test{
		ID:          newID(),
		Name:        "Big Five Inventory",
		Description: "Personality traits.\nFive factors.",
		Version:     "2.1",
		ScoreSchema: raw(`{"type":"object","properties":{"openness":{"type":"number"}}}`),
		Active:      true,
		CreatedAt:   at(0),
		UpdatedAt:   at(time.Second),
	}
}

func createTest(t *testing.T, s assessment.Store, test assessment.Test) {
	t.Helper()
	if err := s.CreateTest(t.Context(), test); err != nil {
		t.Fatalf("CreateTest: %v", err)
	}
}

func getTest(t *testing.T, s assessment.Store, id string) assessment.Test {
	t.Helper()
	test, err := s.Test(t.Context(), id)
	if err != nil {
		t.Fatalf("Test(%s): %v", id, err)
	}
	return test
}

func testCreateTest(t *testing.T, s assessment.Store) {
	test := newTest()
	test.Name = `Ünïcödé "quoted" 'name' ; -- 日本`
	createTest(t, s, test)
	sameRecord(t, "test", getTest(t, s, test.ID), test)

	inactive := newTest()
	inactive.Active, inactive.Description = false, ""
	createTest(t, s, inactive)
	sameRecord(t, "test", getTest(t, s, inactive.ID), inactive)
}

func testUnknownTest(t *testing.T, s assessment.Store) {
	_, err := s.Test(t.Context(), newID())
	requireNotFound(t, "Test", err)
	_, err = s.UpdateTest(t.Context(), newID(), func(test assessment.Test) (assessment.Test, error) {
		t.Error("updater called for an unknown test")
		return test, nil
	})
	requireNotFound(t, "UpdateTest", err)
}

func testDuplicateTest(t *testing.T, s assessment.Store) {
	test := newTest()
	createTest(t, s, test)
	other := newTest()
	other.ID, other.Name = test.ID, "Impostor"
	if err := s.CreateTest(t.Context(), other); !errors.Is(err, assessment.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	sameRecord(t, "test", getTest(t, s, test.ID), test)
}

func testListTests(t *testing.T, s assessment.Store) {
	var all []assessment.Test
	for i := range 5 {
		test := newTest()
		test.Name = fmt.Sprintf("test %d", i)
		test.Active = i%2 == 0
		all = append(all, test)
	}
	// Created out of order: the list is ordered by id, not by insertion.
	for _, i := range []int{3, 0, 4, 1, 2} {
		createTest(t, s, all[i])
	}
	active := slices.DeleteFunc(slices.Clone(all), func(t assessment.Test) bool { return !t.Active })
	for _, tc := range []struct {
		includeInactive bool
		want            []assessment.Test
	}{{true, all}, {false, active}} {
		var got []assessment.Test
		after := ""
		for {
			page, err := s.Tests(t.Context(), after, 2, tc.includeInactive)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].ID
		}
		sameRecord(t, fmt.Sprintf("list (inactive included: %v)", tc.includeInactive), got, tc.want)
	}
}

func testUpdateTest(t *testing.T, s assessment.Store) {
	test := newTest()
	createTest(t, s, test)
	want := test
	want.Name, want.Description, want.Version = "BFI-2", "", "3"
	want.ScoreSchema, want.Active, want.UpdatedAt = raw(`{"type":"object"}`), false, at(time.Hour)
	got, err := s.UpdateTest(t.Context(), test.ID, func(old assessment.Test) (assessment.Test, error) {
		sameRecord(t, "test", old, test)
		changed := want
		changed.ID, changed.CreatedAt = "something else", at(-time.Hour) // ignored
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "test", got, want)
	sameRecord(t, "test", getTest(t, s, test.ID), want)
}

func testUpdateTestAborts(t *testing.T, s assessment.Store) {
	test := newTest()
	createTest(t, s, test)
	refused := errors.New("refused")
	_, err := s.UpdateTest(t.Context(), test.ID, func(old assessment.Test) (assessment.Test, error) {
		old.Active = false
		return old, fmt.Errorf("no: %w", refused)
	})
	if !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
	sameRecord(t, "test", getTest(t, s, test.ID), test)
}
