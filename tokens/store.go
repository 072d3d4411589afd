package tokens

import (
	"context"
	"errors"
	"time"
)

// Errors of a Store.
var (
	// ErrExists: Put found a live value under the key.
	ErrExists = errors.New("tokens: key exists")
	// ErrNotFound: no live value under the key (never stored, taken, deleted or expired).
	ErrNotFound = errors.New("tokens: key not found")
	// ErrUnavailable: the store could not be reached; callers fail closed (503).
	ErrUnavailable = errors.New("tokens: token store unavailable")
)

// Entry is one write of SetMany.
type Entry struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// Swap is a compare-and-swap for Store.Swap: the single atomic step of a refresh-token rotation
// (take the presented token, write its successor), with the family as its guard.
type Swap struct {
	// Key is deleted if its live value equals Want and Guard is live.
	Key  string
	Want []byte
	// Guard must be live for the swap to happen. Its remaining TTL caps the TTL of every write,
	// so that nothing written under it outlives it.
	Guard string
	// Writes are stored as SetMany stores them when the swap happens, and never otherwise.
	Writes []Entry
	// Reads are read after the swap, in the same round trip but not atomically with it, as
	// GetMany reads them. Unlike the other keys they may belong to other Cluster slots.
	Reads []string
}

// Swapped is what Store.Swap did and found.
type Swapped struct {
	Done  bool     // Key was deleted and the writes stored
	Value []byte   // the live value under Key before the swap; nil: none
	Guard []byte   // the live value under Guard; nil: none
	Reads [][]byte // the values under Swap.Reads, as GetMany returns them
}

// Store holds short-lived token state: refresh families, single-use markers, one-time tokens,
// counters. It is deliberately tiny and every operation is atomic, so that all OAuth rules can
// live once, in this package, on top of it. Every key has a TTL: nothing grows without bound.
//
// Keys are opaque to the store. A key may contain a Redis hash tag ("{family}") so that the keys
// of one family land in one Cluster slot.
type Store interface {
	// Put stores value under key for ttl, failing with ErrExists if a live value is there.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Set stores value under key for ttl, replacing any value (and its TTL) that is there:
	// markers that only ever move forward, such as a per-user "not before" time.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Get returns the live value under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetMany returns the live values under keys, in their order, in one round trip; the entry
	// of a missing or expired key is nil (a live empty value is a non-nil empty slice). The keys
	// may belong to different Cluster slots. The reads are not one atomic snapshot: each is
	// atomic, and they happen in the order of keys.
	GetMany(ctx context.Context, keys ...string) ([][]byte, error)
	// SetMany writes every entry as Set does, value and TTL replacing whatever is there, in one
	// round trip. A non-positive TTL fails the call before anything is written. Each write is
	// atomic and they are applied in order, but the batch as a whole need not be: after an
	// error some entries may have been written.
	SetMany(ctx context.Context, entries []Entry) error
	// Take atomically returns and deletes the live value under key; of many concurrent callers
	// exactly one gets it, the others get ErrNotFound.
	Take(ctx context.Context, key string) ([]byte, error)
	// Swap deletes sw.Key and stores sw.Writes, atomically, if sw.Key holds sw.Want and
	// sw.Guard is live; either way it returns what it found, the values of sw.Reads included, in
	// one round trip. Of concurrent swaps of one key exactly one is Done. Key, Guard and Writes
	// must share one hash tag (one Cluster slot). A non-positive TTL fails the call before
	// anything is written.
	Swap(ctx context.Context, sw Swap) (Swapped, error)
	// Delete removes key and reports whether a live value was there.
	Delete(ctx context.Context, key string) (bool, error)
	// Incr adds one to the counter under key and returns the new count. The counter's TTL is set
	// when it is created (a fixed window) and not extended by later increments.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Decr takes one off the live counter under key, never below zero, keeping its TTL, and
	// returns the new count; a missing counter stays missing (0).
	Decr(ctx context.Context, key string) (int64, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
}
