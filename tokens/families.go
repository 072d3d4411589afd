package tokens

import (
	"slices"
	"sync"
)

// maxKnownFamilies bounds the families an instance remembers: a few MiB. A family it forgot
// costs its next refresh one more round trip, nothing else.
const maxKnownFamilies = 1 << 14

// knownFamily is a family record as stored, and the Session it decodes to.
type knownFamily struct {
	record []byte
	sess   Session
}

// knownFamilies remembers the records of recently used families. A family record never changes
// after Start, so an entry is never stale: it can name the user and the expiry of a family
// before the family is read (so that a refresh reads the user's not-before mark in the round
// trip of its swap, and gives the successor its TTL), and it spares decoding a record read again.
// Whether the family still lives is never taken from here: only the store knows.
type knownFamilies struct {
	mu       sync.Mutex
	families map[string]knownFamily // by sid
}

func (k *knownFamilies) get(sid string) (knownFamily, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, ok := k.families[sid]
	return f, ok
}

// put remembers family sid, forgetting an arbitrary one when full: map iteration starts at a
// random entry. The Session's slices are shared by every caller that gets it, read-only; clipped,
// so that an append copies them.
func (k *knownFamilies) put(sid string, f knownFamily) {
	f.sess.Scope, f.sess.AMR = slices.Clip(f.sess.Scope), slices.Clip(f.sess.AMR)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.families == nil {
		k.families = make(map[string]knownFamily)
	}
	if _, ok := k.families[sid]; !ok && len(k.families) >= maxKnownFamilies {
		for other := range k.families {
			delete(k.families, other)
			break
		}
	}
	k.families[sid] = f
}
