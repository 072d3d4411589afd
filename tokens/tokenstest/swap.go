package tokenstest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/tokens"
)

// The swap tests use the key layout of a refresh rotation: a family's keys share its hash tag,
// and the read is a per-user key of another slot.
const (
	swapKey   = "rt:{fam}:old"
	swapGuard = "fam:{fam}"
	swapRead  = "nb:{user}"
)

// swapWrites are the writes of a rotation: the successor, the tombstone, the time of use.
func swapWrites(ttl time.Duration) []tokens.Entry {
	return []tokens.Entry{
		{Key: "rt:{fam}:new", Value: []byte("t2:web"), TTL: ttl},
		{Key: "used:{fam}:old", Value: []byte("\x00\xffbinary"), TTL: ttl},
		{Key: "lu:{fam}", Value: []byte{}, TTL: ttl},
	}
}

func swapRotation(want string, ttl time.Duration) tokens.Swap {
	return tokens.Swap{
		Key: swapKey, Want: []byte(want), Guard: swapGuard,
		Writes: swapWrites(ttl), Reads: []string{swapRead, "nb:{nobody}"},
	}
}

// wantSwapped checks what a swap reports, and that its reads came back in order, nil for the
// missing key.
func wantSwapped(t *testing.T, got tokens.Swapped, done bool, value, guard any) {
	t.Helper()
	if got.Done != done || !sameValue(got.Value, value) || !sameValue(got.Guard, guard) {
		t.Fatalf("Swap: got done %v, value %q, guard %q; want %v, %v, %v", got.Done, got.Value, got.Guard, done, value, guard)
	}
	if len(got.Reads) != 2 || string(got.Reads[0]) != "mark" || got.Reads[1] != nil {
		t.Fatalf("Swap reads: got %q, want [\"mark\" nil]", got.Reads)
	}
}

// sameValue compares a value read with want, a string or nil (missing).
func sameValue(got []byte, want any) bool {
	if want == nil {
		return got == nil
	}
	return got != nil && string(got) == want.(string)
}

func wantNoSwapWrites(t *testing.T, s tokens.Store) {
	t.Helper()
	for _, e := range swapWrites(long) {
		wantMissing(t, s, e.Key)
	}
}

// putRotation stores what a rotation finds: the token's record (unless record is empty), the
// family, living guardTTL, and the user's mark.
func putRotation(t *testing.T, s tokens.Store, record string, guardTTL time.Duration) {
	t.Helper()
	if record != "" {
		mustPut(t, s, swapKey, record, long)
	}
	mustPut(t, s, swapGuard, "family", guardTTL)
	mustPut(t, s, swapRead, "mark", long)
}

func mustSwap(t *testing.T, s tokens.Store, sw tokens.Swap) tokens.Swapped {
	t.Helper()
	got, err := s.Swap(t.Context(), sw)
	if err != nil {
		t.Fatalf("Swap: %v", err)
	}
	return got
}

func swapDone(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:web", long)
	wantSwapped(t, mustSwap(t, s, swapRotation("t2:web", long)), true, "t2:web", "family")
	wantMissing(t, s, swapKey)
	for _, e := range swapWrites(long) {
		wantValue(t, s, e.Key, string(e.Value))
	}
	wantValue(t, s, swapGuard, "family")
}

func swapOtherValue(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:other", long)
	wantSwapped(t, mustSwap(t, s, swapRotation("t2:web", long)), false, "t2:other", "family")
	wantValue(t, s, swapKey, "t2:other")
	wantNoSwapWrites(t, s)
}

func swapDeadGuard(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:web", short)
	time.Sleep(after)
	wantSwapped(t, mustSwap(t, s, swapRotation("t2:web", long)), false, "t2:web", nil)
	wantValue(t, s, swapKey, "t2:web")
	wantNoSwapWrites(t, s)
}

func swapMissingKey(t *testing.T, s tokens.Store) {
	putRotation(t, s, "", long)
	wantSwapped(t, mustSwap(t, s, swapRotation("t2:web", long)), false, nil, "family")
	wantNoSwapWrites(t, s)
}

func swapWritesDieWithTheGuard(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:web", short)
	if got := mustSwap(t, s, swapRotation("t2:web", long)); !got.Done {
		t.Fatalf("Swap: got %+v, want it done", got)
	}
	for _, e := range swapWrites(long) {
		wantValue(t, s, e.Key, string(e.Value))
	}
	time.Sleep(after)
	wantNoSwapWrites(t, s)
}

func swapShorterTTL(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:web", long)
	if got := mustSwap(t, s, swapRotation("t2:web", short)); !got.Done {
		t.Fatalf("Swap: got %+v, want it done", got)
	}
	time.Sleep(after)
	wantNoSwapWrites(t, s)
	wantValue(t, s, swapGuard, "family")
}

func concurrentSwap(t *testing.T, s tokens.Store) {
	ctx := t.Context()
	putRotation(t, s, "", long)
	for round := range 20 {
		key := fmt.Sprintf("rt:{fam}:%d", round)
		mustPut(t, s, key, "t2:web", long)
		var wins atomic.Int64
		errs := race(func(int) error {
			sw := swapRotation("t2:web", long)
			sw.Key = key
			got, err := s.Swap(ctx, sw)
			switch {
			case err != nil:
				return err
			case got.Done:
				wins.Add(1)
			case got.Value != nil:
				return fmt.Errorf("a swap that lost found %q, want nothing", got.Value)
			}
			return nil
		})
		for _, err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d swaps done, want exactly 1", round, n)
		}
	}
}

func swapNonPositiveTTL(t *testing.T, s tokens.Store) {
	putRotation(t, s, "t2:web", long)
	for _, ttl := range []time.Duration{0, -time.Second} {
		sw := swapRotation("t2:web", long)
		sw.Writes[1].TTL = ttl
		if _, err := s.Swap(t.Context(), sw); err == nil || errors.Is(err, tokens.ErrUnavailable) {
			t.Errorf("Swap with ttl %v: got %v, want an error", ttl, err)
		}
	}
	wantValue(t, s, swapKey, "t2:web")
	wantNoSwapWrites(t, s)
}
