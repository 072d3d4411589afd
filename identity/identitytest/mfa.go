package identitytest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/portaria/portaria/identity"
)

// sealed returns opaque bytes standing for a sealed TOTP secret: the store never opens them.
func sealed(label string) []byte {
	return append([]byte{1, 0, 0xff}, label...)
}

func codeHashes(prefix string, n int) [][]byte {
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = fmt.Appendf(nil, "%s-%02d-0123456789abcdef0123456789", prefix, i)
	}
	return hs
}

func pendingTOTP(userID, label string) identity.TOTPState {
	return identity.TOTPState{UserID: userID, SecretSealed: sealed(label), CreatedAt: at(0), UpdatedAt: at(0)}
}

func putPending(t *testing.T, s identity.Store, st identity.TOTPState) {
	t.Helper()
	if err := s.PutPendingTOTP(t.Context(), st); err != nil {
		t.Fatalf("PutPendingTOTP: %v", err)
	}
}

func getTOTP(t *testing.T, s identity.Store, userID string) identity.TOTPState {
	t.Helper()
	st, err := s.TOTP(t.Context(), userID)
	if err != nil {
		t.Fatalf("TOTP(%s): %v", userID, err)
	}
	return st
}

func sameTOTP(t *testing.T, got, want identity.TOTPState) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TOTP state differs\n got: %#v\nwant: %#v", got, want)
	}
}

// enabledUser stores a user with 2FA on at step 100, with the recovery codes codeHashes("rc", 10).
func enabledUser(t *testing.T, s identity.Store) identity.User {
	t.Helper()
	u := newUser("")
	createUser(t, s, u)
	putPending(t, s, pendingTOTP(u.ID, "seed"))
	confirm(t, s, u.ID, sealed("seed"), 100, codeHashes("rc", 10), true)
	u.MFAEnabled = true
	return u
}

func confirm(t *testing.T, s identity.Store, userID string, secret []byte, step int64, hashes [][]byte, want bool) {
	t.Helper()
	ok, err := s.ConfirmTOTP(t.Context(), userID, secret, step, hashes, at(time.Minute))
	if err != nil || ok != want {
		t.Fatalf("ConfirmTOTP(step %d): got %v, %v; want %v", step, ok, err, want)
	}
}

func requireCodesLeft(t *testing.T, s identity.Store, userID string, want int) {
	t.Helper()
	if n, err := s.RecoveryCodesLeft(t.Context(), userID); err != nil || n != want {
		t.Errorf("RecoveryCodesLeft: got %d, %v; want %d", n, err, want)
	}
}

func testPendingTOTP(t *testing.T, s identity.Store) {
	u := newUser("")
	createUser(t, s, u)
	if _, err := s.TOTP(t.Context(), u.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("TOTP before enrolment: got %v, want ErrNotFound", err)
	}
	first := pendingTOTP(u.ID, "first")
	putPending(t, s, first)
	sameTOTP(t, getTOTP(t, s, u.ID), first)
	if got := getUser(t, s, u.ID); got.MFAEnabled {
		t.Error("a pending enrolment turned 2FA on")
	}

	second := pendingTOTP(u.ID, "second")
	second.CreatedAt, second.UpdatedAt = at(time.Hour), at(time.Hour)
	putPending(t, s, second)
	sameTOTP(t, getTOTP(t, s, u.ID), second)

	err := s.PutPendingTOTP(t.Context(), pendingTOTP(uuid.Must(uuid.NewV7()).String(), "x"))
	if !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("PutPendingTOTP for an unknown user: got %v, want ErrNotFound", err)
	}
}

func testConfirmTOTP(t *testing.T, s identity.Store) {
	u := newUser("")
	createUser(t, s, u)
	confirm(t, s, u.ID, sealed("seed"), 100, codeHashes("rc", 10), false) // nothing pending
	putPending(t, s, pendingTOTP(u.ID, "seed"))

	confirm(t, s, u.ID, sealed("replaced"), 100, codeHashes("rc", 10), false)
	confirm(t, s, u.ID, sealed("seed"), 0, codeHashes("rc", 10), false) // not after last_step 0
	if getTOTP(t, s, u.ID).Enabled() || getUser(t, s, u.ID).MFAEnabled {
		t.Fatal("a refused confirmation turned 2FA on")
	}
	requireCodesLeft(t, s, u.ID, 0)

	confirm(t, s, u.ID, sealed("seed"), 100, codeHashes("rc", 10), true)
	want := pendingTOTP(u.ID, "seed")
	want.ConfirmedAt, want.UpdatedAt, want.LastStep = at(time.Minute), at(time.Minute), 100
	sameTOTP(t, getTOTP(t, s, u.ID), want)
	u.MFAEnabled = true
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	requireUserByEmail(t, s, u.Email, u)
	requireCodesLeft(t, s, u.ID, 10)

	confirm(t, s, u.ID, sealed("seed"), 200, codeHashes("other", 10), false) // already on
	if err := s.PutPendingTOTP(t.Context(), pendingTOTP(u.ID, "new")); !errors.Is(err, identity.ErrExists) {
		t.Errorf("PutPendingTOTP with 2FA on: got %v, want ErrExists", err)
	}
	sameTOTP(t, getTOTP(t, s, u.ID), want)
}

func testAdvanceTOTPStep(t *testing.T, s identity.Store) {
	pending := newUser("")
	createUser(t, s, pending)
	putPending(t, s, pendingTOTP(pending.ID, "seed"))
	if ok, err := s.AdvanceTOTPStep(t.Context(), pending.ID, 5, at(0)); ok || err != nil {
		t.Errorf("advance a pending enrolment: got %v, %v; want false", ok, err)
	}
	if ok, err := s.AdvanceTOTPStep(t.Context(), uuid.Must(uuid.NewV7()).String(), 5, at(0)); ok || err != nil {
		t.Errorf("advance an unknown user: got %v, %v; want false", ok, err)
	}

	u := enabledUser(t, s)
	for _, c := range []struct {
		step int64
		want bool
	}{{99, false}, {100, false}, {101, true}, {101, false}, {103, true}, {102, false}} {
		ok, err := s.AdvanceTOTPStep(t.Context(), u.ID, c.step, at(time.Hour))
		if err != nil || ok != c.want {
			t.Errorf("advance to %d: got %v, %v; want %v", c.step, ok, err, c.want)
		}
	}
	if st := getTOTP(t, s, u.ID); st.LastStep != 103 || !st.UpdatedAt.Equal(at(time.Hour)) {
		t.Errorf("got last step %d at %v, want 103 at %v", st.LastStep, st.UpdatedAt, at(time.Hour))
	}
}

func testConcurrentAdvance(t *testing.T, s identity.Store) {
	u := enabledUser(t, s)
	const n = 20
	var won atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ok, err := s.AdvanceTOTPStep(t.Context(), u.ID, 101, at(time.Hour))
			if err != nil {
				t.Errorf("advance: %v", err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d of %d concurrent advances to one step won, want exactly 1", won.Load(), n)
	}
}

func testRecoveryCodeOnce(t *testing.T, s identity.Store) {
	u := enabledUser(t, s)
	other := enabledUser(t, s)
	code := codeHashes("rc", 10)[3]
	use := func(userID string, h []byte, want bool) {
		t.Helper()
		if ok, err := s.UseRecoveryCode(t.Context(), userID, h, at(time.Hour)); err != nil || ok != want {
			t.Errorf("UseRecoveryCode: got %v, %v; want %v", ok, err, want)
		}
	}
	use(u.ID, []byte("not a code"), false)
	use(u.ID, code, true)
	use(u.ID, code, false)
	requireCodesLeft(t, s, u.ID, 9)
	requireCodesLeft(t, s, other.ID, 10) // the same hash under another user is another code
	use(other.ID, code, true)

	var won atomic.Int64
	var wg sync.WaitGroup
	last := codeHashes("rc", 10)[9]
	for range 20 {
		wg.Go(func() {
			ok, err := s.UseRecoveryCode(t.Context(), u.ID, last, at(time.Hour))
			if err != nil {
				t.Errorf("UseRecoveryCode: %v", err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d of 20 concurrent uses of one recovery code won, want exactly 1", won.Load())
	}
	requireCodesLeft(t, s, u.ID, 8)
}

func testReplaceRecoveryCodes(t *testing.T, s identity.Store) {
	plain := newUser("")
	createUser(t, s, plain)
	if err := s.ReplaceRecoveryCodes(t.Context(), plain.ID, codeHashes("new", 10), at(0)); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("replace without 2FA: got %v, want ErrNotFound", err)
	}
	requireCodesLeft(t, s, plain.ID, 0)

	u := enabledUser(t, s)
	if ok, _ := s.UseRecoveryCode(t.Context(), u.ID, codeHashes("rc", 10)[0], at(0)); !ok {
		t.Fatal("a recovery code did not work")
	}
	if err := s.ReplaceRecoveryCodes(t.Context(), u.ID, codeHashes("new", 10), at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	requireCodesLeft(t, s, u.ID, 10)
	if ok, _ := s.UseRecoveryCode(t.Context(), u.ID, codeHashes("rc", 10)[1], at(time.Hour)); ok {
		t.Error("an old recovery code still works after the replacement")
	}
	if ok, _ := s.UseRecoveryCode(t.Context(), u.ID, codeHashes("new", 10)[0], at(time.Hour)); !ok {
		t.Error("a new recovery code does not work")
	}
}

func testDeleteTOTP(t *testing.T, s identity.Store) {
	u := enabledUser(t, s)
	kept := enabledUser(t, s)
	if err := s.DeleteTOTP(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TOTP(t.Context(), u.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("TOTP after delete: got %v, want ErrNotFound", err)
	}
	if getUser(t, s, u.ID).MFAEnabled {
		t.Error("2FA is still on after delete")
	}
	requireCodesLeft(t, s, u.ID, 0)
	if ok, err := s.UseRecoveryCode(t.Context(), u.ID, codeHashes("rc", 10)[0], at(0)); ok || err != nil {
		t.Errorf("a recovery code works after delete: %v, %v", ok, err)
	}
	if err := s.DeleteTOTP(t.Context(), u.ID); !errors.Is(err, identity.ErrNotFound) {
		t.Errorf("second delete: got %v, want ErrNotFound", err)
	}
	requireCodesLeft(t, s, kept.ID, 10)
	if !getUser(t, s, kept.ID).MFAEnabled {
		t.Error("deleting one user's 2FA turned off another's")
	}

	// A pending enrolment is removed the same way, and the user can enrol again.
	putPending(t, s, pendingTOTP(u.ID, "again"))
	if err := s.DeleteTOTP(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	putPending(t, s, pendingTOTP(u.ID, "again"))
}

func testUpdateUserKeepsMFA(t *testing.T, s identity.Store) {
	u := enabledUser(t, s)
	got, err := s.UpdateUser(t.Context(), u.ID, func(old identity.User) (identity.User, error) {
		if !old.MFAEnabled {
			t.Error("the updater got MFAEnabled false for a user with 2FA on")
		}
		old.Name, old.MFAEnabled = "Renamed", false
		return old, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	u.Name = "Renamed"
	sameRecord(t, "user", got, u)
	sameRecord(t, "user", getUser(t, s, u.ID), u)
	if !bytes.Equal(getTOTP(t, s, u.ID).SecretSealed, sealed("seed")) {
		t.Error("updating the user changed the TOTP secret")
	}
}
