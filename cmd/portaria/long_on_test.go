//go:build long

package main

// longTests is true under `go test -tags long` (`make test-long`): the fault tests run the full
// timelines of SECURITY.md's figures, and the longest tests run at all.
const longTests = true
