// Package tokenstest is the conformance suite of tokens.Store, tokens.RevocationLog and
// tokens.SessionIndex: every backend's tests call Run (and RunRevocationLog, RunSessionIndex), so
// that all backends are held to one behaviour.
package tokenstest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// The suite uses real time, since Redis expires keys on its own clock. Short TTLs keep it fast;
// the sleeps leave a margin over them.
const (
	long  = time.Minute            // a TTL that does not run out during a test
	short = 150 * time.Millisecond // a TTL that a test waits out
	after = short + 60*time.Millisecond
)

// goroutines is how many callers race for one key in the concurrency tests.
const goroutines = 50

// Run runs the conformance suite. newStore returns an empty store for one subtest; it may be
// called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) tokens.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s tokens.Store)
	}{
		{"put then get returns the value", putThenGet},
		{"put on a live key fails with ErrExists and keeps the old value", putOnLiveKey},
		{"put on an expired key succeeds", putOnExpiredKey},
		{"set then get returns the value", setThenGet},
		{"set overwrites a live value", setOverwrites},
		{"set replaces the ttl of the value it overwrites", setReplacesTTL},
		{"a set value expires after its ttl and blocks put until then", setExpires},
		{"a missing key is not found by get, take or delete", missingKey},
		{"delete removes a live key and reports it", deleteLiveKey},
		{"take returns the value once, then ErrNotFound", takeOnce},
		{"of many concurrent takes of one key exactly one wins", concurrentTake},
		{"of many concurrent puts of one key exactly one succeeds", concurrentPut},
		{"incr counts 1, 2, 3", incrCounts},
		{"concurrent incr loses no count", concurrentIncr},
		{"incr restarts after its window and increments do not extend it", incrWindow},
		{"decr takes one off a live counter, never below zero, and keeps its window", decrCounts},
		{"a put value expires after its ttl", putExpires},
		{"binary values round-trip", binaryValues},
		{"keys with hash tags, colons and unicode are distinct", unusualKeys},
		{"a ttl that is not positive is an error", nonPositiveTTL},
		{"get many returns live values in order and nil for the others", getMany},
		{"get many of no keys is empty", getManyNone},
		{"get many of a hundred keys returns each in order", getManyMany},
		{"set many writes every entry, each with its own ttl", setMany},
		{"set many overwrites live values and their ttls", setManyOverwrites},
		{"set many with a ttl that is not positive writes nothing", setManyNonPositiveTTL},
		{"swap takes the key, writes and reads when the key holds the wanted value", swapDone},
		{"swap leaves a key holding another value, and writes nothing", swapOtherValue},
		{"swap without a live guard changes nothing", swapDeadGuard},
		{"swap of a missing key writes nothing", swapMissingKey},
		{"swap writes never outlive the guard", swapWritesDieWithTheGuard},
		{"swap writes keep a ttl shorter than the guard's", swapShorterTTL},
		{"of many concurrent swaps of one key exactly one is done", concurrentSwap},
		{"swap with a ttl that is not positive writes nothing", swapNonPositiveTTL},
		{"ping succeeds", ping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

func putThenGet(t *testing.T, s tokens.Store) {
	mustPut(t, s, "k", "v1", long)
	wantValue(t, s, "k", "v1")
}

func putOnLiveKey(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustPut(t, s, "k", "old", long)
	if err := s.Put(ctx, "k", []byte("new"), long); !errors.Is(err, tokens.ErrExists) {
		t.Fatalf("second Put: got %v, want ErrExists", err)
	}
	wantValue(t, s, "k", "old")
}

func putOnExpiredKey(t *testing.T, s tokens.Store) {
	mustPut(t, s, "k", "old", short)
	time.Sleep(after)
	mustPut(t, s, "k", "new", long)
	wantValue(t, s, "k", "new")
}

func setThenGet(t *testing.T, s tokens.Store) {
	mustSet(t, s, "k", "v1", long)
	wantValue(t, s, "k", "v1")
}

func setOverwrites(t *testing.T, s tokens.Store) {
	mustPut(t, s, "k", "old", long)
	mustSet(t, s, "k", "new", long)
	wantValue(t, s, "k", "new")
	mustSet(t, s, "k", "newer", long)
	wantValue(t, s, "k", "newer")
}

// setReplacesTTL overwrites a long-lived value with a short-lived one: the new TTL governs.
func setReplacesTTL(t *testing.T, s tokens.Store) {
	mustPut(t, s, "k", "old", long)
	mustSet(t, s, "k", "new", short)
	time.Sleep(after)
	wantMissing(t, s, "k")
}

func setExpires(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustSet(t, s, "k", "v", short)
	if err := s.Put(ctx, "k", []byte("other"), long); !errors.Is(err, tokens.ErrExists) {
		t.Fatalf("Put on a live set key: got %v, want ErrExists", err)
	}
	wantValue(t, s, "k", "v")
	time.Sleep(after)
	wantMissing(t, s, "k")
	mustPut(t, s, "k", "other", long)
	wantValue(t, s, "k", "other")
}

func missingKey(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("Get: got %v, want ErrNotFound", err)
	}
	if _, err := s.Take(ctx, "missing"); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("Take: got %v, want ErrNotFound", err)
	}
	if deleted, err := s.Delete(ctx, "missing"); err != nil || deleted {
		t.Errorf("Delete: got (%v, %v), want (false, nil)", deleted, err)
	}
}

func deleteLiveKey(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustPut(t, s, "k", "v", long)
	if deleted, err := s.Delete(ctx, "k"); err != nil || !deleted {
		t.Fatalf("Delete: got (%v, %v), want (true, nil)", deleted, err)
	}
	wantMissing(t, s, "k")
	if deleted, err := s.Delete(ctx, "k"); err != nil || deleted {
		t.Fatalf("second Delete: got (%v, %v), want (false, nil)", deleted, err)
	}
}

func takeOnce(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustPut(t, s, "k", "v", long)
	got, err := s.Take(ctx, "k")
	if err != nil || string(got) != "v" {
		t.Fatalf("Take: got (%q, %v), want (\"v\", nil)", got, err)
	}
	if _, err := s.Take(ctx, "k"); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("second Take: got %v, want ErrNotFound", err)
	}
	wantMissing(t, s, "k")
}

func concurrentTake(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	for round := range 20 {
		key := fmt.Sprintf("k%d", round)
		value := fmt.Sprintf("v%d", round)
		mustPut(t, s, key, value, long)
		var wins atomic.Int64
		errs := race(func(int) error {
			got, err := s.Take(ctx, key)
			if errors.Is(err, tokens.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if string(got) != value {
				return fmt.Errorf("Take returned %q, want %q", got, value)
			}
			wins.Add(1)
			return nil
		})
		for _, err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d takes got the value, want exactly 1", round, n)
		}
	}
}

func concurrentPut(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	var winner atomic.Int64
	winner.Store(-1)
	var wins atomic.Int64
	errs := race(func(i int) error {
		err := s.Put(ctx, "k", []byte(fmt.Sprint(i)), long)
		if errors.Is(err, tokens.ErrExists) {
			return nil
		}
		if err != nil {
			return err
		}
		wins.Add(1)
		winner.Store(int64(i))
		return nil
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d puts succeeded, want exactly 1", n)
	}
	wantValue(t, s, "k", fmt.Sprint(winner.Load()))
}

func incrCounts(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	for want := int64(1); want <= 3; want++ {
		got, err := s.Incr(ctx, "counter", long)
		if err != nil || got != want {
			t.Fatalf("Incr: got (%d, %v), want (%d, nil)", got, err, want)
		}
	}
}

func concurrentIncr(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	const perGoroutine = 20
	var mu sync.Mutex
	seen := make(map[int64]bool)
	errs := race(func(int) error {
		for range perGoroutine {
			n, err := s.Incr(ctx, "counter", long)
			if err != nil {
				return err
			}
			mu.Lock()
			dup := seen[n]
			seen[n] = true
			mu.Unlock()
			if dup {
				return fmt.Errorf("Incr returned %d twice", n)
			}
		}
		return nil
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	// 1000 distinct results, all in 1..1000, are exactly 1..1000.
	const total = goroutines * perGoroutine
	for n := range seen {
		if n < 1 || n > total {
			t.Fatalf("Incr returned %d, want 1..%d", n, total)
		}
	}
	if len(seen) != total {
		t.Fatalf("got %d distinct counts, want %d", len(seen), total)
	}
}

// incrWindow increments at 0, at ~2/3 of the window and just after the window. A fixed window has
// ended by the third increment; one extended by the second would still be open.
func incrWindow(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	const window = 300 * time.Millisecond
	incr := func(want int64) {
		t.Helper()
		got, err := s.Incr(ctx, "counter", window)
		if err != nil || got != want {
			t.Fatalf("Incr: got (%d, %v), want (%d, nil)", got, err, want)
		}
	}
	incr(1)
	time.Sleep(200 * time.Millisecond)
	incr(2)
	time.Sleep(150 * time.Millisecond)
	incr(1)
	incr(2)
}

func decrCounts(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	decr := func(want int64) {
		t.Helper()
		if got, err := s.Decr(ctx, "counter"); err != nil || got != want {
			t.Fatalf("Decr: got (%d, %v), want (%d, nil)", got, err, want)
		}
	}
	decr(0) // missing: stays missing
	if got, err := s.Incr(ctx, "counter", short); err != nil || got != 1 {
		t.Fatalf("Incr after Decr of a missing counter: got (%d, %v), want (1, nil)", got, err)
	}
	s.Incr(ctx, "counter", short)
	decr(1)
	decr(0)
	decr(0) // never below zero
	if got, err := s.Incr(ctx, "counter", short); err != nil || got != 1 {
		t.Fatalf("Incr after Decr: got (%d, %v), want (1, nil)", got, err)
	}
	time.Sleep(after) // the window set by the first Incr still ends the counter
	decr(0)
	if got, err := s.Incr(ctx, "counter", long); err != nil || got != 1 {
		t.Fatalf("Incr after the window: got (%d, %v), want (1, nil)", got, err)
	}
}

func putExpires(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustPut(t, s, "k", "v", short)
	wantValue(t, s, "k", "v")
	time.Sleep(after)
	wantMissing(t, s, "k")
	if _, err := s.Take(ctx, "k"); !errors.Is(err, tokens.ErrNotFound) {
		t.Errorf("Take after expiry: got %v, want ErrNotFound", err)
	}
	if deleted, err := s.Delete(ctx, "k"); err != nil || deleted {
		t.Errorf("Delete after expiry: got (%v, %v), want (false, nil)", deleted, err)
	}
}

func binaryValues(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for key, value := range map[string][]byte{"all bytes": all, "empty": {}} {
		if err := s.Put(ctx, key, value, long); err != nil {
			t.Fatalf("Put %q: %v", key, err)
		}
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("Get %q: got (%x, %v), want (%x, nil)", key, got, err, value)
		}
		got, err = s.Take(ctx, key)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("Take %q: got (%x, %v), want (%x, nil)", key, got, err, value)
		}
	}
}

func unusualKeys(t *testing.T, s tokens.Store) {
	keys := []string{
		"{family-1}:refresh:abc",
		"{family-1}:used",
		"family-1:used",
		"rt:{fam}:a:b:c",
		"a:b:c",
		"ключ:🔑",
		"with space",
		"x",
	}
	for i, key := range keys {
		mustPut(t, s, key, fmt.Sprint(i), long)
	}
	for i, key := range keys {
		wantValue(t, s, key, fmt.Sprint(i))
	}
}

func nonPositiveTTL(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := s.Put(ctx, "k", []byte("v"), ttl); err == nil || errors.Is(err, tokens.ErrExists) {
			t.Errorf("Put with ttl %v: got %v, want an error", ttl, err)
		}
		if err := s.Set(ctx, "k", []byte("v"), ttl); err == nil {
			t.Errorf("Set with ttl %v: got no error", ttl)
		}
		if _, err := s.Incr(ctx, "counter", ttl); err == nil {
			t.Errorf("Incr with ttl %v: got no error", ttl)
		}
	}
	wantMissing(t, s, "k")
	wantMissing(t, s, "counter")
}

func getMany(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	// Keys of different hash tags: in a Redis Cluster they live in different slots.
	mustPut(t, s, "fam:{a}", "family a", long)
	mustSet(t, s, "nb:{user}", "mark", long)
	mustPut(t, s, "rt:{b}:x", "", long)
	mustPut(t, s, "taken", "v", long)
	mustPut(t, s, "expiring", "v", short)
	if _, err := s.Take(ctx, "taken"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(after)
	got, err := s.GetMany(ctx, "nb:{user}", "missing", "fam:{a}", "taken", "expiring", "rt:{b}:x", "fam:{a}")
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	want := [][]byte{[]byte("mark"), nil, []byte("family a"), nil, nil, {}, []byte("family a")}
	if len(got) != len(want) {
		t.Fatalf("GetMany: got %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if (got[i] == nil) != (want[i] == nil) || !bytes.Equal(got[i], want[i]) {
			t.Errorf("GetMany value %d: got %q (nil %v), want %q (nil %v)", i, got[i], got[i] == nil, want[i], want[i] == nil)
		}
	}
}

func getManyMany(t *testing.T, s tokens.Store) {
	var keys []string
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("k{%d}", i))
		if i%3 == 0 {
			mustPut(t, s, keys[i], fmt.Sprint(i), long)
		}
	}
	got, err := s.GetMany(t.Context(), keys...)
	if err != nil || len(got) != len(keys) {
		t.Fatalf("GetMany of %d keys: got (%d values, %v)", len(keys), len(got), err)
	}
	for i, v := range got {
		if (v != nil) != (i%3 == 0) || (v != nil && string(v) != fmt.Sprint(i)) {
			t.Errorf("GetMany value %d: got %q", i, v)
		}
	}
}

func getManyNone(t *testing.T, s tokens.Store) {
	got, err := s.GetMany(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("GetMany(): got (%q, %v), want no values", got, err)
	}
}

func setMany(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	err := s.SetMany(ctx, []tokens.Entry{
		{Key: "rt:{a}:next", Value: []byte("record"), TTL: long},
		{Key: "used:{a}:prev", Value: []byte("123"), TTL: long},
		{Key: "lu:{b}", Value: []byte("456"), TTL: short},
	})
	if err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	wantValue(t, s, "rt:{a}:next", "record")
	wantValue(t, s, "used:{a}:prev", "123")
	wantValue(t, s, "lu:{b}", "456")
	time.Sleep(after)
	wantValue(t, s, "rt:{a}:next", "record")
	wantValue(t, s, "used:{a}:prev", "123")
	wantMissing(t, s, "lu:{b}")
	if err := s.SetMany(ctx, nil); err != nil {
		t.Fatalf("SetMany of no entries: %v", err)
	}
}

func setManyOverwrites(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	mustPut(t, s, "a", "old", long)
	mustSet(t, s, "b", "old", long)
	mustPut(t, s, "c", "old", long)
	err := s.SetMany(ctx, []tokens.Entry{
		{Key: "a", Value: []byte("new"), TTL: short},
		{Key: "b", Value: []byte("new"), TTL: long},
		{Key: "c", Value: []byte("first"), TTL: long},
		{Key: "c", Value: []byte("last"), TTL: long},
	})
	if err != nil {
		t.Fatalf("SetMany: %v", err)
	}
	wantValue(t, s, "a", "new")
	wantValue(t, s, "b", "new")
	wantValue(t, s, "c", "last")
	time.Sleep(after)
	wantMissing(t, s, "a")
	wantValue(t, s, "b", "new")
	// A written key is live: Put refuses it, Take gets it.
	if err := s.Put(ctx, "b", []byte("other"), long); !errors.Is(err, tokens.ErrExists) {
		t.Fatalf("Put on a key written by SetMany: got %v, want ErrExists", err)
	}
	if got, err := s.Take(ctx, "c"); err != nil || string(got) != "last" {
		t.Fatalf("Take of a key written by SetMany: got (%q, %v), want (\"last\", nil)", got, err)
	}
}

func setManyNonPositiveTTL(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second} {
		err := s.SetMany(ctx, []tokens.Entry{
			{Key: "a", Value: []byte("v"), TTL: long},
			{Key: "b", Value: []byte("v"), TTL: ttl},
		})
		if err == nil {
			t.Errorf("SetMany with ttl %v: got no error", ttl)
		}
	}
	wantMissing(t, s, "a")
	wantMissing(t, s, "b")
}

func ping(t *testing.T, s tokens.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// race runs f(0) … f(goroutines-1) concurrently, released together by closing a channel so that
// they really contend, and returns the errors they reported.
func race(f func(i int) error) []error {
	start := make(chan struct{})
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start
			if err := f(i); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return all
}

func mustPut(t *testing.T, s tokens.Store, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Put(t.Context(), key, []byte(value), ttl); err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
}

func mustSet(t *testing.T, s tokens.Store, key, value string, ttl time.Duration) {
	t.Helper()
	if err := s.Set(t.Context(), key, []byte(value), ttl); err != nil {
		t.Fatalf("Set %q: %v", key, err)
	}
}

func wantValue(t *testing.T, s tokens.Store, key, want string) {
	t.Helper()
	got, err := s.Get(t.Context(), key)
	if err != nil || string(got) != want {
		t.Fatalf("Get %q: got (%q, %v), want (%q, nil)", key, got, err, want)
	}
}

func wantMissing(t *testing.T, s tokens.Store, key string) {
	t.Helper()
	if got, err := s.Get(t.Context(), key); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("Get %q: got (%q, %v), want ErrNotFound", key, got, err)
	}
}
