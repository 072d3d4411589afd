package identity_test

import (
	"bytes"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// clock is a settable time source; t0 is 5 s into a TOTP step.
type clock struct{ ns atomic.Int64 }

var t0 = time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }
func (c *clock) code(t *testing.T, secret string, offset time.Duration) string {
	t.Helper()
	return totpCode(t, secret, c.now().Add(offset))
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// newMFAEnv is newEnv with a Sealer and a settable clock starting at t0.
func newMFAEnv(t *testing.T, edits ...func(*identity.Options)) (env, *clock) {
	t.Helper()
	clk := new(clock)
	clk.set(t0)
	e := newEnv(t, append([]func(*identity.Options){func(o *identity.Options) {
		o.Sealer, o.Now = testenv.NewSealer(t), clk.now
	}}, edits...)...)
	return e, clk
}

const testPassword = "a long enough passphrase"

// enrolled creates a user and turns 2FA on with a code of the current step; it returns the user,
// the Base32 secret and the recovery codes.
func enrolled(t *testing.T, e env, clk *clock, email string) (identity.User, string, []string) {
	t.Helper()
	n := staff()
	n.Email = email
	u := e.createUser(t, n)
	enrolment, err := e.svc.BeginTOTP(t.Context(), u.ID)
	if err != nil {
		t.Fatalf("BeginTOTP: %v", err)
	}
	codes, err := e.svc.ConfirmTOTP(t.Context(), u.ID, clk.code(t, enrolment.Secret, 0))
	if err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	return u, enrolment.Secret, codes
}

func (e env) requireMFA(t *testing.T, userID string, on bool) {
	t.Helper()
	u, err := e.svc.User(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	methods, err := e.svc.MFAMethods(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{}
	if on {
		want = []string{identity.MFAMethodTOTP, identity.MFAMethodRecoveryCode}
	}
	if u.MFAEnabled != on || fmt.Sprint(methods) != fmt.Sprint(want) || methods == nil {
		t.Errorf("got MFAEnabled %v and methods %#v; want %v and %#v", u.MFAEnabled, methods, on, want)
	}
}

func TestTOTPEnrolment(t *testing.T) {
	e, clk := newMFAEnv(t)
	u := e.createUser(t, staff())
	e.requireMFA(t, u.ID, false)

	enrolment, err := e.svc.BeginTOTP(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(enrolment.Secret)
	if err != nil || len(seed) != 20 {
		t.Errorf("secret %q: %d bytes, %v; want 160 bits of Base32", enrolment.Secret, len(seed), err)
	}
	uri, err := url.Parse(enrolment.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := uri.Query()
	if uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Path != "/Portaria:"+u.Email ||
		q.Get("secret") != enrolment.Secret || q.Get("issuer") != "Portaria" || q.Get("algorithm") != "SHA1" ||
		q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Errorf("unexpected URI %s", enrolment.URI)
	}
	img, err := png.Decode(bytes.NewReader(enrolment.QRPNG))
	if err != nil {
		t.Fatalf("the QR code is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dx() != b.Dy() {
		t.Errorf("QR code of %v, want a square large enough to scan", b)
	}
	e.requireMFA(t, u.ID, false) // pending is not on

	wrong := clk.code(t, enrolment.Secret, 5*time.Minute)
	if _, err := e.svc.ConfirmTOTP(t.Context(), u.ID, wrong); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("confirm with a wrong code: got %v, want ErrInvalidOTP", err)
	}
	e.requireMFA(t, u.ID, false)

	code := clk.code(t, enrolment.Secret, 0)
	codes, err := e.svc.ConfirmTOTP(t.Context(), u.ID, code)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != identity.RecoveryCodeCount {
		t.Errorf("got %d recovery codes, want %d", len(codes), identity.RecoveryCodeCount)
	}
	e.requireMFA(t, u.ID, true)
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, code); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("the confirmation code works again for login: %v", err)
	}
	clk.add(30 * time.Second)
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, clk.code(t, enrolment.Secret, 0)); err != nil {
		t.Errorf("the next step's code: %v", err)
	}
	if _, err := e.svc.ConfirmTOTP(t.Context(), u.ID, clk.code(t, enrolment.Secret, 30*time.Second)); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("confirm with 2FA on: got %v, want ErrInvalid", err)
	}
}

func TestBeginTOTP(t *testing.T) {
	t.Run("is refused while 2FA is on", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u, secret, _ := enrolled(t, e, clk, "ana@example.test")
		_, err := e.svc.BeginTOTP(t.Context(), u.ID)
		var v *identity.ValidationError
		if !errors.Is(err, identity.ErrInvalid) || !errors.As(err, &v) || v.Fields[0].Field != "totp" {
			t.Errorf("got %v, want a validation error on totp", err)
		}
		clk.add(30 * time.Second)
		if err := e.svc.VerifyTOTP(t.Context(), u.ID, clk.code(t, secret, 0)); err != nil {
			t.Errorf("the refused enrolment changed the secret: %v", err)
		}
	})
	t.Run("again replaces the pending enrolment", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u := e.createUser(t, staff())
		first, err := e.svc.BeginTOTP(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.svc.BeginTOTP(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if first.Secret == second.Secret {
			t.Fatal("the same secret twice")
		}
		if _, err := e.svc.ConfirmTOTP(t.Context(), u.ID, clk.code(t, first.Secret, 0)); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("confirm with the replaced secret: got %v, want ErrInvalidOTP", err)
		}
		if _, err := e.svc.ConfirmTOTP(t.Context(), u.ID, clk.code(t, second.Secret, 0)); err != nil {
			t.Errorf("confirm with the new secret: %v", err)
		}
	})
	t.Run("names the configured issuer", func(t *testing.T) {
		e, _ := newMFAEnv(t, func(o *identity.Options) { o.TOTPIssuer = "Acme Login" })
		u := e.createUser(t, staff())
		enrolment, err := e.svc.BeginTOTP(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if key, err := otp.NewKeyFromURL(enrolment.URI); err != nil || key.Issuer() != "Acme Login" || key.AccountName() != u.Email {
			t.Errorf("URI %s: want issuer Acme Login and account %s (%v)", enrolment.URI, u.Email, err)
		}
	})
	t.Run("fails without a sealer", func(t *testing.T) {
		e := newEnv(t)
		u := e.createUser(t, staff())
		if _, err := e.svc.BeginTOTP(t.Context(), u.ID); err == nil {
			t.Error("BeginTOTP succeeded without a Sealer")
		}
	})
	t.Run("of an unknown user is not found", func(t *testing.T) {
		e, _ := newMFAEnv(t)
		for _, id := range []string{"01963f6e-0000-7000-8000-000000000000", "nope"} {
			if _, err := e.svc.BeginTOTP(t.Context(), id); !errors.Is(err, identity.ErrNotFound) {
				t.Errorf("BeginTOTP(%q): got %v, want ErrNotFound", id, err)
			}
		}
	})
}

func TestConfirmTOTPWithoutEnrolment(t *testing.T) {
	e, _ := newMFAEnv(t)
	u := e.createUser(t, staff())
	if _, err := e.svc.ConfirmTOTP(t.Context(), u.ID, "123456"); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
	e.requireMFA(t, u.ID, false)
}

func TestNewServiceRefusesAnIssuerWithAColon(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	identity.NewService(nil, identity.Options{Pepper: pepper, Password: cheap, TOTPIssuer: "Acme:Login"})
}

func TestTOTPWindow(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"a code of two steps ago is refused", -60 * time.Second, false},
		{"a code of the previous step is accepted", -30 * time.Second, true},
		{"a code of the current step is accepted", 0, true},
		{"a code of the next step is accepted", 30 * time.Second, true},
		{"a code of two steps ahead is refused", 60 * time.Second, false},
		{"a code of an hour ago is refused", -time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, clk := newMFAEnv(t)
			u, secret, _ := enrolled(t, e, clk, "ana@example.test")
			clk.add(10 * time.Minute)
			err := e.svc.VerifyTOTP(t.Context(), u.ID, clk.code(t, secret, tt.offset))
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, identity.ErrInvalidOTP) {
				t.Errorf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestTOTPAcrossClockSkew is RL-05's TOTP part: the window is one step either side, by step
// number, so a server 40 s ahead of the device accepts its code when the server is at least 10 s
// into its step (the device's code is then of the previous step) and refuses it earlier (two
// steps back); 70 s ahead is refused at any point of the step.
func TestTOTPAcrossClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name        string
		intoStep    time.Duration // where the server's clock is in its 30 s step
		serverAhead time.Duration
		accepted    bool
	}{
		{"40 s ahead, 25 s into the step", 25 * time.Second, 40 * time.Second, true},
		{"40 s ahead, 10 s into the step", 10 * time.Second, 40 * time.Second, true},
		{"40 s ahead, 5 s into the step", 5 * time.Second, 40 * time.Second, false},
		{"70 s ahead, 29 s into the step", 29 * time.Second, 70 * time.Second, false},
		{"70 s ahead, 5 s into the step", 5 * time.Second, 70 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, clk := newMFAEnv(t)
			u, secret, _ := enrolled(t, e, clk, "ana@example.test")
			clk.add(10*time.Minute + tc.intoStep - 5*time.Second) // t0 is 5 s into its step
			err := e.svc.VerifyTOTP(t.Context(), u.ID, clk.code(t, secret, -tc.serverAhead))
			if tc.accepted && err != nil || !tc.accepted && !errors.Is(err, identity.ErrInvalidOTP) {
				t.Errorf("got %v, want accepted %v", err, tc.accepted)
			}
		})
	}
}

func TestTOTPCodeWorksOnce(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, secret, _ := enrolled(t, e, clk, "ana@example.test")
	clk.add(time.Minute)
	code := clk.code(t, secret, 0)
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, code); err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Second) // same step, as a second session would send it
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, code); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("the same code twice: got %v, want ErrInvalidOTP (PW-05)", err)
	}

	// After a code of the next step, the current step's code (still in the window) is spent too.
	clk.add(time.Minute)
	next, current := clk.code(t, secret, 30*time.Second), clk.code(t, secret, 0)
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, next); err != nil {
		t.Fatal(err)
	}
	if next != current {
		if err := e.svc.VerifyTOTP(t.Context(), u.ID, current); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("a code of a step before the last accepted one: got %v, want ErrInvalidOTP", err)
		}
	}
}

func TestTOTPConcurrentSubmissions(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, secret, _ := enrolled(t, e, clk, "ana@example.test")
	clk.add(time.Minute)
	code := clk.code(t, secret, 0)
	const n = 50
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			switch err := e.svc.VerifyTOTP(t.Context(), u.ID, code); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, identity.ErrInvalidOTP):
				refused.Add(1)
			default:
				t.Errorf("VerifyTOTP: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != n-1 {
		t.Errorf("%d accepted and %d refused of %d concurrent submissions of one code; want exactly 1 accepted", ok.Load(), refused.Load(), n)
	}
}

func TestVerifyTOTPRefusals(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, secret, _ := enrolled(t, e, clk, "ana@example.test")
	pending := staff()
	pending.Email = "pending@example.test"
	p := e.createUser(t, pending)
	pendingEnrolment, err := e.svc.BeginTOTP(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	plain := staff()
	plain.Email = "plain@example.test"
	q := e.createUser(t, plain)
	clk.add(time.Minute)
	code := clk.code(t, secret, 0)
	tests := []struct {
		name, userID, code string
	}{
		{"a user without 2FA", q.ID, code},
		{"a user whose enrolment is pending", p.ID, clk.code(t, pendingEnrolment.Secret, 0)},
		{"an unknown user", "01963f6e-0000-7000-8000-000000000000", code},
		{"an id that is not one", "nope", code},
		{"an empty code", u.ID, ""},
		{"a code of five digits", u.ID, code[:5]},
		{"a code of seven digits", u.ID, code + "0"},
		{"a code with letters", u.ID, "12345a"},
		{"a code of non-ASCII digits", u.ID, "١٢٣٤٥٦"},
	}
	for _, tt := range tests {
		if err := e.svc.VerifyTOTP(t.Context(), tt.userID, tt.code); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("%s: got %v, want ErrInvalidOTP", tt.name, err)
		}
	}
	// Spaces as authenticator apps show them are fine.
	if err := e.svc.VerifyTOTP(t.Context(), u.ID, " "+code[:3]+" "+code[3:]+" "); err != nil {
		t.Errorf("a code with spaces: %v", err)
	}
}

func TestTOTPSecretIsSealed(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, secret, _ := enrolled(t, e, clk, "ana@example.test")
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	n := scanRows(t, e.db, "user_totp", func(column, text string) {
		if strings.Contains(strings.ToUpper(text), secret) || strings.Contains(text, string(seed)) ||
			strings.Contains(text, base32.StdEncoding.EncodeToString(seed)) {
			t.Errorf("column %s holds the TOTP secret", column)
		}
	})
	if n != 1 {
		t.Fatalf("scanned %d rows, want 1", n)
	}

	// The sealed secret is bound to its user: copied to another user's row, it does not open.
	other, _, _ := enrolled(t, e, clk, "bob@example.test")
	if _, err := e.db.ExecContext(t.Context(),
		"UPDATE user_totp SET secret_sealed = (SELECT secret_sealed FROM user_totp WHERE user_id = ?) WHERE user_id = ?", u.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	if err := e.svc.VerifyTOTP(t.Context(), other.ID, clk.code(t, secret, 0)); err == nil || errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("a secret moved to another user: got %v, want a failure to open it", err)
	}
}

// scanRows calls check with every column of every row of table, as text (byte columns as their
// raw bytes), and returns how many rows it scanned.
func scanRows(t *testing.T, db *sqldb.DB, table string, check func(column, text string)) int {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			text := fmt.Sprint(v)
			if b, ok := v.([]byte); ok {
				text = string(b)
			}
			check(cols[i], text)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

var recoveryCodeFormat = regexp.MustCompile(`^[a-z2-7]{5}-[a-z2-7]{5}$`)

func TestRecoveryCodes(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, _, codes := enrolled(t, e, clk, "ana@example.test")
	other, _, otherCodes := enrolled(t, e, clk, "bob@example.test")

	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryCodeFormat.MatchString(c) {
			t.Errorf("code %q is not xxxxx-xxxxx in lower-case base32", c)
		}
		if seen[c] {
			t.Errorf("code %q given twice", c)
		}
		seen[c] = true
	}
	rows := scanRows(t, e.db, "user_recovery_codes", func(column, text string) {
		for _, c := range append(codes, otherCodes...) {
			if strings.Contains(strings.ToLower(text), strings.ReplaceAll(c, "-", "")) || strings.Contains(text, c) {
				t.Errorf("column %s holds the recovery code %s", column, c)
			}
		}
	})
	if rows != 2*identity.RecoveryCodeCount {
		t.Errorf("scanned %d rows, want %d", rows, 2*identity.RecoveryCodeCount)
	}

	if err := e.svc.UseRecoveryCode(t.Context(), u.ID, otherCodes[0]); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("another user's code: got %v, want ErrInvalidOTP", err)
	}
	// Each works once, however it is typed.
	forms := []func(string) string{
		func(c string) string { return c },
		strings.ToUpper,
		func(c string) string { return strings.ReplaceAll(c, "-", "") },
		func(c string) string { return "  " + strings.ToUpper(c[:3]) + c[3:] + "\n" },
	}
	for i, c := range codes {
		typed := forms[i%len(forms)](c)
		if err := e.svc.UseRecoveryCode(t.Context(), u.ID, typed); err != nil {
			t.Errorf("code %d typed %q: %v", i, typed, err)
		}
		if err := e.svc.UseRecoveryCode(t.Context(), u.ID, c); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("code %d a second time: got %v, want ErrInvalidOTP", i, err)
		}
		if left, err := e.svc.RecoveryCodesLeft(t.Context(), u.ID); err != nil || left != len(codes)-i-1 {
			t.Errorf("after %d codes: %d left (%v), want %d", i+1, left, err, len(codes)-i-1)
		}
	}
	for _, bad := range []string{"", "abcde-fghij-k", "abcde-fghi1", "0bcde-fghij", "abcde_fghij"} {
		if err := e.svc.UseRecoveryCode(t.Context(), other.ID, bad); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("%q: got %v, want ErrInvalidOTP", bad, err)
		}
	}
	if left, _ := e.svc.RecoveryCodesLeft(t.Context(), other.ID); left != identity.RecoveryCodeCount {
		t.Errorf("the other user has %d codes left, want %d", left, identity.RecoveryCodeCount)
	}
}

func TestRecoveryCodeConcurrentUse(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, _, codes := enrolled(t, e, clk, "ana@example.test")
	const n = 50
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			switch err := e.svc.UseRecoveryCode(t.Context(), u.ID, codes[0]); {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, identity.ErrInvalidOTP):
				t.Errorf("UseRecoveryCode: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d of %d concurrent uses of one recovery code succeeded, want exactly 1", ok.Load(), n)
	}
}

func TestRegenerateRecoveryCodes(t *testing.T) {
	e, clk := newMFAEnv(t)
	u, secret, old := enrolled(t, e, clk, "ana@example.test")
	if _, err := e.svc.RegenerateRecoveryCodes(t.Context(), u.ID, "000000"); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("with a wrong code: got %v, want ErrInvalidOTP", err)
	}
	clk.add(time.Minute)
	codes, err := e.svc.RegenerateRecoveryCodes(t.Context(), u.ID, clk.code(t, secret, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != identity.RecoveryCodeCount {
		t.Errorf("got %d codes, want %d", len(codes), identity.RecoveryCodeCount)
	}
	if err := e.svc.UseRecoveryCode(t.Context(), u.ID, old[1]); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("an old code after regeneration: got %v, want ErrInvalidOTP", err)
	}
	if err := e.svc.UseRecoveryCode(t.Context(), u.ID, codes[1]); err != nil {
		t.Errorf("a new code: %v", err)
	}

	plain := staff()
	plain.Email = "plain@example.test"
	p := e.createUser(t, plain)
	if _, err := e.svc.RegenerateRecoveryCodes(t.Context(), p.ID, "abcde-fghij"); !errors.Is(err, identity.ErrInvalidOTP) {
		t.Errorf("without 2FA: got %v, want ErrInvalidOTP", err)
	}
}

func TestDisableTOTP(t *testing.T) {
	t.Run("needs the password", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u, secret, _ := enrolled(t, e, clk, "ana@example.test")
		clk.add(time.Minute)
		code := clk.code(t, secret, 0)
		if err := e.svc.DisableTOTP(t.Context(), u.ID, "a wrong passphrase", code); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("got %v, want ErrInvalidCredentials", err)
		}
		e.requireMFA(t, u.ID, true)
		// The password is checked first: the code was not spent.
		if err := e.svc.VerifyTOTP(t.Context(), u.ID, code); err != nil {
			t.Errorf("the code of the refused attempt: %v", err)
		}
	})
	t.Run("needs a valid code", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u, secret, _ := enrolled(t, e, clk, "ana@example.test")
		clk.add(time.Minute)
		for _, code := range []string{"", "000000", clk.code(t, secret, -2*time.Minute), "abcde-fghij"} {
			if err := e.svc.DisableTOTP(t.Context(), u.ID, testPassword, code); !errors.Is(err, identity.ErrInvalidOTP) {
				t.Errorf("code %q: got %v, want ErrInvalidOTP", code, err)
			}
		}
		e.requireMFA(t, u.ID, true)
	})
	t.Run("with password and TOTP code turns 2FA off and removes everything", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u, secret, codes := enrolled(t, e, clk, "ana@example.test")
		clk.add(time.Minute)
		if err := e.svc.DisableTOTP(t.Context(), u.ID, testPassword, clk.code(t, secret, 0)); err != nil {
			t.Fatal(err)
		}
		e.requireMFA(t, u.ID, false)
		if left, _ := e.svc.RecoveryCodesLeft(t.Context(), u.ID); left != 0 {
			t.Errorf("%d recovery codes left, want 0", left)
		}
		if err := e.svc.UseRecoveryCode(t.Context(), u.ID, codes[0]); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("a recovery code after disable: got %v, want ErrInvalidOTP", err)
		}
		clk.add(time.Minute)
		if err := e.svc.VerifyTOTP(t.Context(), u.ID, clk.code(t, secret, 0)); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("a TOTP code after disable: got %v, want ErrInvalidOTP", err)
		}
		for _, table := range []string{"user_totp", "user_recovery_codes"} {
			if n := scanRows(t, e.db, table, func(string, string) {}); n != 0 {
				t.Errorf("%s keeps %d rows", table, n)
			}
		}
		if _, err := e.svc.BeginTOTP(t.Context(), u.ID); err != nil {
			t.Errorf("enrol again: %v", err)
		}
	})
	t.Run("with password and a recovery code turns 2FA off", func(t *testing.T) {
		e, clk := newMFAEnv(t)
		u, _, codes := enrolled(t, e, clk, "ana@example.test")
		if err := e.svc.DisableTOTP(t.Context(), u.ID, testPassword, strings.ToUpper(codes[4])); err != nil {
			t.Fatal(err)
		}
		e.requireMFA(t, u.ID, false)
	})
}

func TestMFAOfUnknownUsers(t *testing.T) {
	e, _ := newMFAEnv(t)
	for _, id := range []string{"01963f6e-0000-7000-8000-000000000000", "nope", ""} {
		if m, err := e.svc.MFAMethods(t.Context(), id); err != nil || len(m) != 0 || m == nil {
			t.Errorf("MFAMethods(%q): got %#v, %v; want an empty list", id, m, err)
		}
		if n, err := e.svc.RecoveryCodesLeft(t.Context(), id); err != nil || n != 0 {
			t.Errorf("RecoveryCodesLeft(%q): got %d, %v; want 0", id, n, err)
		}
		if err := e.svc.UseRecoveryCode(t.Context(), id, "abcde-fghij"); !errors.Is(err, identity.ErrInvalidOTP) {
			t.Errorf("UseRecoveryCode(%q): got %v, want ErrInvalidOTP", id, err)
		}
		if err := e.svc.DisableTOTP(t.Context(), id, testPassword, "123456"); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Errorf("DisableTOTP(%q): got %v, want ErrInvalidCredentials", id, err)
		}
	}
}
