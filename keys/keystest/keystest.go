// Package keystest is the conformance suite every keys.Store backend passes.
package keystest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/keys"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) keys.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s keys.Store)
	}{
		{"an empty store lists no keys", testEmpty},
		{"an inserted key is listed with every field intact", testRoundTrip},
		{"keys are listed in ascending generation", testOrder},
		{"a second key of one generation is refused with ErrConflict", testDuplicateGeneration},
		{"deleted keys are gone and unknown kids are ignored", testDelete},
		{"of concurrent inserts of one generation exactly one wins", testConcurrentInsert},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// base is a time with microsecond precision, which every backend keeps.
var base = time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)

func newKey(gen int64) keys.StoredKey {
	id := make([]byte, 16)
	rand.Read(id)
	sealed := make([]byte, 80)
	rand.Read(sealed)
	kid := base64.RawURLEncoding.EncodeToString(id)
	return keys.StoredKey{
		KID:           kid,
		Generation:    gen,
		Alg:           keys.ES256,
		PublicJWK:     fmt.Appendf(nil, `{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":%q}`, kid),
		PrivateSealed: sealed,
		CreatedAt:     base.Add(time.Duration(gen) * time.Hour),
		ActivatesAt:   base.Add(time.Duration(gen)*time.Hour + 10*time.Minute),
	}
}

func list(t *testing.T, s keys.Store) []keys.StoredKey {
	t.Helper()
	got, err := s.ListKeys(context.Background())
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	return got
}

func insert(t *testing.T, s keys.Store, k keys.StoredKey) {
	t.Helper()
	if err := s.InsertKey(context.Background(), k); err != nil {
		t.Fatalf("InsertKey(generation %d): %v", k.Generation, err)
	}
}

func kids(ks []keys.StoredKey) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.KID
	}
	return out
}

func testEmpty(t *testing.T, s keys.Store) {
	if got := list(t, s); len(got) != 0 {
		t.Fatalf("ListKeys on an empty store = %d keys", len(got))
	}
}

func testRoundTrip(t *testing.T, s keys.Store) {
	want := newKey(1)
	insert(t, s, want)
	got := list(t, s)
	if len(got) != 1 {
		t.Fatalf("ListKeys = %d keys, want 1", len(got))
	}
	g := got[0]
	if g.KID != want.KID || g.Generation != want.Generation || g.Alg != want.Alg ||
		!bytes.Equal(g.PublicJWK, want.PublicJWK) || !bytes.Equal(g.PrivateSealed, want.PrivateSealed) {
		t.Errorf("stored key = %+v\nwant %+v", g, want)
	}
	if !g.CreatedAt.Equal(want.CreatedAt) || !g.ActivatesAt.Equal(want.ActivatesAt) {
		t.Errorf("times = %v, %v; want %v, %v", g.CreatedAt, g.ActivatesAt, want.CreatedAt, want.ActivatesAt)
	}
}

func testOrder(t *testing.T, s keys.Store) {
	for _, gen := range []int64{3, 1, 2} {
		insert(t, s, newKey(gen))
	}
	var gens []int64
	for _, k := range list(t, s) {
		gens = append(gens, k.Generation)
	}
	if !slices.Equal(gens, []int64{1, 2, 3}) {
		t.Fatalf("generations = %v, want [1 2 3]", gens)
	}
}

func testDuplicateGeneration(t *testing.T, s keys.Store) {
	first := newKey(1)
	insert(t, s, first)
	err := s.InsertKey(context.Background(), newKey(1))
	if !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("InsertKey of a taken generation = %v, want ErrConflict", err)
	}
	if got := kids(list(t, s)); !slices.Equal(got, []string{first.KID}) {
		t.Fatalf("after the refused insert, kids = %v, want only the first %v", got, first.KID)
	}
}

func testDelete(t *testing.T, s keys.Store) {
	k1, k2, k3 := newKey(1), newKey(2), newKey(3)
	for _, k := range []keys.StoredKey{k1, k2, k3} {
		insert(t, s, k)
	}
	ctx := context.Background()
	if err := s.DeleteKeys(ctx, []string{k1.KID, k3.KID, "unknown"}); err != nil {
		t.Fatalf("DeleteKeys: %v", err)
	}
	if err := s.DeleteKeys(ctx, nil); err != nil {
		t.Fatalf("DeleteKeys(nil): %v", err)
	}
	if got := kids(list(t, s)); !slices.Equal(got, []string{k2.KID}) {
		t.Fatalf("after delete, kids = %v, want [%s]", got, k2.KID)
	}
	// A deleted generation number can be used again.
	insert(t, s, newKey(1))
}

func testConcurrentInsert(t *testing.T, s keys.Store) {
	insert(t, s, newKey(1))
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.InsertKey(context.Background(), newKey(2)) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, keys.ErrConflict):
			t.Errorf("a losing insert failed with %v, want ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent inserts of generation 2 succeeded, want exactly 1", won, n)
	}
	if got := list(t, s); len(got) != 2 {
		t.Fatalf("ListKeys = %d keys, want 2", len(got))
	}
}
