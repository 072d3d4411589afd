package tokens

import (
	"context"
	"time"
)

// RevocationKind says what a revocation voids.
type RevocationKind string

const (
	// RevokedSession voids every token of one session (refresh family): Subject is its sid.
	RevokedSession RevocationKind = "session"
	// RevokedUser voids every token of a user issued at or before NotBefore: Subject is the user id.
	RevokedUser RevocationKind = "user"
)

// Revocation is one entry of the revocation feed that resource servers poll, so that a revoked
// session stops working within seconds while access tokens are still verified offline.
type Revocation struct {
	Seq       int64          `json:"-"`
	Kind      RevocationKind `json:"kind"`
	Subject   string         `json:"subject"`
	NotBefore time.Time      `json:"not_before"`
	// ExpiresAt: after it every token the entry could void has expired, so it can be dropped.
	ExpiresAt time.Time `json:"expires_at"`
}

// RevocationLog is the durable, ordered feed of revocations (a SQL table: it must survive a
// token-store restart and be shared by every instance).
type RevocationLog interface {
	// Append adds r and assigns its Seq.
	Append(ctx context.Context, r Revocation) error
	// Since returns up to limit unexpired entries with Seq > cursor, in Seq order.
	Since(ctx context.Context, cursor int64, limit int) ([]Revocation, error)
}
