package identitytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

// newUser returns a user of org ("" for platform staff) with every field set. The hash is an
// opaque string to the store.
func newUser(org string) identity.User {
	id := uuid.Must(uuid.NewV7()).String()
	return identity.User{
		ID:                id,
		OrgID:             org,
		Email:             "Ana.Silva+" + id[24:] + "@Example.test",
		Name:              "Ana Silva",
		Active:            true,
		EmailVerified:     true,
		Permissions:       []string{identity.PermUsersRead, identity.PermResultsWrite},
		PasswordExpired:   true,
		PasswordChangedAt: at(-time.Minute),
		CreatedAt:         at(0),
		UpdatedAt:         at(time.Second),
		PasswordHash:      "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
		Fields:            map[string]json.RawMessage{},
	}
}

func createUser(t *testing.T, s identity.Store, u identity.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
}

func getUser(t *testing.T, s identity.Store, id string) identity.User {
	t.Helper()
	u, err := s.User(t.Context(), id)
	if err != nil {
		t.Fatalf("User(%s): %v", id, err)
	}
	return u
}

func requireUserByEmail(t *testing.T, s identity.Store, email string, want identity.User) {
	t.Helper()
	got, err := s.UserByEmail(t.Context(), identity.NormalizeEmail(email))
	if err != nil {
		t.Fatalf("UserByEmail(%q): %v", email, err)
	}
	sameRecord(t, "user", got, want)
}

func testCreateUser(t *testing.T, s identity.Store) {
	u := newUser(createOrganization(t, s).ID)
	createUser(t, s, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	requireUserByEmail(t, s, u.Email, u)
}

func testBareUser(t *testing.T, s identity.Store) {
	u := newUser("")
	u.Permissions, u.PasswordHash, u.PasswordChangedAt = []string{}, "", time.Time{}
	u.Active, u.EmailVerified, u.PasswordExpired = false, false, false
	createUser(t, s, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
}

func testUnusualUserStrings(t *testing.T, s identity.Store) {
	u := newUser("")
	u.Email = `o'brien;--@ÜNÏCÖDÉ.test`
	u.Name = `Ünïcödé "quoted" 'name' ; -- 日本`
	u.Permissions = []string{`"quoted"`, "x,y", "[]"}
	createUser(t, s, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	requireUserByEmail(t, s, `O'BRIEN;--@ünïcödé.TEST`, u)
}

func testUnknownUser(t *testing.T, s identity.Store) {
	createUser(t, s, newUser(""))
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := s.User(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("User: got %v, want ErrNotFound", err)
	}
	if _, err := s.UserByEmail(t.Context(), "nobody@example.test"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UserByEmail: got %v, want ErrNotFound", err)
	}
	_, err := s.UpdateUser(t.Context(), id, func(u identity.User) (identity.User, error) {
		t.Error("updater called for an unknown user")
		return u, nil
	})
	if !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UpdateUser: got %v, want ErrNotFound", err)
	}
}

func testDuplicateUserID(t *testing.T, s identity.Store) {
	u := newUser("")
	createUser(t, s, u)
	other := newUser("")
	other.ID = u.ID
	if err := s.CreateUser(t.Context(), other); !errors.Is(err, identity.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	sameRecord(t, "user", getUser(t, s, u.ID), u)
}

func testUniqueEmail(t *testing.T, s identity.Store) {
	first := newUser("")
	first.Email = "ﬀ@x.test" // U+FB00, LATIN SMALL LIGATURE FF
	createUser(t, s, first)
	for _, email := range []string{"ff@x.test", "FF@x.test", "Ff@X.TEST", " ff@x.test "} {
		other := newUser("")
		other.Email = email
		if err := s.CreateUser(t.Context(), other); !errors.Is(err, identity.ErrExists) {
			t.Errorf("%q: got %v, want ErrExists", email, err)
		}
		if _, err := s.User(t.Context(), other.ID); !errors.Is(err, identity.ErrNotFound) {
			t.Errorf("%q: the refused user was stored: %v", email, err)
		}
		requireUserByEmail(t, s, email, first)
	}
	if _, err := s.UserByEmail(t.Context(), "ﬀ@x.test"); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("UserByEmail takes the normalised e-mail: got %v for the raw one, want ErrNotFound", err)
	}
}

func testUserOrganizationKey(t *testing.T, s identity.Store) {
	u := newUser(createOrganization(t, s).ID)
	createUser(t, s, u)

	missing := newUser(uuid.Must(uuid.NewV7()).String())
	requireOrgIDInvalid(t, "CreateUser", s.CreateUser(t.Context(), missing))
	if _, err := s.User(t.Context(), missing.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("refused user was stored: %v", err)
	}

	_, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		old.OrgID = missing.OrgID
		return old, nil
	})
	requireOrgIDInvalid(t, "UpdateUser", err)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
}

func testUpdateUser(t *testing.T, s identity.Store) {
	u := newUser("")
	createUser(t, s, u)
	want := identity.User{
		ID:                u.ID,
		OrgID:             createOrganization(t, s).ID,
		Email:             "New.Address@Example.test",
		Name:              "Ana Souza",
		Permissions:       []string{identity.PermOrgAdmin},
		PasswordChangedAt: at(time.Minute),
		CreatedAt:         u.CreatedAt,
		UpdatedAt:         at(time.Hour),
		PasswordHash:      "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3a2V5",
		Fields:            map[string]json.RawMessage{},
	}
	got, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		sameRecord(t, "user", old, u)
		changed := want
		changed.ID, changed.CreatedAt = "something else", at(-time.Hour) // ignored
		return changed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "user", got, want)
	sameRecord(t, "user", getUser(t, s, u.ID), want)
	requireUserByEmail(t, s, "new.address@example.TEST", want)
	if _, err := s.UserByEmail(t.Context(), identity.NormalizeEmail(u.Email)); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("the old e-mail still finds the user: %v", err)
	}

	// And back to no password and no organization.
	want.OrgID, want.PasswordHash, want.PasswordChangedAt, want.Permissions = "", "", time.Time{}, []string{}
	if _, err := s.UpdateUser(t.Context(), u.ID, func(identity.User) (identity.User, error) { return want, nil }); err != nil {
		t.Fatal(err)
	}
	sameRecord(t, "user", getUser(t, s, u.ID), want)
}

func testUpdateUserEmailTaken(t *testing.T, s identity.Store) {
	u, other := newUser(""), newUser("")
	createUser(t, s, u)
	createUser(t, s, other)
	_, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		old.Email = "  " + other.Email + " "
		return old, nil
	})
	if !errors.Is(err, identity.ErrExists) {
		t.Errorf("got %v, want ErrExists", err)
	}
	sameRecord(t, "user", getUser(t, s, u.ID), u)
}

func testUpdateUserAborts(t *testing.T, s identity.Store) {
	u := newUser("")
	createUser(t, s, u)
	refused := errors.New("refused")
	_, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		old.PasswordHash = ""
		return old, fmt.Errorf("no: %w", refused)
	})
	if !errors.Is(err, refused) {
		t.Errorf("got %v, want the updater's error", err)
	}
	sameRecord(t, "user", getUser(t, s, u.ID), u)
}

func testConcurrentUserUpdates(t *testing.T, s identity.Store) {
	u := newUser("")
	u.Permissions = []string{}
	createUser(t, s, u)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
				old.Permissions = append(old.Permissions, fmt.Sprintf("p%d", i))
				return old, nil
			})
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := getUser(t, s, u.ID).Permissions; len(got) != n {
		t.Errorf("got permissions %v, want all %d updates kept", got, n)
	}
}
