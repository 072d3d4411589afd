package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/portaria/portaria/keys"
)

// resourceServer caches the JWKS for its max-age, as a resource server honouring
// Cache-Control does, and verifies tokens against the cached copy only.
type resourceServer struct {
	fetch     func() []byte
	maxAge    time.Duration
	set       jwk.Set
	fetchedAt time.Time
}

func (rs *resourceServer) verify(now time.Time, token string) error {
	if rs.set == nil || now.Sub(rs.fetchedAt) >= rs.maxAge {
		set, err := jwk.Parse(rs.fetch())
		if err != nil {
			return err
		}
		rs.set, rs.fetchedAt = set, now
	}
	_, err := verify(rs.set, token)
	return err
}

type issued struct {
	token    string
	kid      string
	signedAt time.Time
	n        int
}

// TestRotationUnderLoad runs more than ten rotations on a fake clock, signing a token every
// step (100 ms for 10 s either side of every publication, activation and removal, 10 s in
// between) while a resource server with a JWKS cache verifies each token when issued, at random
// points of its life and at the last step before it expires. JW-07: no valid token is rejected, every kid was served in the JWKS at least the JWKS
// max-age before it signed, retired keys leave after Retain, one key is active at a time.
func TestRotationUnderLoad(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	start := c.Now()
	store, _ := newStore(t)
	opts := testOptions(c)
	publishAhead := 2*opts.JWKSMaxAge + opts.Reload
	r := newRing(t, store, newSealer(t), opts)
	rs := &resourceServer{maxAge: opts.JWKSMaxAge, fetch: func() []byte {
		b, err := r.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}}

	var (
		firstServed  = map[string]time.Time{} // when the ring's JWKS first held each kid
		lastServed   = map[string]time.Time{}
		info         = map[string]keys.KeyInfo{}
		bootstrapKID string
		lastBody     []byte
		served       map[string]bool
		live         []issued
		lastMaintain time.Time
		signed       int
		checks       int
		minLead      = time.Duration(1 << 62)
	)
	check := func(now time.Time, tok issued) {
		checks++
		if err := rs.verify(now, tok.token); err != nil {
			t.Fatalf("at +%v a valid token (#%d, kid %s, signed at +%v) was rejected: %v",
				now.Sub(start), tok.n, tok.kid, tok.signedAt.Sub(start), err)
		}
	}
	// interesting returns the times around which the clock moves in 100 ms steps.
	interesting := func() []time.Time {
		var ts []time.Time
		for _, ki := range info {
			ts = append(ts, ki.ActivatesAt, ki.ActivatesAt.Add(opts.Rotation-publishAhead))
			if ki.RemovedAt != nil {
				ts = append(ts, *ki.RemovedAt)
			}
		}
		return ts
	}
	const window = 10 * time.Second
	end := start.Add(11*opts.Rotation + opts.Retain)

	for step := 0; c.Now().Before(end); step++ {
		now := c.Now()
		if now.Sub(lastMaintain) >= opts.Reload || lastMaintain.IsZero() {
			maintain(t, r)
			lastMaintain = now
			list, err := r.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			active := 0
			for _, ki := range list {
				info[ki.KID] = ki
				if ki.State == keys.StateActive {
					active++
				}
				if ki.Generation == 1 {
					bootstrapKID = ki.KID
				}
			}
			if active != 1 {
				t.Fatalf("at +%v %d keys are active, want exactly 1: %+v", now.Sub(start), active, list)
			}
		}

		// What the ring serves now.
		body, err := r.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, lastBody) {
			set, err := jwk.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			served, lastBody = kidsOf(set), body
		}
		for kid := range served {
			if _, ok := firstServed[kid]; !ok {
				firstServed[kid] = now
			}
			lastServed[kid] = now
			if ki := info[kid]; ki.RemovedAt != nil && !now.Before(*ki.RemovedAt) {
				t.Fatalf("at +%v the JWKS still serves %s, removed at +%v", now.Sub(start), kid, ki.RemovedAt.Sub(start))
			}
		}

		// Issue a token until the last rotation is over, then let the tokens expire.
		if now.Before(start.Add(11 * opts.Rotation)) {
			tok, err := r.Sign(ctx, "at+jwt", fmt.Appendf(nil, `{"n":%d}`, signed))
			if err != nil {
				t.Fatal(err)
			}
			it := issued{token: tok, kid: kidOf(t, tok), signedAt: now, n: signed}
			signed++
			if it.kid != bootstrapKID {
				lead := now.Sub(firstServed[it.kid])
				if first, ok := firstServed[it.kid]; !ok || lead < opts.JWKSMaxAge {
					t.Fatalf("at +%v token signed with %s, first served at +%v: less than the JWKS max-age before",
						now.Sub(start), it.kid, first.Sub(start))
				}
				minLead = min(minLead, lead)
			}
			if ki := info[it.kid]; ki.State == keys.StatePending && now.Before(ki.ActivatesAt) {
				t.Fatalf("signed with pending key %s", it.kid)
			}
			check(now, it)
			live = append(live, it)
		}

		// Step densely near every boundary, coarsely elsewhere, never jumping over a window.
		next := 10 * time.Second
		for _, ts := range interesting() {
			if d := ts.Sub(now); d > -window && d < window {
				next = 100 * time.Millisecond
				break
			} else if d >= window && d-window < next {
				next = max(d-window, 100*time.Millisecond)
			}
		}

		// Verify tokens during their lifetime: one at random every other step, and each one at
		// the last step before it expires.
		if len(live) > 0 && step%2 == 0 {
			check(now, live[(step*7919)%len(live)])
		}
		for len(live) > 0 && now.Add(next).After(live[0].signedAt.Add(accessTTL)) {
			check(now, live[0])
			live = live[1:]
		}
		c.Add(next)
	}

	list, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := list[len(list)-1]
	if last.Generation < 12 {
		t.Fatalf("the last generation is %d, want at least 11 rotations", last.Generation)
	}
	if len(list) > 2 {
		t.Errorf("the store holds %d keys after the last rotation settled, want the active one and its pending successor at most: %+v", len(list), list)
	}
	// Every retired key disappeared from the JWKS within one step of its removal time.
	for kid, ki := range info {
		if ki.RemovedAt == nil || ki.RemovedAt.After(c.Now()) {
			continue
		}
		if gone := lastServed[kid]; gone.After(*ki.RemovedAt) || ki.RemovedAt.Sub(gone) > time.Second {
			t.Errorf("key %s was last served at +%v, want just before its removal at +%v",
				kid, gone.Sub(start), ki.RemovedAt.Sub(start))
		}
	}
	t.Logf("%d tokens signed, %d verifications, %d generations, shortest publication before signing: %v",
		signed, checks, last.Generation, minLead)
}

// TestTwoInstancesAgree runs two rings on one store, calling Maintain on both at the same time
// at every step: they agree on the active kid and the JWKS, and never create two keys of one
// generation or more keys than rotations.
func TestTwoInstancesAgree(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	store, _ := newStore(t)
	opts := testOptions(c)
	sealer := newSealer(t)
	a, b := newRing(t, store, sealer, opts), newRing(t, store, sealer, opts)
	seen := map[string]int64{}

	for step := 0; step < 6*60*2; step++ { // six hours in 30 s steps
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range []*keys.Ring{a, b} {
			wg.Go(func() { errs[i] = r.Maintain(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		ta, err := a.Sign(ctx, "at+jwt", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		tb, err := b.Sign(ctx, "at+jwt", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if kidOf(t, ta) != kidOf(t, tb) {
			t.Fatalf("step %d: instances sign with %s and %s", step, kidOf(t, ta), kidOf(t, tb))
		}
		ja, _ := a.JWKS(ctx)
		jb, _ := b.JWKS(ctx)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("step %d: instances serve different key sets", step)
		}
		stored, err := store.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gens := map[int64]bool{}
		for _, k := range stored {
			if gens[k.Generation] {
				t.Fatalf("generation %d exists twice", k.Generation)
			}
			gens[k.Generation] = true
			if g, ok := seen[k.KID]; ok && g != k.Generation {
				t.Fatalf("kid %s changed generation", k.KID)
			}
			seen[k.KID] = k.Generation
		}
		c.Add(30 * time.Second)
	}
	if n := len(seen); n < 6 || n > 7 {
		t.Fatalf("%d keys were created in six hours of hourly rotation, want 6 or 7", n)
	}
}

// crashStore performs each write and then fails, as if the process died right after the
// database committed and before the ring saw the result.
type crashStore struct {
	keys.Store
	crashes map[string]int
}

var errKilled = errors.New("killed")

func (s *crashStore) InsertKey(ctx context.Context, k keys.StoredKey) error {
	if err := s.Store.InsertKey(ctx, k); err != nil {
		return err
	}
	s.crashes["insert"]++
	return errKilled
}

func (s *crashStore) DeleteKeys(ctx context.Context, kids []string) error {
	if err := s.Store.DeleteKeys(ctx, kids); err != nil {
		return err
	}
	s.crashes["delete"]++
	return errKilled
}

// TestRestartAtAnyPointIsSafe recreates the ring from the store at every step, and kills it
// right after every write, before it could refresh its snapshot (RL-04): the keys carry on, every token stays verifiable
// against a fresh resource server's JWKS, and no token is signed with a kid published for less
// than PublishAhead.
func TestRestartAtAnyPointIsSafe(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	start := c.Now()
	inner, _ := newStore(t)
	opts := testOptions(c)
	publishAhead := 2*opts.JWKSMaxAge + opts.Reload
	sealer := newSealer(t)

	var (
		live       []issued
		published  = map[string]time.Time{} // first time any ring served the kid
		prevKIDs   = map[string]bool{}
		bootstrap  string
		crashes    = map[string]int{}
		generation int64
	)
	for step := 0; c.Now().Before(start.Add(5 * opts.Rotation)); step++ {
		now := c.Now()
		// A new process at every step; one that writes dies right after the write.
		r := newRing(t, &crashStore{Store: inner, crashes: crashes}, sealer, opts)
		if err := r.Maintain(ctx); errors.Is(err, errKilled) {
			r = newRing(t, inner, sealer, opts) // the restarted process
			maintain(t, r)
		} else if err != nil {
			t.Fatal(err)
		}

		set := jwks(t, r)
		kids := kidsOf(set)
		for kid := range prevKIDs {
			if !kids[kid] {
				// A key may leave only when nothing it signed is still valid.
				for _, tok := range live {
					if tok.kid == kid {
						t.Fatalf("at +%v key %s left the JWKS while token #%d it signed is valid", now.Sub(start), kid, tok.n)
					}
				}
			}
		}
		for kid := range kids {
			if _, ok := published[kid]; !ok {
				published[kid] = now
			}
		}
		prevKIDs = kids

		tok, err := r.Sign(ctx, "at+jwt", fmt.Appendf(nil, `{"n":%d}`, step))
		if err != nil {
			t.Fatal(err)
		}
		kid := kidOf(t, tok)
		if bootstrap == "" {
			bootstrap = kid
		}
		if kid != bootstrap && now.Sub(published[kid]) < publishAhead {
			t.Fatalf("at +%v signed with %s, published only since +%v", now.Sub(start), kid, published[kid].Sub(start))
		}
		live = append(live, issued{token: tok, kid: kid, signedAt: now, n: step})
		for len(live) > 0 && !now.Before(live[0].signedAt.Add(accessTTL)) {
			live = live[1:]
		}
		for _, it := range live {
			if _, err := verify(set, it.token); err != nil {
				t.Fatalf("at +%v token #%d (kid %s) does not verify against a fresh JWKS: %v", now.Sub(start), it.n, it.kid, err)
			}
		}

		list, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, ki := range list {
			if ki.State == keys.StateActive {
				active++
			}
			generation = max(generation, ki.Generation)
		}
		if active != 1 {
			t.Fatalf("at +%v %d keys are active", now.Sub(start), active)
		}
		c.Add(time.Minute)
	}
	if crashes["insert"] == 0 || crashes["delete"] == 0 {
		t.Fatalf("crashes injected: %v, want some after inserts and after deletes", crashes)
	}
	if generation < 5 {
		t.Fatalf("reached generation %d in five hours of hourly rotation", generation)
	}
}
