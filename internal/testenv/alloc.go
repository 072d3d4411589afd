package testenv

import "runtime/metrics"

// FuzzAllocLimit is IN-04's bound on what one fuzz input may make the code allocate.
const FuzzAllocLimit = 1 << 20

// FuzzInputLimit is the largest input held to FuzzAllocLimit: a bigger one may be a body the
// server reads whole (up to its 64 KiB cap on /oauth/*, more on the API), and copying it is not
// the waste the bound is after.
const FuzzInputLimit = 64 << 10

// Allocated runs fn and returns the bytes the process allocated on the heap meanwhile. The
// counter is the whole process's: when the count passes FuzzAllocLimit, fn is run once more and
// the smaller count kept, so that one-time set-up (a cache filled on first use) and background
// goroutines do not weigh on one input.
func Allocated(fn func()) uint64 {
	once := func() uint64 {
		before := HeapAllocated()
		fn()
		return HeapAllocated() - before
	}
	n := once()
	if n > FuzzAllocLimit {
		n = min(n, once())
	}
	return n
}

// HeapAllocated is the bytes the process has allocated on the heap so far, read without
// stopping the world (runtime.ReadMemStats would, on every input).
func HeapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
