// Package assessmenttest is the conformance suite of assessment.Store: every backend's tests call Run.
package assessmenttest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/assessment"
)

// Run tests a Store. newStore returns an empty store, migrated.
func Run(t *testing.T, newStore func(t *testing.T) assessment.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s assessment.Store)
	}{
		{"a created test reads back exactly", testCreateTest},
		{"an unknown test is not found", testUnknownTest},
		{"a duplicate test id is refused", testDuplicateTest},
		{"tests list in id order, page after page, inactive ones only when asked", testListTests},
		{"a test update persists and keeps id and creation time", testUpdateTest},
		{"a test updater error aborts the update", testUpdateTestAborts},

		{"a created result reads back exactly", testCreateResult},
		{"a result without group, answers or feedback date reads back exactly", testBareResult},
		{"JSON documents round-trip byte for byte", testJSONRoundTrip},
		{"a result must name an existing test", testResultTestKey},
		{"a duplicate result id is refused", testDuplicateResult},
		{"another organization's result is not found by any method", testOrganizationPredicate},
		{"a result's organization is found by id alone, and nothing else", testResultOrganization},
		{"a deleted result disappears from every read and list", testSoftDelete},
		{"of concurrent deletes exactly one succeeds", testConcurrentDelete},
		{"results list by user and by group in id order, page after page", testListResults},
		{"the released filter keeps results whose feedback date has come, the instant included", testReleasedFilter},
		{"an update persists what may change and keeps what may not", testUpdateResults},
		{"an updater error on one result changes none of them", testUpdateResultsAborts},
		{"one missing id changes nothing and is named", testUpdateResultsMissing},
		{"concurrent bulk updates are all or nothing and none is lost", testConcurrentBulkUpdates},
		{"bulk updates racing a delete either change every result or none", testBulkUpdateRacingDelete},
		{"a purge deletes results applied before its time, in batches, of every organization", testPurgeResults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

// at is a timestamp as the Service makes them: UTC, whole microseconds.
func at(offset time.Duration) time.Time {
	return time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC).Add(offset)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// sameRecord fails the test when a record read back differs from the one written.
func sameRecord[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s differs\n got: %#v\nwant: %#v", what, got, want)
	}
}

func requireNotFound(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, assessment.ErrNotFound) {
		t.Errorf("%s: got %v, want ErrNotFound", op, err)
	}
}

// ids are the IDs of records, in their order.
func ids[T any](list []T, id func(T) string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = id(v)
	}
	return out
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }
