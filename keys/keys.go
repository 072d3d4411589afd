// Package keys holds Portaria's signing-key ring: it generates signing keys, keeps their private
// halves encrypted at rest under a key derived from the master key, rotates them with
// pre-publication (a new key is in the JWKS for PublishAhead before it signs, an old one stays
// there for Retain after it stops), signs JWS compact tokens and serves the JWKS.
//
// Several instances may share one store: the only write that races is inserting the next
// generation, and the store's unique generation number makes it a compare-and-swap, so exactly
// one instance wins and the others adopt its key on their next reload. Every state of a key
// (pending, active, retired, removed) follows from its activation time and its successor's, so a
// process killed at any point restarts into the same state.
package keys

import (
	"context"
	"errors"
	"time"
)

// Alg is a JWS signature algorithm the ring can generate keys for.
type Alg string

const (
	// ES256 is ECDSA on P-256 with SHA-256: the default, small and fast.
	ES256 Alg = "ES256"
	// EdDSA is Ed25519.
	EdDSA Alg = "EdDSA"
	// RS256 is RSA PKCS#1 v1.5 with SHA-256 on a 3072-bit key, for relying parties that
	// support nothing else; signing costs far more than with ES256.
	RS256 Alg = "RS256"
)

func (a Alg) valid() bool { return a == ES256 || a == EdDSA || a == RS256 }

var (
	// ErrConflict: a key with the same generation (or kid) already exists. Another instance
	// won the race to rotate.
	ErrConflict = errors.New("keys: key generation already exists")
	// ErrNoKey: the ring has no key it may sign with yet (Maintain has not run or failed).
	ErrNoKey = errors.New("keys: no active signing key")
)

// Store persists the key ring. Implementations must make InsertKey fail with an error wrapping
// ErrConflict when the generation already exists: that is what lets instances rotate safely.
type Store interface {
	// ListKeys returns every stored key, in ascending generation.
	ListKeys(ctx context.Context) ([]StoredKey, error)
	// InsertKey adds a key, or fails with ErrConflict if its generation is taken.
	InsertKey(ctx context.Context, k StoredKey) error
	// DeleteKeys removes the keys with the given kids; unknown kids are ignored.
	DeleteKeys(ctx context.Context, kids []string) error
}

// StoredKey is one key as persisted. The private key is sealed with the kid as additional data,
// so a sealed blob copied onto another row does not open.
type StoredKey struct {
	KID           string
	Generation    int64
	Alg           Alg
	PublicJWK     []byte // JSON, public parameters plus kid, alg and use
	PrivateSealed []byte // PKCS#8, sealed by Sealer with AAD = KID
	CreatedAt     time.Time
	ActivatesAt   time.Time
}

// State is where a key is in its life.
type State string

const (
	// StatePending: published in the JWKS, not yet signing.
	StatePending State = "pending"
	// StateActive: the one key that signs now.
	StateActive State = "active"
	// StateRetired: no longer signs, still published until its RemovedAt.
	StateRetired State = "retired"
)

// KeyInfo describes a key for operators (`portaria keys list`). RetiresAt is set once a
// successor is scheduled; RemovedAt is when the key leaves the JWKS and the store.
type KeyInfo struct {
	KID         string     `json:"kid"`
	Alg         Alg        `json:"alg"`
	Generation  int64      `json:"generation"`
	State       State      `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiresAt   *time.Time `json:"retires_at,omitempty"`
	RemovedAt   *time.Time `json:"removed_at,omitempty"`
}
