package audit

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"
)

// idSource makes UUIDv7s (RFC 9562) from the Log's clock rather than the wall clock, so that an
// event's id and its At agree under an injected clock. Like google/uuid, it spends the 12 bits
// after the millisecond on a sub-millisecond sequence that it forces to increase: ids made by one
// Log are strictly increasing, which is what "newest first" pages by. Across instances ids are
// ordered to the millisecond.
type idSource struct {
	mu   sync.Mutex
	last int64 // milliseconds << 12 | sequence of the last id
}

func (s *idSource) next(t time.Time) string {
	nano := t.UnixNano()
	milli := nano / int64(time.Millisecond)
	v := milli<<12 | (nano-milli*int64(time.Millisecond))>>8 // the sequence: 0..3906
	s.mu.Lock()
	if v <= s.last {
		v = s.last + 1
	}
	s.last = v
	s.mu.Unlock()

	var u uuid.UUID
	rand.Read(u[8:]) // never fails (crypto/rand, Go 1.24+)
	milli, seq := v>>12, v&0xfff
	for i := range 6 {
		u[i] = byte(milli >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(seq>>8) // version 7
	u[7] = byte(seq)
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return u.String()
}
