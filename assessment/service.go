package assessment

import (
	"encoding/base64"
	"time"

	"github.com/google/uuid"
)

// DefaultClockSkew is how far in the future an applied_at may lie, by default: the clock of the
// device that recorded the test may run a little ahead of ours.
const DefaultClockSkew = 5 * time.Minute

// Options configure a Service.
type Options struct {
	// Now returns the current time; nil means time.Now. The feedback date is compared with it.
	Now func() time.Time
	// ClockSkew is how far in the future an applied_at may lie; 0 means DefaultClockSkew.
	ClockSkew time.Duration
	// Sealer, when set, encrypts results' scores and answers at rest (DP-03); rows written
	// without it are still read, and sealed at their next change.
	Sealer Sealer
}

// Service applies the assessment rules on top of a Store, asking Access about users and groups.
type Service struct {
	store  Store
	access Access
	now    func() time.Time
	skew   time.Duration
}

// NewService returns a Service.
func NewService(store Store, access Access, opts Options) *Service {
	if opts.Sealer != nil {
		store = sealedStore{Store: store, sealer: opts.Sealer}
	}
	s := &Service{store: store, access: access, now: opts.Now, skew: opts.ClockSkew}
	if s.now == nil {
		s.now = time.Now
	}
	if s.skew <= 0 {
		s.skew = DefaultClockSkew
	}
	return s
}

// timestamp is the current time as the databases keep it: UTC, whole microseconds.
func (s *Service) timestamp() time.Time {
	return storedTime(s.now())
}

// storedTime is t as the databases keep it, so that what a caller gives reads back unchanged.
func storedTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// newID returns a UUIDv7: IDs sort in creation order, which keyset pagination relies on.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// isID reports whether s can be an ID this package generated: a canonical (lower-case) UUID.
// Anything else cannot exist, so it need not reach the database.
func isID(s string) bool {
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}

// checkPage validates p and returns the ID to continue after and the page size. A cursor is the
// base64url of the last ID of the previous page: opaque to clients, one index seek for us.
func checkPage(p Page) (after string, limit int, err error) {
	var v ValidationError
	limit = p.Limit
	switch {
	case limit == 0:
		limit = DefaultPageLimit
	case limit < 1 || limit > MaxPageLimit:
		v.add("limit", "must be between 1 and %d", MaxPageLimit)
	}
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || !isID(string(b)) {
			v.add("cursor", "is not a cursor of this list")
		}
		after = string(b)
	}
	return after, limit, v.err()
}

// nextPage trims a list read with one item more than the page holds, and returns the cursor of
// the next page ("" when this one is the last): the extra item says whether another page
// follows, without a count.
func nextPage[T any](list []T, limit int, id func(T) string) ([]T, string) {
	if len(list) <= limit {
		return list, ""
	}
	list = list[:limit]
	return list, base64.RawURLEncoding.EncodeToString([]byte(id(list[limit-1])))
}
