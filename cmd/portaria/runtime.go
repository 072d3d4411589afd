package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// gcHashHeadroom is how many password hashes' worth of memory the heap may grow by between two
// collections, at least.
const gcHashHeadroom = 4

// gcTuning is set while a server tunes the collector: the setting is the process's, and tests
// run several servers in one.
var gcTuning atomic.Bool

// tuneGC keeps the collector's headroom (how far the heap grows before the next collection) at
// about gcHashHeadroom password hashes for as long as ctx lives, unless GOGC or GOMEMLIMIT is
// set: then the operator's setting stands. hashMemory returns what one hash takes and what all
// the hashing slots take (identity.Service.HashMemory).
//
// argon2id allocates its memory afresh for each hash (19 MiB with the default parameters). With
// the default GOGC=100, whose headroom is the live heap (a few MiB plus the hashes in progress),
// the server collected after every second login, and the runtime returned the freed blocks to the
// system between collections only to fault them in again: about 4 % of the CPU of a login. A
// headroom of a few hashes makes both rare.
//
// The cost is memory, and it is bounded: GOGC is set after each collection to the headroom as a
// percentage of the live heap, counting the live heap as at least the hashing slots' memory, and
// never below 100. So the heap goal is at most about the default's plus gcHashHeadroom hashes,
// even when the live heap at the next collection holds more hashes than at the last (GOGC is set
// after the goal that uses it); a large live heap keeps the default.
func tuneGC(ctx context.Context, getenv func(string) string, hashMemory func() (one, all uint64), log *slog.Logger) {
	one, all := hashMemory()
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" || one == 0 || !gcTuning.CompareAndSwap(false, true) {
		return
	}
	t := &gcTuner{
		headroom: gcHashHeadroom * one,
		floor:    max(all, one),
		live:     []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		percent:  100,
	}
	log.Info("garbage collector tuned for password hashing", "headroom_mib", t.headroom>>20)
	// A finalizer runs after a collection that finds its object unreachable; setting it again
	// makes it run after the next one too.
	var cycle func(*gcTuner)
	cycle = func(t *gcTuner) {
		if ctx.Err() != nil {
			debug.SetGCPercent(100)
			gcTuning.Store(false)
			return
		}
		t.adjust()
		runtime.SetFinalizer(t, cycle)
	}
	t.adjust()
	runtime.SetFinalizer(t, cycle)
}

// gcTuner sets GOGC after each collection from the heap it found live.
type gcTuner struct {
	headroom uint64 // bytes
	floor    uint64 // the least live heap it reckons with, bytes
	live     []metrics.Sample
	percent  int
}

func (t *gcTuner) adjust() {
	metrics.Read(t.live)
	if percent := gcPercent(t.headroom, t.floor, t.live[0].Value.Uint64()); percent != t.percent {
		debug.SetGCPercent(percent)
		t.percent = percent
	}
}

// gcPercent is the GOGC that gives a live heap of live bytes (counted as at least floor) a
// headroom of headroom bytes, or the default's if that is more.
func gcPercent(headroom, floor, live uint64) int {
	return max(int(headroom*100/max(live, floor, 1)), 100)
}
