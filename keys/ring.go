package keys

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Ring. Zero durations take the defaults; Retain has none and is required.
type Options struct {
	// Alg is the algorithm of new keys (default ES256). Changing it rotates to a key of the new
	// algorithm after PublishAhead.
	Alg Alg
	// Rotation is how long a key signs before its successor takes over (default 720h).
	Rotation time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS (default 5m).
	JWKSMaxAge time.Duration
	// PublishAhead is how long a new key is published before it signs (default
	// 2×JWKSMaxAge + Reload): every instance has reloaded it and every resource server's cached
	// JWKS has expired by then, with a margin. It must be at least JWKSMaxAge + Reload.
	PublishAhead time.Duration
	// Retain is how long a retired key stays published: the longest access-token lifetime plus
	// clock skew plus JWKSMaxAge, so that every token it signed expires before it disappears.
	Retain time.Duration
	// Reload is how often Run re-reads the store (default 30s).
	Reload time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives Run's errors (default: discarded).
	Logger *slog.Logger
	// OnActivate, if set, is called by Maintain when it sees a new key signing (not for the
	// first key it loads): the key-rotation metric.
	OnActivate func(kid string)
}

// Ring is the set of signing keys. Sign and JWKS work from an in-memory snapshot that Maintain
// refreshes, so the hot path never decrypts or queries. It is safe for concurrent use.
type Ring struct {
	store  Store
	sealer *Sealer
	opts   Options

	mu   sync.Mutex // serializes Maintain and Rotate within this process
	snap atomic.Pointer[snapshot]
	// lastActive is the signing kid Maintain saw last (guarded by mu).
	lastActive string
}

// NewRing returns a ring over store. It loads nothing: call Maintain before signing.
func NewRing(store Store, sealer *Sealer, opts Options) (*Ring, error) {
	if store == nil || sealer == nil {
		return nil, errors.New("keys: NewRing needs a store and a sealer")
	}
	if opts.Alg == "" {
		opts.Alg = ES256
	}
	if !opts.Alg.valid() {
		return nil, fmt.Errorf("keys: unsupported algorithm %q (want ES256, EdDSA or RS256)", opts.Alg)
	}
	if opts.Rotation == 0 {
		opts.Rotation = 720 * time.Hour
	}
	if opts.JWKSMaxAge == 0 {
		opts.JWKSMaxAge = 5 * time.Minute
	}
	if opts.Reload == 0 {
		opts.Reload = 30 * time.Second
	}
	if opts.PublishAhead == 0 {
		opts.PublishAhead = 2*opts.JWKSMaxAge + opts.Reload
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.Rotation < 0, opts.JWKSMaxAge < 0, opts.Reload < 0, opts.PublishAhead < 0:
		return nil, errors.New("keys: durations must not be negative")
	case opts.Retain <= 0:
		return nil, errors.New("keys: Retain is required: longest access-token lifetime + clock skew + JWKS max-age")
	case opts.PublishAhead < opts.JWKSMaxAge+opts.Reload:
		return nil, fmt.Errorf("keys: PublishAhead %v is shorter than JWKSMaxAge + Reload (%v): "+
			"a resource server could receive a token before it can know its key", opts.PublishAhead, opts.JWKSMaxAge+opts.Reload)
	case opts.Rotation <= opts.PublishAhead:
		return nil, fmt.Errorf("keys: Rotation %v must be longer than PublishAhead %v", opts.Rotation, opts.PublishAhead)
	}
	return &Ring{store: store, sealer: sealer, opts: opts}, nil
}

// MaxAge is how long clients may cache the JWKS.
func (r *Ring) MaxAge() time.Duration { return r.opts.JWKSMaxAge }

// now returns the clock's time at the precision every store keeps (PostgreSQL: microseconds),
// so that a key's times read the same in memory and after a reload.
func (r *Ring) now() time.Time { return r.opts.Now().UTC().Truncate(time.Microsecond) }

// Run calls Maintain every Reload interval until ctx ends, logging failures. A failed step
// leaves the last good snapshot in place: signing goes on with the keys already loaded.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Reload)
	defer t.Stop()
	for {
		if err := r.safeMaintain(ctx); err != nil && ctx.Err() == nil {
			r.opts.Logger.ErrorContext(ctx, "signing keys: maintenance failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Ring) safeMaintain(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("keys: panic in Maintain: %v", p)
		}
	}()
	return r.Maintain(ctx)
}

// Maintain performs one idempotent step of the rotation protocol and refreshes the in-memory
// snapshot. It is safe to run at the same time on many instances sharing a store:
//   - with no key at all, it creates generation 1, active at once (nothing was signed before);
//   - when no key is pending and the active key is due (Rotation − PublishAhead after it
//     activated, or it has another algorithm than Options.Alg), it inserts the next generation,
//     activating PublishAhead from now at the earliest;
//   - it deletes keys whose successor activated more than Retain ago.
//
// An insert that loses the race (ErrConflict) is not an error: the winner's key is adopted.
func (r *Ring) Maintain(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()

	stored, err := r.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list: %w", err)
	}
	now := r.now()
	if len(stored) == 0 {
		if stored, err = r.insertNext(ctx, nil, now); err != nil {
			return err
		}
	}
	tl := newTimeline(stored, now)
	if next, due := r.nextActivation(tl); due {
		if stored, err = r.insertNext(ctx, stored, next); err != nil {
			return err
		}
		tl = newTimeline(stored, now)
	}
	var delErr error
	if expired := tl.expired(r.opts.Retain); len(expired) > 0 {
		if delErr = r.store.DeleteKeys(ctx, expired); delErr != nil {
			delErr = fmt.Errorf("keys: delete retired keys: %w", delErr)
		}
		// Expired keys are unpublished either way; a failed delete is retried next time.
		stored = slices.DeleteFunc(stored, func(k StoredKey) bool { return slices.Contains(expired, k.KID) })
	}
	err = errors.Join(r.refresh(stored), delErr)
	r.noticeActivation(now)
	return err
}

// noticeActivation reports a signing key that became active since the last Maintain.
func (r *Ring) noticeActivation(now time.Time) {
	snap := r.snap.Load()
	if snap == nil {
		return
	}
	k := snap.active(now)
	if k == nil || k.KID == r.lastActive {
		return
	}
	if r.lastActive != "" && r.opts.OnActivate != nil {
		r.opts.OnActivate(k.KID)
	}
	r.lastActive = k.KID
}

// nextActivation reports whether a successor is due now and when it should activate.
func (r *Ring) nextActivation(tl timeline) (time.Time, bool) {
	now := tl.now
	active := tl.active()
	if active == nil || tl.pending() != nil {
		return time.Time{}, false
	}
	earliest := now.Add(r.opts.PublishAhead)
	if active.Alg != r.opts.Alg {
		return earliest, true // a configuration change: switch as soon as it is safe
	}
	if now.Sub(active.ActivatesAt) < r.opts.Rotation-r.opts.PublishAhead {
		return time.Time{}, false
	}
	scheduled := active.ActivatesAt.Add(r.opts.Rotation)
	if scheduled.After(earliest) {
		return scheduled, true
	}
	return earliest, true
}

// insertNext generates the generation after the highest in stored, activating at activatesAt,
// and returns the store's keys afterwards. Losing the race to another instance is fine: the
// store then holds the winner's key instead of ours.
func (r *Ring) insertNext(ctx context.Context, stored []StoredKey, activatesAt time.Time) ([]StoredKey, error) {
	gen := int64(1)
	for _, k := range stored {
		gen = max(gen, k.Generation+1)
	}
	k, err := newStoredKey(r.sealer, r.opts.Alg, gen, r.now(), activatesAt)
	if err != nil {
		return nil, err
	}
	if err := r.store.InsertKey(ctx, k); err != nil && !errors.Is(err, ErrConflict) {
		return nil, fmt.Errorf("keys: insert generation %d: %w", gen, err)
	}
	stored, err = r.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	return stored, nil
}

// Rotate starts an operator-requested rotation: a new key is published at once and signs from
// PublishAhead on, never sooner, because resource servers may hold a JWKS without it until then.
// If a key is already pending, Rotate returns it instead of creating another.
func (r *Ring) Rotate(ctx context.Context) (KeyInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	stored, err := r.store.ListKeys(ctx)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("keys: list: %w", err)
	}
	now := r.now()
	if len(stored) == 0 {
		// Bootstrap: the first key may sign at once, so the requested rotation is its successor.
		if stored, err = r.insertNext(ctx, nil, now); err != nil {
			return KeyInfo{}, err
		}
	}
	if newTimeline(stored, now).pending() == nil {
		if stored, err = r.insertNext(ctx, stored, now.Add(r.opts.PublishAhead)); err != nil {
			return KeyInfo{}, err
		}
	}
	if err := r.refresh(stored); err != nil {
		return KeyInfo{}, err
	}
	for _, ki := range newTimeline(stored, now).info(r.opts.Retain) {
		if ki.State == StatePending {
			return ki, nil
		}
	}
	return KeyInfo{}, errors.New("keys: rotation left no pending key")
}

// List describes the keys in the store (not this instance's snapshot) for operators.
func (r *Ring) List(ctx context.Context) ([]KeyInfo, error) {
	stored, err := r.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	return newTimeline(stored, r.now()).info(r.opts.Retain), nil
}

// Sign returns a JWS compact serialization of payload with protected header alg, kid and typ
// (omitted when empty), signed by the key active now. It works from memory only.
func (r *Ring) Sign(ctx context.Context, typ string, payload []byte) (string, error) {
	s := r.snap.Load()
	if s == nil {
		return "", ErrNoKey
	}
	k := s.active(r.opts.Now())
	if k == nil {
		return "", ErrNoKey
	}
	return k.sign(typ, payload)
}

// JWKS returns the JSON Web Key Set of every pending, active and retained key: public
// parameters with kid, alg and use=sig. The returned bytes are shared: do not modify them.
func (r *Ring) JWKS(ctx context.Context) ([]byte, error) {
	s := r.snap.Load()
	if s == nil {
		return nil, ErrNoKey
	}
	return s.jwks(r.opts.Now(), r.opts.Retain), nil
}

// refresh replaces the snapshot with stored, reusing already opened keys so that each private
// key is decrypted once per process. An unchanged set keeps the current snapshot (and its JWKS).
func (r *Ring) refresh(stored []StoredKey) error {
	old := r.snap.Load()
	if old != nil && old.same(stored) {
		return nil
	}
	opened := make(map[string]*signingKey)
	if old != nil {
		for _, k := range old.keys {
			opened[k.KID] = k
		}
	}
	keys := make([]*signingKey, 0, len(stored))
	for _, sk := range byActivation(stored) {
		k := opened[sk.KID] // stored keys are never updated, so a kid seen before is the same key
		if k == nil {
			var err error
			if k, err = openKey(r.sealer, sk); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
		}
		keys = append(keys, k)
	}
	r.snap.Store(&snapshot{keys: keys})
	return nil
}

// snapshot is an immutable view of the ring's keys, ordered by activation.
type snapshot struct {
	keys  []*signingKey
	cache atomic.Pointer[jwksCache]
}

type jwksCache struct {
	body  []byte
	from  time.Time // the body is right for times in [from, until)
	until time.Time // zero: until the key set changes
}

func (s *snapshot) same(stored []StoredKey) bool {
	if len(stored) != len(s.keys) {
		return false
	}
	for _, sk := range stored {
		if !slices.ContainsFunc(s.keys, func(k *signingKey) bool { return k.KID == sk.KID }) {
			return false
		}
	}
	return true
}

// active returns the key with the latest activation not after now.
func (s *snapshot) active(now time.Time) *signingKey {
	for i := len(s.keys) - 1; i >= 0; i-- {
		if !s.keys[i].ActivatesAt.After(now) {
			return s.keys[i]
		}
	}
	return nil
}

// jwks returns the key set published at now, rebuilt only when a retained key has expired
// since it was last built.
func (s *snapshot) jwks(now time.Time, retain time.Duration) []byte {
	if c := s.cache.Load(); c != nil && !now.Before(c.from) && (c.until.IsZero() || now.Before(c.until)) {
		return c.body
	}
	c := &jwksCache{from: now}
	var b bytes.Buffer
	b.WriteString(`{"keys":[`)
	n := 0
	for i, k := range s.keys {
		if i+1 < len(s.keys) {
			// A key with an activated successor is retired; it is published until Retain later.
			removed := s.keys[i+1].ActivatesAt.Add(retain)
			if !removed.After(now) {
				continue
			}
			if c.until.IsZero() || removed.Before(c.until) {
				c.until = removed
			}
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(k.publicJWK)
		n++
	}
	b.WriteString("]}")
	c.body = b.Bytes()
	s.cache.Store(c)
	return c.body
}

// byActivation returns the keys in the order they sign: by activation time, then generation.
func byActivation(stored []StoredKey) []StoredKey {
	sorted := slices.Clone(stored)
	slices.SortFunc(sorted, func(a, b StoredKey) int {
		if c := a.ActivatesAt.Compare(b.ActivatesAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Generation, b.Generation)
	})
	return sorted
}

// timeline is the store's keys ordered by activation: the order in which they sign. Each key's
// state at now follows from its own activation time and its successor's.
type timeline struct {
	keys []*StoredKey
	now  time.Time
}

func newTimeline(stored []StoredKey, now time.Time) timeline {
	sorted := byActivation(stored)
	tl := timeline{keys: make([]*StoredKey, len(sorted)), now: now}
	for i := range sorted {
		tl.keys[i] = &sorted[i]
	}
	return tl
}

// active returns the key that signs now: the latest activation not after now.
func (tl timeline) active() *StoredKey {
	for i := len(tl.keys) - 1; i >= 0; i-- {
		if !tl.keys[i].ActivatesAt.After(tl.now) {
			return tl.keys[i]
		}
	}
	return nil
}

// pending returns the next key to activate, if one is published but not yet signing.
func (tl timeline) pending() *StoredKey {
	for _, k := range tl.keys {
		if k.ActivatesAt.After(tl.now) {
			return k
		}
	}
	return nil
}

// expired returns the kids of keys whose successor activated at least retain ago.
func (tl timeline) expired(retain time.Duration) []string {
	var kids []string
	for i := 0; i+1 < len(tl.keys); i++ {
		if !tl.keys[i+1].ActivatesAt.Add(retain).After(tl.now) {
			kids = append(kids, tl.keys[i].KID)
		}
	}
	return kids
}

func (tl timeline) info(retain time.Duration) []KeyInfo {
	out := make([]KeyInfo, len(tl.keys))
	for i, k := range tl.keys {
		ki := KeyInfo{
			KID:         k.KID,
			Alg:         k.Alg,
			Generation:  k.Generation,
			State:       StateActive,
			CreatedAt:   k.CreatedAt,
			ActivatesAt: k.ActivatesAt,
		}
		if k.ActivatesAt.After(tl.now) {
			ki.State = StatePending
		}
		if i+1 < len(tl.keys) {
			retires := tl.keys[i+1].ActivatesAt
			removed := retires.Add(retain)
			ki.RetiresAt, ki.RemovedAt = &retires, &removed
			if !retires.After(tl.now) {
				ki.State = StateRetired
			}
		}
		out[i] = ki
	}
	return out
}
