package identity_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
)

// storedHash reads a user's hash straight from the store.
func (e env) storedHash(t *testing.T, id string) string {
	t.Helper()
	u, err := e.store.User(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

func (e env) createUser(t *testing.T, n identity.NewUser) identity.User {
	t.Helper()
	u, err := e.svc.CreateUser(t.Context(), n)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func TestDefaultHashFormat(t *testing.T) {
	e := newEnv(t, func(o *identity.Options) { o.Password = identity.PasswordParams{} })
	u := e.createUser(t, staff())
	hash := e.storedHash(t, u.ID)
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(hash) {
		t.Errorf("stored hash %q is not argon2id with OWASP parameters, a 16-byte salt and a 32-byte key", hash)
	}
	if strings.Contains(hash, staff().Password) {
		t.Error("the hash holds the password")
	}
	other := e.createUser(t, identity.NewUser{Email: "other@example.test", Name: "Other", Password: staff().Password})
	if otherHash := e.storedHash(t, other.ID); otherHash[:40] == hash[:40] {
		t.Errorf("two hashes of one password share their salt: %q and %q", hash, otherHash)
	}
	if _, err := e.svc.Authenticate(t.Context(), u.Email, staff().Password); err != nil {
		t.Errorf("login at the default parameters: %v", err)
	}
}

func TestRaisedParametersRehashAtLogin(t *testing.T) {
	e := newEnv(t)
	u := e.createUser(t, staff())
	old := e.storedHash(t, u.ID)
	if !strings.HasPrefix(old, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q not made with the test parameters", old)
	}

	raised := newEnv(t) // only for its counter
	svc := identity.NewService(e.store, identity.Options{
		Pepper: pepper, Password: identity.PasswordParams{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		OnHash: func() { raised.hashes.Add(1) },
	})
	t.Run("a failed login leaves the old hash", func(t *testing.T) {
		if _, err := svc.Authenticate(t.Context(), u.Email, "not the password"); err != identity.ErrInvalidCredentials {
			t.Fatalf("got %v", err)
		}
		if got := e.storedHash(t, u.ID); got != old {
			t.Errorf("hash changed to %q", got)
		}
	})
	t.Run("the next successful login rewrites the hash with the new parameters", func(t *testing.T) {
		n := raised.countHashes(func() {
			if _, err := svc.Authenticate(t.Context(), u.Email, staff().Password); err != nil {
				t.Fatal(err)
			}
		})
		if n != 2 {
			t.Errorf("%d hashes, want 2: one check and one new hash", n)
		}
		if got := e.storedHash(t, u.ID); !strings.HasPrefix(got, "$argon2id$v=19$m=128,t=2,p=1$") {
			t.Errorf("hash %q, want it rewritten with m=128,t=2", got)
		}
	})
	t.Run("then logins hash once and keep the hash", func(t *testing.T) {
		before := e.storedHash(t, u.ID)
		n := raised.countHashes(func() {
			if _, err := svc.Authenticate(t.Context(), u.Email, staff().Password); err != nil {
				t.Fatal(err)
			}
		})
		if n != 1 || e.storedHash(t, u.ID) != before {
			t.Errorf("%d hashes, hash changed %v", n, e.storedHash(t, u.ID) != before)
		}
	})
	t.Run("a service with the old parameters still accepts the new hash", func(t *testing.T) {
		if _, err := e.svc.Authenticate(t.Context(), u.Email, staff().Password); err != nil {
			t.Error(err)
		}
	})
}

func TestHashingSlotsBoundConcurrency(t *testing.T) {
	var mu sync.Mutex
	inside, most := 0, 0
	e := newEnv(t, func(o *identity.Options) {
		o.HashSlots, o.HashWait = 1, time.Millisecond
		o.OnHash = func() {
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // a slow hash, holding the only slot
			mu.Lock()
			inside--
			mu.Unlock()
		}
	})
	u := e.createUser(t, staff())

	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			password := staff().Password
			if i%2 == 1 {
				password = "wrong password"
			}
			_, errs[i] = e.svc.Authenticate(t.Context(), u.Email, password)
		})
	}
	wg.Wait()
	busy := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, identity.ErrBusy):
			busy++
		case err == nil && i%2 == 0, err == identity.ErrInvalidCredentials && i%2 == 1:
		default:
			t.Errorf("login %d: unexpected %v", i, err)
		}
	}
	if busy == 0 || busy == n {
		t.Errorf("%d of %d logins got ErrBusy, want some but not all", busy, n)
	}
	if most != 1 {
		t.Errorf("%d hashes ran at once, want at most 1", most)
	}

	t.Run("a check beyond the waiting queue is busy at once", func(t *testing.T) {
		entered, release := make(chan struct{}, 2), make(chan struct{})
		e := newEnv(t)
		u := e.createUser(t, staff())
		blocked := identity.NewService(e.store, identity.Options{Pepper: pepper, Password: cheap, HashSlots: 1, HashQueue: 1,
			HashWait: time.Minute, OnHash: func() { entered <- struct{}{}; <-release }})
		var wg sync.WaitGroup
		wg.Go(func() { blocked.Authenticate(t.Context(), u.Email, staff().Password) })
		<-entered // the only slot is taken
		// Two more checks: one waits in the queue (one place), the other is refused at once.
		results := make(chan error, 2)
		for range 2 {
			go func() { _, err := blocked.Authenticate(t.Context(), u.Email, staff().Password); results <- err }()
		}
		select {
		case err := <-results:
			if !errors.Is(err, identity.ErrBusy) {
				t.Errorf("the check beyond the queue: got %v, want ErrBusy", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("no check was refused while one waited in the full queue")
		}
		close(release)
		wg.Wait()
		if err := <-results; err != nil {
			t.Errorf("the check that waited in the queue: %v", err)
		}
	})

	t.Run("a cancelled wait ends with the context's error", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		e := newEnv(t, func(o *identity.Options) { o.HashSlots, o.HashWait = 1, time.Minute })
		u := e.createUser(t, staff())
		blocked := identity.NewService(e.store, identity.Options{Pepper: pepper, Password: cheap, HashSlots: 1, HashWait: time.Minute,
			OnHash: func() { entered <- struct{}{}; <-release }})
		var wg sync.WaitGroup
		wg.Go(func() { blocked.Authenticate(t.Context(), u.Email, staff().Password) })
		<-entered // the only slot is taken
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := blocked.Authenticate(ctx, u.Email, staff().Password)
		close(release)
		wg.Wait()
		if !errors.Is(err, context.Canceled) || errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestPasswordPolicy(t *testing.T) {
	e := newEnv(t)
	u := e.createUser(t, identity.NewUser{Email: "carla.dias@example.test", Name: "Carla Dias", Active: true})
	tests := []struct {
		name     string
		password string
		ok       bool
	}{
		{"a 64-character passphrase is accepted", "correct horse battery staple, then a few more words to reach 64", true},
		{"15 lower-case letters are accepted", "qzjmxkwvbrtplfn", true},
		{"exactly 8 characters are accepted", "Tq8#vLm2", true},
		{"exactly 128 characters are accepted", strings.Repeat("abcdefgh", 16), true},
		{"128 multi-byte characters are accepted", strings.Repeat("パス", 64), true},
		{"a password with no letters is accepted", "8271-4409 5513", true},
		{"7 characters are refused", "Tq8#vLm", false},
		{"an empty password is refused", "", false},
		{"129 characters are refused", strings.Repeat("abcdefgh", 16) + "x", false},
		{"a megabyte is refused", strings.Repeat("x", 1<<20), false},
		{"password123 is refused", "password123", false},
		{"12345678 is refused", "12345678", false},
		{"iloveyou is refused", "iloveyou", false},
		{"a common password in capitals is refused", "PASSWORD123", false},
		{"a common password followed by digits and a symbol is refused", "sunshine2024!", false},
		{"a common password in fullwidth letters is refused", "ｐａｓｓｗｏｒｄ１２３", false},
		{"one character repeated is refused", "aaaaaaaaaaaaaaaa", false},
		{"the e-mail address is refused", "Carla.Dias@Example.test", false},
		{"the e-mail's local part is refused", "carla.dias", false},
		{"invalid UTF-8 is refused", "abcdefgh\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := e.countHashes(func() { err = e.svc.SetPassword(t.Context(), u.ID, tt.password) })
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if n != 1 {
					t.Errorf("%d hashes, want 1", n)
				}
				if _, err := e.svc.Authenticate(t.Context(), u.Email, tt.password); err != nil {
					t.Errorf("cannot log in with it: %v", err)
				}
				return
			}
			if got := fieldsOf(t, err); len(got) != 1 || got[0] != "password" {
				t.Errorf("fields %v, want [password]", got)
			}
			if n != 0 {
				t.Errorf("a refused password cost %d hashes, want 0", n)
			}
		})
	}
}

func TestPasswordsAreVerifiedExactly(t *testing.T) {
	e := newEnv(t)
	x72 := strings.Repeat("x", 72)
	tests := []struct {
		name       string
		set, tryOK string
		wrong      []string
	}{
		{name: "a 73-byte password is not truncated", set: x72 + "A", tryOK: x72 + "A", wrong: []string{x72 + "B", x72, x72 + "a"}},
		{name: "Å as one code point and as A with a combining ring are one password",
			set: "p\u00e5ssord-\u00c5-longo", tryOK: "pa\u030assord-A\u030a-longo", wrong: []string{"passord-A-longo"}},
		{name: "the Ångström sign is Å too", set: "\u00c5ngstr\u00f6m-unit-x", tryOK: "\u212bngstr\u00f6m-unit-x"},
		{name: "case matters", set: "CaseMatters-1942", tryOK: "CaseMatters-1942", wrong: []string{"casematters-1942", "CASEMATTERS-1942"}},
		{name: "spaces are kept", set: " spaced out words ", tryOK: " spaced out words ", wrong: []string{"spaced out words", " spaced out words"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := staff()
			n.Email = fmt.Sprintf("user%d@example.test", i)
			n.Password = tt.set
			u := e.createUser(t, n)
			if _, err := e.svc.Authenticate(t.Context(), u.Email, tt.tryOK); err != nil {
				t.Errorf("%q does not log in: %v", tt.tryOK, err)
			}
			for _, w := range tt.wrong {
				if _, err := e.svc.Authenticate(t.Context(), u.Email, w); err != identity.ErrInvalidCredentials {
					t.Errorf("%q: got %v, want ErrInvalidCredentials", w, err)
				}
			}
		})
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := newEnv(t)
	password := staff().Password
	org, err := e.svc.CreateOrganization(t.Context(), "Closing")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(email string, edit func(*identity.NewUser)) identity.User {
		n := staff()
		n.Email = email
		edit(&n)
		return e.createUser(t, n)
	}
	mk("ok@example.test", func(*identity.NewUser) {})
	mk("inactive@example.test", func(n *identity.NewUser) { n.Active = false })
	mk("nopassword@example.test", func(n *identity.NewUser) { n.Password = "" })
	mk("member@example.test", func(n *identity.NewUser) { n.OrgID, n.Permissions = org.ID, nil })
	if err := e.svc.SetOrganizationActive(t.Context(), org.ID, false); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name            string
		email, password string
	}{
		{"an unknown e-mail", "nobody@example.test", password},
		{"a wrong password", "ok@example.test", password + "!"},
		{"an empty password", "ok@example.test", ""},
		{"a deactivated user", "inactive@example.test", password},
		{"a user without a password", "nopassword@example.test", ""},
		{"a user without a password, given one", "nopassword@example.test", password},
		{"a user of a deactivated organization", "member@example.test", password},
		{"an e-mail that cannot exist", "bad\x00@example.test", password},
		{"an empty e-mail", "", password},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is invalid credentials after exactly one hash", func(t *testing.T) {
			var err error
			n := e.countHashes(func() { _, err = e.svc.Authenticate(t.Context(), tt.email, tt.password) })
			if err != identity.ErrInvalidCredentials {
				t.Errorf("got %#v, want the ErrInvalidCredentials value itself", err)
			}
			if n != 1 {
				t.Errorf("%d hashes, want 1", n)
			}
		})
	}
	t.Run("a password over 128 characters fails without hashing", func(t *testing.T) {
		for _, p := range []string{strings.Repeat("a", 129), strings.Repeat("a", 1<<20), "\xff\xfe"} {
			var err error
			n := e.countHashes(func() { _, err = e.svc.Authenticate(t.Context(), "ok@example.test", p) })
			if err != identity.ErrInvalidCredentials || n != 0 {
				t.Errorf("%d bytes: got %v after %d hashes, want ErrInvalidCredentials after none", len(p), err, n)
			}
		}
	})
	t.Run("the right password logs in after exactly one hash", func(t *testing.T) {
		var u identity.User
		var err error
		n := e.countHashes(func() { u, err = e.svc.Authenticate(t.Context(), "OK@example.test", password) })
		if err != nil || u.Email != "ok@example.test" || u.PasswordHash != "" || n != 1 {
			t.Errorf("got %+v, %v after %d hashes", u, err, n)
		}
	})
}

func TestExpiredPassword(t *testing.T) {
	e := newEnv(t)
	u := e.createUser(t, staff())
	if err := e.svc.ExpirePassword(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	t.Run("the right password still authenticates, flagged expired", func(t *testing.T) {
		got, err := e.svc.Authenticate(t.Context(), u.Email, staff().Password)
		if err != nil || !got.PasswordExpired {
			t.Errorf("got %+v, %v; want the user with PasswordExpired", got, err)
		}
	})
	t.Run("a wrong password gets the usual answer", func(t *testing.T) {
		if _, err := e.svc.Authenticate(t.Context(), u.Email, "wrong password"); err != identity.ErrInvalidCredentials {
			t.Errorf("got %v", err)
		}
	})
	t.Run("setting a password clears the flag and records the time", func(t *testing.T) {
		later := now.Add(48 * time.Hour)
		svc := identity.NewService(e.store, identity.Options{Pepper: pepper, Password: cheap, Now: func() time.Time { return later }})
		if err := svc.SetPassword(t.Context(), u.ID, "a brand new passphrase"); err != nil {
			t.Fatal(err)
		}
		got, err := svc.Authenticate(t.Context(), u.Email, "a brand new passphrase")
		if err != nil || got.PasswordExpired || !got.PasswordChangedAt.Equal(later.Truncate(time.Microsecond)) {
			t.Errorf("got %+v, %v", got, err)
		}
		if _, err := svc.Authenticate(t.Context(), u.Email, staff().Password); err != identity.ErrInvalidCredentials {
			t.Errorf("the old password: got %v", err)
		}
	})
}

func TestCheckPassword(t *testing.T) {
	e := newEnv(t)
	u := e.createUser(t, staff())
	bare := e.createUser(t, identity.NewUser{Email: "bare@example.test", Name: "Bare"})
	if err := e.svc.SetUserActive(t.Context(), u.ID, false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, password string
		ok                 bool
	}{
		{"the current password passes, even for an inactive user", u.ID, staff().Password, true},
		{"a wrong password fails", u.ID, "wrong password", false},
		{"a user without a password fails", bare.ID, "", false},
		{"an unknown user fails", "0190a4b2-0000-7000-8000-000000000000", staff().Password, false},
		{"an id that cannot exist fails", "nope", staff().Password, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" after one hash", func(t *testing.T) {
			var err error
			n := e.countHashes(func() { err = e.svc.CheckPassword(t.Context(), tt.id, tt.password) })
			if (tt.ok && err != nil) || (!tt.ok && err != identity.ErrInvalidCredentials) || n != 1 {
				t.Errorf("got %v after %d hashes", err, n)
			}
		})
	}
}

// downUsers fails as an unreachable database does.
type downUsers struct{ identity.Store }

func (downUsers) UserByEmail(context.Context, string) (identity.User, error) {
	return identity.User{}, fmt.Errorf("%w: connection refused", identity.ErrUnavailable)
}

func TestAuthenticateWithStoreDown(t *testing.T) {
	svc := identity.NewService(downUsers{}, identity.Options{Pepper: pepper, Password: cheap})
	_, err := svc.Authenticate(t.Context(), "ana@example.test", "a long enough passphrase")
	if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("got %v, want ErrUnavailable and not ErrInvalidCredentials", err)
	}
}

func TestNewServiceRefusesBadPasswordParameters(t *testing.T) {
	for _, p := range []identity.PasswordParams{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 4, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%+v: no panic", p)
				}
			}()
			identity.NewService(downUsers{}, identity.Options{Pepper: pepper, Password: p})
		}()
	}
}
