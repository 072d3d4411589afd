package identity

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Password lengths, counted in code points after NFKC (SPEC §4).
const (
	MinPasswordLength = 8
	MaxPasswordLength = 128
	// maxPasswordBytes bounds the input before it is normalised, so that an enormous one costs
	// nothing. NFKC composes at most a few code points into one, so no password that is within
	// MaxPasswordLength once normalised comes near it.
	maxPasswordBytes = 4096
)

// PasswordParams are the argon2id cost and sizes of new password hashes.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint32 // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultPasswordParams are OWASP's minimum for argon2id (PW-01): 19 MiB, 2 passes, 1 lane, with a
// 16-byte salt and a 32-byte key.
func DefaultPasswordParams() PasswordParams {
	return PasswordParams{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// validate bounds the parameters of new hashes and of stored ones alike: a stored hash with
// absurd costs must not make one login take the server down.
func (p PasswordParams) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > 255:
		return fmt.Errorf("threads %d not in [1, 255]", p.Threads)
	case p.Memory < 8*p.Threads || p.Memory > 4<<20:
		return fmt.Errorf("memory %d KiB not in [8×threads, 4 GiB]", p.Memory)
	case p.Time < 1 || p.Time > 100:
		return fmt.Errorf("time %d not in [1, 100]", p.Time)
	case p.SaltLen < 8 || p.SaltLen > 64:
		return fmt.Errorf("salt length %d not in [8, 64]", p.SaltLen)
	case p.KeyLen < 16 || p.KeyLen > 64:
		return fmt.Errorf("key length %d not in [16, 64]", p.KeyLen)
	}
	return nil
}

// passwordHash is an argon2id hash and what it takes to recompute it.
type passwordHash struct {
	params    PasswordParams
	salt, key []byte
}

// String returns the hash in the PHC string format of the reference implementation:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, with unpadded standard base64.
func (h passwordHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(h.salt), base64.RawStdEncoding.EncodeToString(h.key))
}

// parsePasswordHash reads what String writes, and nothing else.
func parsePasswordHash(s string) (passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return passwordHash{}, errors.New("not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return passwordHash{}, fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	var h passwordHash
	fields := strings.Split(parts[3], ",")
	targets := []*uint32{&h.params.Memory, &h.params.Time, &h.params.Threads}
	if len(fields) != len(targets) {
		return passwordHash{}, fmt.Errorf("parameters %q: want m, t and p", parts[3])
	}
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return passwordHash{}, fmt.Errorf("parameters %q: want m, t and p", parts[3])
		}
		*targets[i] = uint32(n)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return passwordHash{}, fmt.Errorf("salt: %w", err)
	}
	if h.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return passwordHash{}, fmt.Errorf("key: %w", err)
	}
	h.params.SaltLen, h.params.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	if err := h.params.validate(); err != nil {
		return passwordHash{}, err
	}
	return h, nil
}

// newDummyHash returns the hash of a random password with params, computed outside the
// semaphore and the OnHash hook since it runs once, at start-up. Users without a usable hash are
// verified against it, which costs what a real verification costs and never matches.
func newDummyHash(params PasswordParams) string {
	password := make([]byte, 32)
	rand.Read(password)
	h := passwordHash{params: params, salt: make([]byte, params.SaltLen)}
	rand.Read(h.salt)
	h.key = argon2.IDKey(password, h.salt, params.Time, params.Memory, uint8(params.Threads), params.KeyLen)
	return h.String()
}

// argon2id evaluates argon2id in one of the hashing slots, so that concurrent logins cannot
// take more than HashSlots × Memory. It fails with ErrBusy when no slot frees up in time.
func (s *Service) argon2id(ctx context.Context, password string, salt []byte, p PasswordParams) ([]byte, error) {
	if err := s.acquireHashSlot(ctx); err != nil {
		return nil, err
	}
	defer func() { <-s.hashSlots }()
	if s.onHash != nil {
		s.onHash()
	}
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, uint8(p.Threads), p.KeyLen), nil
}

func (s *Service) acquireHashSlot(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	default:
	}
	if s.waiting.Add(1) > s.hashQueue {
		s.waiting.Add(-1)
		return ErrBusy
	}
	defer s.waiting.Add(-1)
	wait := time.NewTimer(s.hashWait)
	defer wait.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-wait.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("wait for a password hashing slot: %w", context.Cause(ctx))
	}
}

// hashPassword hashes a password that passed the policy (and so is NFKC-normalised) with the
// current parameters and a new salt, and returns the PHC string.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	h := passwordHash{params: s.params, salt: make([]byte, s.params.SaltLen)}
	rand.Read(h.salt)
	var err error
	if h.key, err = s.argon2id(ctx, password, h.salt, s.params); err != nil {
		return "", err
	}
	return h.String(), nil
}

// verify recomputes h for password and compares in constant time.
func (s *Service) verify(ctx context.Context, h passwordHash, password string) (bool, error) {
	key, err := s.argon2id(ctx, password, h.salt, h.params)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// verifyUserPassword checks password against u's hash with exactly one argon2id evaluation,
// whatever the outcome: when usable is false or u has no readable hash, it verifies against the
// dummy hash and fails. On success with outdated parameters it stores a new hash (PW-01).
func (s *Service) verifyUserPassword(ctx context.Context, u User, usable bool, password string) error {
	h, err := parsePasswordHash(u.PasswordHash)
	if err != nil && u.PasswordHash != "" {
		s.log.ErrorContext(ctx, "stored password hash is unreadable; the user cannot log in", "user_id", u.ID, "err", err)
	}
	if err != nil || !usable {
		usable = false
		if h, err = parsePasswordHash(s.dummyHash); err != nil {
			panic("identity: the dummy password hash does not parse: " + err.Error())
		}
	}
	ok, err := s.verify(ctx, h, password)
	switch {
	case err != nil:
		return err
	case !ok || !usable:
		return ErrInvalidCredentials
	}
	if h.params != s.params {
		s.rehash(ctx, u, password)
	}
	return nil
}

// rehash replaces u's hash by one with the current parameters, unless the password changed in
// the meantime. It is best effort: the login has succeeded, and the next one tries again.
func (s *Service) rehash(ctx context.Context, u User, password string) {
	hash, err := s.hashPassword(ctx, password)
	if err == nil {
		_, err = s.store.UpdateUser(ctx, u.ID, func(cur User) (User, error) {
			if cur.PasswordHash == u.PasswordHash {
				cur.PasswordHash = hash
			}
			return cur, nil
		})
	}
	if err != nil {
		s.log.WarnContext(ctx, "could not upgrade a password hash to the current parameters", "user_id", u.ID, "err", err)
	}
}

// Authenticate returns the user whose e-mail and password these are. Every failure tied to the
// account (unknown e-mail, wrong password, no password set, deactivated user or organization) is
// ErrInvalidCredentials, returned after exactly one argon2id evaluation so that neither the
// answer nor its timing tells them apart (PW-04). A user whose password has expired is returned
// all the same, with PasswordExpired set: refusing tokens is the caller's part (PW-07). It fails
// with ErrBusy when no hashing slot frees up in time, and with the store's error if it is down.
func (s *Service) Authenticate(ctx context.Context, email, password string) (User, error) {
	password, ok := loginPassword(password)
	if !ok {
		return User{}, ErrInvalidCredentials
	}
	u, err := s.userByEmail(ctx, email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	usable := err == nil && u.Active
	if usable && u.OrgID != "" {
		o, err := s.store.Organization(ctx, u.OrgID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return User{}, fmt.Errorf("authenticate: %w", err)
		}
		usable = err == nil && o.Active
	}
	if err := s.verifyUserPassword(ctx, u, usable, password); err != nil {
		if err == ErrInvalidCredentials {
			return User{}, err
		}
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	u.PasswordHash = ""
	return u, nil
}

// CheckPassword verifies a user's current password, for changes that require it, whether or not
// the user is active. A wrong password, a user without one and an unknown user are all
// ErrInvalidCredentials, after one argon2id evaluation like Authenticate.
func (s *Service) CheckPassword(ctx context.Context, userID, password string) error {
	password, ok := loginPassword(password)
	if !ok {
		return ErrInvalidCredentials
	}
	var u User
	err := ErrNotFound
	if isID(userID) {
		u, err = s.store.User(ctx, userID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("check password: %w", err)
	}
	if err := s.verifyUserPassword(ctx, u, err == nil, password); err != nil {
		if err == ErrInvalidCredentials {
			return err
		}
		return fmt.Errorf("check password: %w", err)
	}
	return nil
}

// SetPassword gives the user a new password that passes the policy (a *ValidationError on
// "password" otherwise, before any hashing), clears PasswordExpired and sets PasswordChangedAt.
// Ending the user's sessions is the caller's part.
func (s *Service) SetPassword(ctx context.Context, userID, newPassword string) error {
	u, err := s.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	var v ValidationError
	password := s.checkPasswordPolicy(&v, newPassword, u.Email)
	if err := v.err(); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return s.updateUser(ctx, "set password", userID, func(u User) (User, error) {
		var v ValidationError
		if equalsEmail(password, u.Email) { // the e-mail may have changed while hashing
			v.add("password", "must not be the e-mail address")
			return u, v.err()
		}
		u.PasswordHash = hash
		u.PasswordExpired = false
		u.PasswordChangedAt = s.timestamp()
		return u, nil
	})
}

// loginPassword normalises a password offered at login. One that no policy-abiding password can
// equal (too long, or not UTF-8) is refused at once, before any hashing: that reveals nothing
// about any account and keeps huge inputs cheap. Short ones are hashed as usual, so that raising
// the minimum length never locks out users whose passwords predate it.
func loginPassword(password string) (string, bool) {
	if len(password) > maxPasswordBytes || !utf8.ValidString(password) {
		return "", false
	}
	password = norm.NFKC.String(password)
	return password, utf8.RuneCountInString(password) <= MaxPasswordLength
}

// checkPasswordPolicy adds a field error on "password" for each broken rule (SPEC §4, NIST SP
// 800-63B) and returns the NFKC-normalised password that is hashed. Lengths count code points
// after NFKC, so that "Å" typed as one code point or as "A" and a combining ring is one password.
// There are no composition rules and no truncation.
func (s *Service) checkPasswordPolicy(v *ValidationError, password, email string) string {
	if len(password) > maxPasswordBytes {
		v.add("password", "must be at most %d characters", MaxPasswordLength)
		return ""
	}
	if !utf8.ValidString(password) {
		v.add("password", "must be valid UTF-8")
		return ""
	}
	password = norm.NFKC.String(password)
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLength:
		v.add("password", "must be at least %d characters", MinPasswordLength)
	case n > MaxPasswordLength:
		v.add("password", "must be at most %d characters", MaxPasswordLength)
	case isCommonPassword(password):
		v.add("password", "is too common: it appears in lists of leaked passwords")
	case strings.Count(password, password[:firstRuneLen(password)]) == n:
		v.add("password", "must not be one character repeated")
	case equalsEmail(password, email):
		v.add("password", "must not be the e-mail address")
	default:
		return password
	}
	return ""
}

func firstRuneLen(s string) int {
	_, n := utf8.DecodeRuneInString(s)
	return n
}

// equalsEmail reports whether password is, up to case, the e-mail address or its local part.
func equalsEmail(password, email string) bool {
	e := NormalizeEmail(email)
	if e == "" {
		return false
	}
	p := norm.NFKC.String(cases.Fold().String(password))
	local := e[:max(strings.LastIndexByte(e, '@'), 0)]
	return p == e || p == local
}

//go:embed commonpasswords.txt
var commonPasswordsFile string

// commonPasswords is the embedded list as a set, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 8192)
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsFile))
	for first := true; sc.Scan(); first = false {
		if line := sc.Text(); line != "" && !(first && strings.HasPrefix(line, "#")) {
			set[line] = struct{}{}
		}
	}
	return set
})

// isCommonPassword reports whether password, in lower case, is on the list, or is an entry
// followed by digits and symbols: "password123" and "iloveyou2024!" are what a cracker's
// first rules try after the list itself.
func isCommonPassword(password string) bool {
	set := commonPasswords()
	lower := strings.ToLower(password)
	if _, ok := set[lower]; ok {
		return true
	}
	base := strings.TrimRightFunc(lower, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	_, ok := set[base]
	return base != lower && ok
}

// HashMemory returns the memory one argon2id evaluation with the current parameters takes, and
// the most that the evaluations running at once take (HashSlots of them), in bytes.
func (s *Service) HashMemory() (one, all uint64) {
	one = uint64(s.params.Memory) << 10
	return one, one * uint64(cap(s.hashSlots))
}
