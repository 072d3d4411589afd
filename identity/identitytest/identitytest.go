// Package identitytest is the conformance suite of identity.Store: every backend's tests call Run.
package identitytest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

// Run tests a Store. newStore returns an empty store, migrated.
func Run(t *testing.T, newStore func(t *testing.T) identity.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s identity.Store)
	}{
		{"a created client reads back exactly", testCreateAndGet},
		{"a public client reads back without a secret hash", testPublicClient},
		{"unusual grant and scope strings round-trip", testUnusualStrings},
		{"an unknown id is not found", testUnknownID},
		{"a duplicate id is refused", testDuplicateID},
		{"the list holds every client ordered by id", testList},
		{"a deleted client is gone", testDelete},
		{"an update persists a new secret hash and keeps id and creation time", testUpdate},
		{"an updater error aborts the update", testUpdateAborts},
		{"concurrent updates are not lost", testConcurrentUpdates},
		{"org_id must name an existing organization", testOrganizationKey},

		{"a created organization reads back exactly", testCreateOrganization},
		{"an unknown organization is not found", testUnknownOrganization},
		{"a duplicate organization id is refused", testDuplicateOrganization},
		{"an organization update persists and keeps id and creation time", testUpdateOrganization},
		{"an organization updater error aborts the update", testUpdateOrganizationAborts},
		{"organizations list in id order, page after page", testListOrganizations},
		{"an organization's users are listed by id, nobody else's", testUserIDsInOrganization},

		{"a created user reads back exactly by id and by normalised e-mail", testCreateUser},
		{"a user without password, organization or permissions reads back exactly", testBareUser},
		{"unusual user strings round-trip", testUnusualUserStrings},
		{"an unknown user is not found", testUnknownUser},
		{"a duplicate user id is refused", testDuplicateUserID},
		{"e-mails are unique once normalised", testUniqueEmail},
		{"a user's org_id must name an existing organization", testUserOrganizationKey},
		{"a user update persists every field and keeps id and creation time", testUpdateUser},
		{"an update to another user's e-mail is refused", testUpdateUserEmailTaken},
		{"a user updater error aborts the update", testUpdateUserAborts},
		{"concurrent user updates are not lost", testConcurrentUserUpdates},

		{"a pending TOTP enrolment reads back and a new one replaces it", testPendingTOTP},
		{"confirming needs the pending secret and a later step, and turns 2FA on with its codes", testConfirmTOTP},
		{"the TOTP step only moves forward, and only with 2FA on", testAdvanceTOTPStep},
		{"of concurrent advances to one TOTP step exactly one wins", testConcurrentAdvance},
		{"a recovery code works once, for its own user, even under concurrency", testRecoveryCodeOnce},
		{"replacing recovery codes voids the old ones and needs 2FA on", testReplaceRecoveryCodes},
		{"deleting TOTP turns 2FA off and removes the recovery codes", testDeleteTOTP},
		{"a user update neither changes nor forgets MFAEnabled", testUpdateUserKeepsMFA},

		{"a created field reads back exactly, alone and in its organization's list", testFieldRoundTrip},
		{"another organization's field is not found, changed or deleted", testFieldTenant},
		{"field names are unique within an organization", testFieldNameUnique},
		{"a field update persists and keeps id, organization, type and creation time", testFieldUpdate},
		{"deleting a field removes its values", testDeleteFieldRemovesValues},
		{"custom field values round-trip through create and update", testUserFieldValues},
		{"users list by organization, text, activity, permission and field value, page after page", testUserQueries},
		{"an organization user update counts the other active administrators", testLastAdminCount},
		{"of two concurrent demotions of the last two administrators one is refused", testConcurrentDemotions},
		{"a user is found through their own organization only", testOrganizationUser},

		{"a created group reads back exactly; an unknown id, a taken id and a missing organization fail", testCreateGroup},
		{"a group update changes name and description only, and only through its organization", testUpdateGroup},
		{"a soft-deleted group disappears from reads, lists and links", testDeleteGroup},
		{"an organization's groups list in id order, page after page, nobody else's", testListGroups},
		{"members and managers are separate links, added and removed idempotently", testGroupLinks},
		{"links need a live group and an active user of the same organization", testGroupLinksStayInTheOrganization},
		{"concurrent adds of the same member neither fail nor duplicate", testConcurrentGroupLinks},
		{"a group's members list in user id order, page after page", testPageGroupUsers},
		{"a user's groups list in group id order, page after page, only in their organization", testPageUserGroups},
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

func newClient(t *testing.T) identity.Client {
	t.Helper()
	return identity.Client{
		ID:         uuid.Must(uuid.NewV7()).String(),
		Name:       "Back office",
		Grants:     []string{identity.GrantPassword, identity.GrantRefreshToken},
		Scopes:     []string{"results:read", "openid"},
		AccessTTL:  10 * time.Minute,
		RefreshTTL: 48 * time.Hour,
		SecretHash: []byte("0123456789abcdef0123456789abcdef"),
		CreatedAt:  at(0),
		UpdatedAt:  at(time.Second),
	}
}

func create(t *testing.T, s identity.Store, c identity.Client) {
	t.Helper()
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
}

func get(t *testing.T, s identity.Store, id string) identity.Client {
	t.Helper()
	c, err := s.Client(t.Context(), id)
	if err != nil {
		t.Fatalf("Client(%s): %v", id, err)
	}
	return c
}

func testCreateAndGet(t *testing.T, s identity.Store) {
	c := newClient(t)
	create(t, s, c)
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func testPublicClient(t *testing.T, s identity.Store) {
	c := newClient(t)
	c.Public, c.SecretHash, c.Scopes, c.AccessTTL, c.RefreshTTL = true, nil, []string{}, 0, 0
	create(t, s, c)
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func testUnusualStrings(t *testing.T, s identity.Store) {
	// The store stores what it is given; validation is the Service's.
	c := newClient(t)
	c.Name = `Ünïcödé "quoted" 'name' ; -- 日本`
	c.Grants = []string{"b", "a", "urn:portaria:grant-type:mfa"}
	c.Scopes = []string{"z", "a:b/c", `"quoted"`, "x,y", "[]"}
	create(t, s, c)
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func testUnknownID(t *testing.T, s identity.Store) {
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := s.Client(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("Client: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteClient(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("DeleteClient: got %v, want ErrNotFound", err)
	}
	_, err := s.UpdateClient(t.Context(), id, func(c identity.Client) (identity.Client, error) {
		t.Error("updater called for an unknown client")
		return c, nil
	})
	if !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UpdateClient: got %v, want ErrNotFound", err)
	}
}

func testDuplicateID(t *testing.T, s identity.Store) {
	c := newClient(t)
	create(t, s, c)
	other := newClient(t)
	other.ID, other.Name = c.ID, "Impostor"
	if err := s.CreateClient(t.Context(), other); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func testList(t *testing.T, s identity.Store) {
	got, err := s.Clients(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: got %v, %v; want no clients", got, err)
	}
	var want []identity.Client
	for i := range 3 {
		c := newClient(t)
		c.Name = fmt.Sprintf("client %d", i)
		want = append(want, c)
	}
	// Created out of order: the list is ordered by id, not by insertion.
	for _, i := range []int{2, 0, 1} {
		create(t, s, want[i])
	}
	got, err = s.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func testDelete(t *testing.T, s identity.Store) {
	c, kept := newClient(t), newClient(t)
	create(t, s, c)
	create(t, s, kept)
	if err := s.DeleteClient(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(t.Context(), c.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteClient(t.Context(), c.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
	sameRecord(t, "client", get(t, s, kept.ID), kept)
}

func testUpdate(t *testing.T, s identity.Store) {
	c := newClient(t)
	create(t, s, c)
	want := c
	want.SecretHash = []byte("fedcba9876543210fedcba9876543210")
	want.UpdatedAt = at(time.Hour)
	got, err := s.UpdateClient(t.Context(), c.ID, func(old identity.Client) (identity.Client, error) {
		sameRecord(t, "client", old, c)
		changed := want
		changed.ID, changed.CreatedAt = "something else", at(-time.Hour) // ignored
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "client", got, want)
	sameRecord(t, "client", get(t, s, c.ID), want)
}

func testUpdateAborts(t *testing.T, s identity.Store) {
	c := newClient(t)
	create(t, s, c)
	refused := errors.New("refused")
	_, err := s.UpdateClient(t.Context(), c.ID, func(old identity.Client) (identity.Client, error) {
		old.SecretHash = nil
		return old, fmt.Errorf("no: %w", refused)
	})
	if !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func testConcurrentUpdates(t *testing.T, s identity.Store) {
	c := newClient(t)
	c.Scopes = []string{}
	create(t, s, c)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateClient(t.Context(), c.ID, func(old identity.Client) (identity.Client, error) {
				old.Scopes = append(old.Scopes, fmt.Sprintf("s%d", i))
				return old, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := get(t, s, c.ID).Scopes; len(got) != n {
		t.Errorf("got scopes %v, want all %d updates kept", got, n)
	}
}

func testOrganizationKey(t *testing.T, s identity.Store) {
	org := createOrganization(t, s)

	c := newClient(t)
	c.OrgID = org.ID
	create(t, s, c)
	sameRecord(t, "client", get(t, s, c.ID), c)

	missing := newClient(t)
	missing.OrgID = uuid.Must(uuid.NewV7()).String()
	err := s.CreateClient(t.Context(), missing)
	requireOrgIDInvalid(t, "CreateClient", err)
	if _, err := s.Client(t.Context(), missing.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("refused client was stored: %v", err)
	}

	_, err = s.UpdateClient(t.Context(), c.ID, func(old identity.Client) (identity.Client, error) {
		old.OrgID = missing.OrgID
		return old, nil
	})
	requireOrgIDInvalid(t, "UpdateClient", err)
	sameRecord(t, "client", get(t, s, c.ID), c)
}

func requireOrgIDInvalid(t *testing.T, op string, err error) {
	t.Helper()
	var v *identity.ValidationError
	if !errors.Is(err, identity.ErrInvalid) || !errors.As(err, &v) || len(v.Fields) != 1 || v.Fields[0].Field != "org_id" {
		t.Errorf("%s with an unknown organization: got %v, want a validation error on org_id", op, err)
	}
}

// sameRecord fails the test when a record read back differs from the one written.
func sameRecord[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s differs\n got: %#v\nwant: %#v", what, got, want)
	}
}
