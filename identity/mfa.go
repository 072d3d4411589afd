package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238, PW-05): what every authenticator app understands.
const (
	// DefaultTOTPIssuer names the service in authenticator apps unless Options.TOTPIssuer does.
	DefaultTOTPIssuer = "Portaria"
	// TOTPStep is the time step: a code changes every 30 seconds.
	TOTPStep = 30 * time.Second
	// totpSkew is how many steps before and after the server's current one are accepted: one,
	// for clocks that disagree a little and codes typed at the end of their step.
	totpSkew = 1
	// totpSecretSize is the seed length: 160 bits, as RFC 4226 recommends.
	totpSecretSize = 20
	totpDigits     = otp.DigitsSix
	// qrSize is the side of the enrolment QR code, in pixels.
	qrSize = 256
)

// MFA methods a user with 2FA can complete a login with (SPEC §3, mfa_methods).
const (
	MFAMethodTOTP         = "totp"
	MFAMethodRecoveryCode = "recovery_code"
)

// RecoveryCodeCount is how many recovery codes a user gets when 2FA is turned on.
const RecoveryCodeCount = 10

// recoveryCodeAlphabet is RFC 4648 base32 in lower case: no 0, 1, 8 or 9 to mistake for letters.
const recoveryCodeAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// recoveryCodeLength is the number of characters of a recovery code without its dash: 10 × 5 =
// 50 random bits, out of reach of online guessing (which is throttled) and, without the pepper,
// of offline guessing too.
const recoveryCodeLength = 10

// Sealer encrypts small secrets at rest; *keys.Sealer satisfies it. aad binds a ciphertext to
// its context: Open fails unless it gets the aad that Seal got.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(ciphertext, aad []byte) ([]byte, error)
}

// errNoSealer: Options.Sealer was not set, so TOTP secrets can be neither stored nor read.
var errNoSealer = errors.New("identity: no Sealer configured for TOTP secrets")

// TOTPState is a user's authenticator enrolment as stored: pending until its first code is
// confirmed, then on.
type TOTPState struct {
	UserID string
	// SecretSealed is the seed sealed by the Sealer, with totpAAD(UserID) as AAD: a sealed seed
	// copied to another user's row does not open.
	SecretSealed []byte
	ConfirmedAt  time.Time // zero while pending
	// LastStep is the last time step (Unix time / 30 s) for which a code was accepted, 0 before
	// any: only codes of later steps are accepted, so that each code works once (PW-05).
	LastStep  int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Enabled reports whether the enrolment is confirmed, which is to say whether 2FA is on.
func (t TOTPState) Enabled() bool { return !t.ConfirmedAt.IsZero() }

// MFAStore persists TOTP enrolments and recovery codes. Every operation that consumes a code is
// a single atomic statement or transaction that reports whether it won, so that a code is
// accepted once however many requests present it at the same time.
type MFAStore interface {
	// PutPendingTOTP stores t as the user's pending enrolment (ConfirmedAt is ignored), replacing
	// a pending one. It fails with ErrExists, and keeps what is stored, if the user has 2FA on,
	// and with ErrNotFound if there is no such user.
	PutPendingTOTP(ctx context.Context, t TOTPState) error
	// TOTP returns the user's enrolment, pending or on, or ErrNotFound.
	TOTP(ctx context.Context, userID string) (TOTPState, error)
	// ConfirmTOTP turns on the user's pending enrolment if its sealed secret is still sealed and
	// its LastStep is below step, sets LastStep to step, and replaces the user's recovery codes by
	// codeHashes, all in one transaction. It reports false, changing nothing, when there is no
	// such pending enrolment (confirmed meanwhile, replaced by a new one, or removed).
	ConfirmTOTP(ctx context.Context, userID string, sealed []byte, step int64, codeHashes [][]byte, at time.Time) (bool, error)
	// AdvanceTOTPStep is the compare-and-swap that spends a code: if the user has 2FA on and
	// LastStep < step, it sets LastStep to step and reports true; otherwise it reports false.
	AdvanceTOTPStep(ctx context.Context, userID string, step int64, at time.Time) (bool, error)
	// DeleteTOTP removes the user's enrolment, pending or on, and every recovery code of the
	// user, in one transaction. It fails with ErrNotFound if there was no enrolment.
	DeleteTOTP(ctx context.Context, userID string) error
	// ReplaceRecoveryCodes replaces every recovery code of a user who has 2FA on by codeHashes,
	// in one transaction; it fails with ErrNotFound if the user does not have 2FA on.
	ReplaceRecoveryCodes(ctx context.Context, userID string, codeHashes [][]byte, at time.Time) error
	// UseRecoveryCode marks the user's unused recovery code with this hash as used at at, if the
	// user has 2FA on, and reports whether it did.
	UseRecoveryCode(ctx context.Context, userID string, codeHash []byte, at time.Time) (bool, error)
	// RecoveryCodesLeft counts the user's unused recovery codes.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
}

// TOTPEnrolment is what a user needs to add Portaria to an authenticator app. It is shown once,
// during setup; the secret is not readable again.
type TOTPEnrolment struct {
	Secret string `json:"secret"`      // Base32 without padding, for typing in by hand
	URI    string `json:"otpauth_uri"` // otpauth://totp/…, which the QR code encodes
	QRPNG  []byte `json:"qr_png"`      // PNG image of the URI (base64 in JSON)
}

// totpAAD binds a sealed seed to its user and purpose.
func totpAAD(userID string) []byte {
	return []byte("portaria/identity/totp-secret/v1\x00" + userID)
}

// BeginTOTP starts a 2FA enrolment: it creates a new 160-bit seed, stores it sealed as the user's
// pending enrolment (replacing a pending one) and returns it for the authenticator app. 2FA
// stays off until ConfirmTOTP. A user who has 2FA on is refused with a *ValidationError on
// "totp": they turn it off first, with their password and a code.
func (s *Service) BeginTOTP(ctx context.Context, userID string) (TOTPEnrolment, error) {
	if s.sealer == nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: %w", errNoSealer)
	}
	u, err := s.User(ctx, userID)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: %w", err)
	}
	if u.MFAEnabled {
		return TOTPEnrolment{}, totpAlreadyOn()
	}
	seed := make([]byte, totpSecretSize)
	rand.Read(seed)
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      s.issuer,
		AccountName: u.Email,
		Period:      uint(TOTPStep / time.Second),
		Secret:      seed,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: QR code: %w", err)
	}
	var qr bytes.Buffer
	if err := s.qr.Encode(&qr, img); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: QR code: %w", err)
	}
	sealed, err := s.sealer.Seal(seed, totpAAD(u.ID))
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: seal secret: %w", err)
	}
	now := s.timestamp()
	err = s.store.PutPendingTOTP(ctx, TOTPState{UserID: u.ID, SecretSealed: sealed, CreatedAt: now, UpdatedAt: now})
	if errors.Is(err, ErrExists) {
		return TOTPEnrolment{}, totpAlreadyOn() // turned on meanwhile
	}
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP: %w", err)
	}
	return TOTPEnrolment{Secret: key.Secret(), URI: key.URL(), QRPNG: qr.Bytes()}, nil
}

func totpAlreadyOn() error {
	return &ValidationError{Fields: []FieldError{{Field: "totp", Message: "is already on: turn it off before enrolling again"}}}
}

// ConfirmTOTP turns 2FA on: code must be valid for the pending enrolment by the rules of
// VerifyTOTP (and is spent). It returns the user's RecoveryCodeCount recovery codes, shown this
// once and stored only as keyed hashes. A wrong code is ErrInvalidOTP and leaves 2FA off and the
// enrolment pending; without a pending enrolment it fails with a *ValidationError on "totp".
func (s *Service) ConfirmTOTP(ctx context.Context, userID, code string) ([]string, error) {
	st, err := s.totpState(ctx, userID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && st.Enabled():
		return nil, &ValidationError{Fields: []FieldError{{Field: "totp", Message: "has no pending enrolment: start the setup again"}}}
	case err != nil:
		return nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	step, err := s.matchTOTP(st, code)
	if err != nil {
		return nil, err
	}
	codes, hashes := s.newRecoveryCodes(st.UserID)
	defer s.users.forget(st.UserID) // MFAEnabled changes
	ok, err := s.store.ConfirmTOTP(ctx, st.UserID, st.SecretSealed, step, hashes, s.timestamp())
	switch {
	case err != nil:
		return nil, fmt.Errorf("confirm TOTP: %w", err)
	case !ok:
		return nil, ErrInvalidOTP // another request confirmed or replaced the enrolment first
	}
	return codes, nil
}

// VerifyTOTP checks a code from the user's authenticator (RFC 6238: HMAC-SHA-1, 6 digits, 30 s
// steps) against the server's clock, accepting the current step and one on either side, and
// spends it: the step it matched must come after the last accepted one, which it becomes through
// a compare-and-swap, so that a code works once even when presented many times at once (PW-05).
// A wrong, replayed or malformed code, and a user without 2FA on, are all ErrInvalidOTP.
func (s *Service) VerifyTOTP(ctx context.Context, userID, code string) error {
	st, err := s.totpState(ctx, userID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && !st.Enabled():
		return ErrInvalidOTP
	case err != nil:
		return fmt.Errorf("verify TOTP: %w", err)
	}
	step, err := s.matchTOTP(st, code)
	if err != nil {
		return err
	}
	ok, err := s.store.AdvanceTOTPStep(ctx, st.UserID, step, s.timestamp())
	switch {
	case err != nil:
		return fmt.Errorf("verify TOTP: %w", err)
	case !ok:
		return ErrInvalidOTP // a concurrent request spent this step (or a later one) first
	}
	return nil
}

// totpState returns the user's enrolment; an id that cannot exist is not found.
func (s *Service) totpState(ctx context.Context, userID string) (TOTPState, error) {
	if !isID(userID) {
		return TOTPState{}, ErrNotFound
	}
	return s.store.TOTP(ctx, userID)
}

// matchTOTP returns the time step within the accepted window, and after st.LastStep, for which
// code is the right one, or ErrInvalidOTP. It compares with every candidate in constant time and
// without stopping at the first match. It does not spend the step: the caller does, atomically.
func (s *Service) matchTOTP(st TOTPState, code string) (int64, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "") // apps show "123 456"
	if len(code) != totpDigits.Length() || strings.Trim(code, "0123456789") != "" {
		return 0, ErrInvalidOTP
	}
	if s.sealer == nil {
		return 0, errNoSealer
	}
	seed, err := s.sealer.Open(st.SecretSealed, totpAAD(st.UserID))
	if err != nil {
		return 0, fmt.Errorf("open TOTP secret of user %q: %w", st.UserID, err)
	}
	// pquerna/otp takes the seed in Base32; it lives only in memory, like the seed.
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	clear(seed)
	now := s.now().Unix() / int64(TOTPStep/time.Second)
	matched := int64(-1)
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, fmt.Errorf("TOTP code: %w", err)
		}
		// The latest matching step wins: spending it also rules out the earlier ones.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched = step
		}
	}
	if matched <= st.LastStep {
		return 0, ErrInvalidOTP // no match (-1), or a step already spent: a replay
	}
	return matched, nil
}

// UseRecoveryCode spends one of the user's recovery codes. The code is accepted with or without
// its dash, in any case and with surrounding spaces. A wrong or used code, and a user without
// 2FA on, are ErrInvalidOTP.
func (s *Service) UseRecoveryCode(ctx context.Context, userID, code string) error {
	code, ok := normalizeRecoveryCode(code)
	if !ok || !isID(userID) {
		return ErrInvalidOTP
	}
	used, err := s.store.UseRecoveryCode(ctx, userID, s.hashRecoveryCode(userID, code), s.timestamp())
	switch {
	case err != nil:
		return fmt.Errorf("use recovery code: %w", err)
	case !used:
		return ErrInvalidOTP
	}
	return nil
}

// RecoveryCodesLeft returns how many unused recovery codes the user has: 0 without 2FA.
func (s *Service) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	if !isID(userID) {
		return 0, nil
	}
	n, err := s.store.RecoveryCodesLeft(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("recovery codes left: %w", err)
	}
	return n, nil
}

// RegenerateRecoveryCodes replaces all the recovery codes of a user with 2FA on by
// RecoveryCodeCount new ones, returned this once, after checking code (a TOTP code or a recovery
// code; ErrInvalidOTP otherwise). The old codes stop working at once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, userID, code string) ([]string, error) {
	if err := s.verifySecondFactor(ctx, userID, code); err != nil {
		return nil, err
	}
	codes, hashes := s.newRecoveryCodes(userID)
	err := s.store.ReplaceRecoveryCodes(ctx, userID, hashes, s.timestamp())
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidOTP // 2FA was turned off meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("regenerate recovery codes: %w", err)
	}
	return codes, nil
}

// DisableTOTP turns 2FA off, removing the secret and the recovery codes. It takes the user's
// current password (ErrInvalidCredentials otherwise, after one argon2id evaluation as in
// CheckPassword) and a second factor: a TOTP code or a recovery code, which it spends
// (ErrInvalidOTP otherwise). The password is checked first, so that a stolen session alone
// cannot spend codes through it.
func (s *Service) DisableTOTP(ctx context.Context, userID, password, code string) error {
	if err := s.CheckPassword(ctx, userID, password); err != nil {
		return err
	}
	if err := s.verifySecondFactor(ctx, userID, code); err != nil {
		return err
	}
	// ErrNotFound: a concurrent request turned it off first, which is what was asked.
	defer s.users.forget(userID) // MFAEnabled changes
	if err := s.store.DeleteTOTP(ctx, userID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("disable TOTP: %w", err)
	}
	return nil
}

// verifySecondFactor spends code as a TOTP code if it looks like one, else as a recovery code.
func (s *Service) verifySecondFactor(ctx context.Context, userID, code string) error {
	if _, ok := normalizeRecoveryCode(code); ok {
		return s.UseRecoveryCode(ctx, userID, code)
	}
	return s.VerifyTOTP(ctx, userID, code)
}

// MFAMethods returns the second factors that can complete the user's login: MFAMethodTOTP and
// MFAMethodRecoveryCode with 2FA on, none (an empty list) otherwise.
func (s *Service) MFAMethods(ctx context.Context, userID string) ([]string, error) {
	st, err := s.totpState(ctx, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		return []string{}, nil
	case err != nil:
		return nil, fmt.Errorf("MFA methods: %w", err)
	case !st.Enabled():
		return []string{}, nil
	}
	return []string{MFAMethodTOTP, MFAMethodRecoveryCode}, nil
}

// newRecoveryCodes returns RecoveryCodeCount distinct codes, formatted "xxxxx-xxxxx", and their
// hashes for the store.
func (s *Service) newRecoveryCodes(userID string) ([]string, [][]byte) {
	codes := make([]string, 0, RecoveryCodeCount)
	hashes := make([][]byte, 0, RecoveryCodeCount)
	seen := make(map[string]bool, RecoveryCodeCount)
	for len(codes) < RecoveryCodeCount {
		raw := make([]byte, recoveryCodeLength)
		rand.Read(raw)
		for i, b := range raw {
			raw[i] = recoveryCodeAlphabet[b%32] // 256 is a multiple of 32: uniform
		}
		code := string(raw)
		if seen[code] {
			continue
		}
		seen[code] = true
		codes = append(codes, code[:5]+"-"+code[5:])
		hashes = append(hashes, s.hashRecoveryCode(userID, code))
	}
	return codes, hashes
}

// normalizeRecoveryCode returns code without spaces around it, without dashes and in lower case,
// and whether that is a possible recovery code.
func normalizeRecoveryCode(code string) (string, bool) {
	code = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	if len(code) != recoveryCodeLength || strings.Trim(code, recoveryCodeAlphabet) != "" {
		return "", false
	}
	return code, true
}

// hashRecoveryCode is the keyed hash a normalised code is stored as. It names the user, so that
// two users' equal codes (or one user's code copied to another's rows) do not match.
func (s *Service) hashRecoveryCode(userID, code string) []byte {
	return s.hashSecret("portaria/identity/recovery-code/v1\x00" + userID + "\x00" + code)
}

// qrBuffers keeps the PNG encoder's buffers between enrolments: their compressor was most of
// what an enrolment allocated (about 850 KiB of 1 MiB; 186 KiB with the buffers kept), and the
// HTTP fuzz test bounds what any request allocates at 1 MiB (SECURITY.md F13). Two are kept, for
// good (a sync.Pool would lose them at the next collections, enrolments being rare): about 1.7 MiB.
type qrBuffers chan *png.EncoderBuffer

func newQRBuffers() qrBuffers { return make(qrBuffers, 2) }

func (b qrBuffers) Get() *png.EncoderBuffer {
	select {
	case buf := <-b:
		return buf
	default:
		return nil // the encoder makes one
	}
}

func (b qrBuffers) Put(buf *png.EncoderBuffer) {
	select {
	case b <- buf:
	default: // two are kept already
	}
}
