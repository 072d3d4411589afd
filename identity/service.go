package identity

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"image/png"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// MinPepperSize is the shortest pepper NewService accepts: as long as the HMAC-SHA256 output.
const MinPepperSize = 32

// Options configure a Service.
type Options struct {
	// Pepper keys the HMAC under which client secrets and recovery codes are stored; at least
	// MinPepperSize bytes, derived by the caller from the master key. Changing it invalidates
	// every client secret and recovery code.
	Pepper []byte
	// Sealer encrypts TOTP secrets at rest. Without it, 2FA cannot be set up or checked (every
	// TOTP operation on an enrolled user fails with an error, never succeeds).
	Sealer Sealer
	// TOTPIssuer names the service in authenticator apps; "" means DefaultTOTPIssuer.
	TOTPIssuer string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Password are the argon2id parameters of new password hashes; the zero value means
	// DefaultPasswordParams. Stored hashes with other parameters still verify, and are rehashed
	// with these at the next successful login.
	Password PasswordParams
	// HashSlots bounds how many argon2id evaluations run at once, and so the memory they take
	// (HashSlots × Password.Memory); 0 means runtime.GOMAXPROCS(0).
	HashSlots int
	// HashWait is how long a password check waits for a slot before failing with ErrBusy;
	// 0 means 2 seconds.
	HashWait time.Duration
	// HashQueue bounds how many password checks wait for a slot; one more fails with ErrBusy at
	// once. 0 means 4 × HashSlots, which keeps an accepted check within about five hashes of
	// waiting when logins arrive faster than they can be hashed (RL-07: shed, do not queue).
	HashQueue int
	// OnHash, if set, is called at each argon2id evaluation a request makes (tests count them).
	OnHash func()
	// CacheTTL is how long clients, users and organizations read on hot paths are kept in memory
	// (default 1 s; negative disables the cache). Changes made through this Service apply at once;
	// changes made by another process (the CLI, another instance) apply within this time.
	CacheTTL time.Duration
	// Logger receives what the Service cannot return, such as a failed rehash; nil discards it.
	Logger *slog.Logger
}

// Service applies the identity rules on top of a Store.
type Service struct {
	store  Store
	pepper []byte
	now    func() time.Time
	log    *slog.Logger

	params    PasswordParams
	hashSlots chan struct{} // a semaphore: a send takes a slot, a receive frees it
	hashWait  time.Duration
	hashQueue int64        // the most checks that may wait for a slot
	waiting   atomic.Int64 // checks waiting for a slot now
	onHash    func()
	clients   *cache[Client]
	users     *cache[User]
	orgs      *cache[Organization]
	sealer    Sealer
	issuer    string      // of TOTP enrolments
	hmacs     sync.Pool   // of hmac.New(sha256.New, pepper)
	qr        png.Encoder // of TOTP enrolments' QR codes, reusing its buffers (qrBuffers)
	// dummyHash is a valid PHC string with the current parameters, of a password nobody knows:
	// logins without a usable hash verify against it, so that they cost what others do (PW-04).
	dummyHash string
}

// NewService returns a Service. It panics if the pepper is shorter than MinPepperSize or the
// password parameters are out of bounds: those are wiring mistakes, and running with a weak key
// would be worse than not starting. It computes one password hash, the dummy one.
func NewService(store Store, opts Options) *Service {
	if len(opts.Pepper) < MinPepperSize {
		panic(fmt.Sprintf("identity: pepper must be at least %d bytes, got %d", MinPepperSize, len(opts.Pepper)))
	}
	s := &Service{
		qr:       png.Encoder{BufferPool: newQRBuffers()},
		store:    store,
		pepper:   slices.Clone(opts.Pepper),
		now:      opts.Now,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		params:   cmp.Or(opts.Password, DefaultPasswordParams()),
		hashWait: cmp.Or(opts.HashWait, 2*time.Second),
		onHash:   opts.OnHash,
		sealer:   opts.Sealer,
		issuer:   cmp.Or(opts.TOTPIssuer, DefaultTOTPIssuer),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.params.validate(); err != nil {
		panic("identity: password parameters: " + err.Error())
	}
	// The issuer is the label's prefix in "otpauth://totp/Issuer:account": a colon would split it.
	if strings.ContainsRune(s.issuer, ':') || strings.ContainsFunc(s.issuer, unsafeRune) {
		panic(fmt.Sprintf("identity: TOTP issuer %q must not contain a colon or control characters", s.issuer))
	}
	s.hashSlots = make(chan struct{}, max(cmp.Or(opts.HashSlots, runtime.GOMAXPROCS(0)), 1))
	s.hashQueue = int64(cmp.Or(opts.HashQueue, 4*cap(s.hashSlots)))
	s.dummyHash = newDummyHash(s.params)
	ttl := cmp.Or(opts.CacheTTL, time.Second)
	s.clients = newCache[Client](ttl, s.now)
	s.users = newCache[User](ttl, s.now)
	s.orgs = newCache[Organization](ttl, s.now)
	return s
}

// timestamp is the current time as the databases keep it: UTC, whole microseconds.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// CreateClient registers a client and returns it with its secret, which is shown this once and
// stored only as a keyed hash. Public clients get no secret ("").
func (s *Service) CreateClient(ctx context.Context, n NewClient) (Client, string, error) {
	if err := n.validate(); err != nil {
		return Client{}, "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Client{}, "", fmt.Errorf("create client: %w", err)
	}
	now := s.timestamp()
	c := Client{
		ID:         id.String(),
		Name:       n.Name,
		Public:     n.Public,
		Grants:     slices.Clone(n.Grants),
		Scopes:     append([]string{}, n.Scopes...),
		OrgID:      strings.ToLower(n.OrgID),
		AccessTTL:  n.AccessTTL,
		RefreshTTL: n.RefreshTTL,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	var secret string
	if !c.Public {
		secret = newSecret()
		c.SecretHash = s.hashSecret(secret)
	}
	if err := s.store.CreateClient(ctx, c); err != nil {
		return Client{}, "", fmt.Errorf("create client: %w", err)
	}
	c.SecretHash = nil
	return c, secret, nil
}

// Client returns the client with the given ID, or ErrNotFound.
func (s *Service) Client(ctx context.Context, id string) (Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return Client{}, fmt.Errorf("client %q: %w", id, err)
	}
	c.SecretHash = nil
	return c, nil
}

func (s *Service) client(ctx context.Context, id string) (Client, error) {
	if !isID(id) {
		return Client{}, ErrNotFound
	}
	return s.store.Client(ctx, id)
}

// Clients returns every client, oldest first.
func (s *Service) Clients(ctx context.Context) ([]Client, error) {
	cs, err := s.store.Clients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	for i := range cs {
		cs[i].SecretHash = nil
	}
	return cs, nil
}

// DeleteClient removes a client, or fails with ErrNotFound. Tokens already issued to it stay
// valid until they expire; refreshing them fails because the client no longer authenticates.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	defer s.clients.forget(id)
	err := ErrNotFound
	if isID(id) {
		err = s.store.DeleteClient(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("delete client %q: %w", id, err)
	}
	return nil
}

// RotateClientSecret gives a confidential client a new secret and returns it; the old one stops
// working at once. Public clients have no secret (ErrInvalid).
func (s *Service) RotateClientSecret(ctx context.Context, id string) (string, error) {
	defer s.clients.forget(id)
	secret := newSecret()
	hash := s.hashSecret(secret)
	err := ErrNotFound
	if isID(id) {
		_, err = s.store.UpdateClient(ctx, id, func(c Client) (Client, error) {
			if c.Public {
				return Client{}, fmt.Errorf("%w: a public client has no secret", ErrInvalid)
			}
			c.SecretHash = hash
			c.UpdatedAt = s.timestamp()
			return c, nil
		})
	}
	if err != nil {
		return "", fmt.Errorf("rotate secret of client %q: %w", id, err)
	}
	return secret, nil
}

// AuthenticateClient checks a client's credentials as the token endpoint receives them: a
// confidential client must present its secret, a public client must present none. Every failure
// is ErrInvalidClient (the wrapped reason is for logs); a store failure is returned as such, so
// that the caller answers 503 rather than 401.
func (s *Service) AuthenticateClient(ctx context.Context, id, secret string) (Client, error) {
	c, cached := s.clients.get(id)
	var err error
	if !cached {
		c, err = s.client(ctx, id)
		if err == nil {
			s.clients.put(c.ID, c)
		}
	}
	if errors.Is(err, ErrNotFound) {
		// Spend the HMAC a known client would cost, so response times do not reveal which ids exist.
		s.hashSecret(secret)
		return Client{}, fmt.Errorf("%w: unknown client", ErrInvalidClient)
	}
	if err != nil {
		return Client{}, fmt.Errorf("authenticate client: %w", err)
	}
	switch {
	case c.Public && secret != "":
		// A public client's "secret" is not one: accepting it would suggest a protection that does not exist.
		return Client{}, fmt.Errorf("%w: public client sent a secret", ErrInvalidClient)
	case c.Public:
	case secret == "" || len(c.SecretHash) == 0:
		return Client{}, fmt.Errorf("%w: no secret", ErrInvalidClient)
	case !hmac.Equal(s.hashSecret(secret), c.SecretHash):
		return Client{}, fmt.Errorf("%w: wrong secret", ErrInvalidClient)
	}
	c.SecretHash = nil
	return c, nil
}

// hashSecret is HMAC-SHA256 keyed with the pepper. A secret is 256 random bits, so a fast keyed
// hash is enough: nobody can guess it, and a stolen database without the pepper reveals nothing.
func (s *Service) hashSecret(secret string) []byte {
	// A keyed HMAC costs as much to set up as to run on a short secret: reuse them.
	m, ok := s.hmacs.Get().(hash.Hash)
	if !ok {
		m = hmac.New(sha256.New, s.pepper)
	}
	m.Reset()
	io.WriteString(m, secret)
	sum := m.Sum(nil)
	s.hmacs.Put(m)
	return sum
}

// newSecret returns 256 random bits, base64url without padding (43 characters).
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand aborts the program if the system's source does
	return base64.RawURLEncoding.EncodeToString(b)
}
