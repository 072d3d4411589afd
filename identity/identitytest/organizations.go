package identitytest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

func newOrganization() identity.Organization {
	return identity.Organization{ID: uuid.Must(uuid.NewV7()).String(), Name: "Acme", Active: true, CreatedAt: at(0), UpdatedAt: at(time.Second)}
}

// createOrganization stores a new active organization and returns it.
func createOrganization(t *testing.T, s identity.Store) identity.Organization {
	t.Helper()
	o := newOrganization()
	if err := s.CreateOrganization(t.Context(), o); err != nil {
		t.Fatalf("CreateOrganization: %v", err)
	}
	return o
}

func getOrganization(t *testing.T, s identity.Store, id string) identity.Organization {
	t.Helper()
	o, err := s.Organization(t.Context(), id)
	if err != nil {
		t.Fatalf("Organization(%s): %v", id, err)
	}
	return o
}

func testCreateOrganization(t *testing.T, s identity.Store) {
	o := createOrganization(t, s)
	sameRecord(t, "organization", getOrganization(t, s, o.ID), o)

	inactive := newOrganization()
	inactive.Name, inactive.Active = `Ünïcödé "quoted" ; --`, false
	if err := s.CreateOrganization(t.Context(), inactive); err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "organization", getOrganization(t, s, inactive.ID), inactive)
}

func testUnknownOrganization(t *testing.T, s identity.Store) {
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := s.Organization(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("Organization: got %v, want ErrNotFound", err)
	}
	_, err := s.UpdateOrganization(t.Context(), id, func(o identity.Organization) (identity.Organization, error) {
		t.Error("updater called for an unknown organization")
		return o, nil
	})
	if !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UpdateOrganization: got %v, want ErrNotFound", err)
	}
}

func testDuplicateOrganization(t *testing.T, s identity.Store) {
	o := createOrganization(t, s)
	other := newOrganization()
	other.ID, other.Name = o.ID, "Impostor"
	if err := s.CreateOrganization(t.Context(), other); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	sameRecord(t, "organization", getOrganization(t, s, o.ID), o)
}

func testUpdateOrganization(t *testing.T, s identity.Store) {
	o := createOrganization(t, s)
	want := o
	want.Name, want.Active, want.UpdatedAt = "Acme Ltd", false, at(time.Hour)
	got, err := s.UpdateOrganization(t.Context(), o.ID, func(old identity.Organization) (identity.Organization, error) {
		sameRecord(t, "organization", old, o)
		changed := want
		changed.ID, changed.CreatedAt = "something else", at(-time.Hour) // ignored
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "organization", got, want)
	sameRecord(t, "organization", getOrganization(t, s, o.ID), want)
}

func testUpdateOrganizationAborts(t *testing.T, s identity.Store) {
	o := createOrganization(t, s)
	refused := errors.New("refused")
	_, err := s.UpdateOrganization(t.Context(), o.ID, func(old identity.Organization) (identity.Organization, error) {
		old.Active = false
		return old, refused
	})
	if !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
	sameRecord(t, "organization", getOrganization(t, s, o.ID), o)
}

func testListOrganizations(t *testing.T, s identity.Store) {
	var want []string
	for range 5 {
		want = append(want, createOrganization(t, s).ID)
	}
	inactive := newOrganization()
	inactive.Active = false
	if err := s.CreateOrganization(t.Context(), inactive); err != nil {
		t.Fatal(err)
	}
	want = append(want, inactive.ID)
	// Walk every page of two; the store may hold other organizations, ours must come in order.
	var got []string
	seen := map[string]bool{}
	after := ""
	for {
		page, err := s.Organizations(t.Context(), after, 2)
		if err != nil {
			t.Fatalf("Organizations: %v", err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, want at most 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			if o.ID <= after {
				t.Fatalf("id %s not after %s", o.ID, after)
			}
			if seen[o.ID] {
				t.Fatalf("id %s listed twice", o.ID)
			}
			seen[o.ID] = true
			after = o.ID
			if slices.Contains(want, o.ID) {
				got = append(got, o.ID)
				if o.ID == inactive.ID {
					sameRecord(t, "organization", o, inactive)
				}
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if page, err := s.Organizations(t.Context(), want[len(want)-1], 10); err != nil {
		t.Fatal(err)
	} else {
		for _, o := range page {
			if slices.Contains(want, o.ID) {
				t.Errorf("page after the last one holds %s", o.ID)
			}
		}
	}
}

func testUserIDsInOrganization(t *testing.T, s identity.Store) {
	a, b := createOrganization(t, s), createOrganization(t, s)
	u1, u2, other := newUser(a.ID), newUser(a.ID), newUser(b.ID)
	for _, u := range []identity.User{u1, u2, other} {
		createUser(t, s, u)
	}
	ids, err := s.UserIDsInOrganization(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || !slices.Contains(ids, u1.ID) || !slices.Contains(ids, u2.ID) {
		t.Errorf("users of the organization: %v, want %s and %s", ids, u1.ID, u2.ID)
	}
	if ids, err := s.UserIDsInOrganization(t.Context(), newOrganization().ID); err != nil || len(ids) != 0 {
		t.Errorf("an organization without users: %v %v", ids, err)
	}
}
