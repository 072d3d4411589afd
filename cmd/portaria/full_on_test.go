//go:build full

package main

// fullTimelines is true under `go test -tags 'long full'` (`make test-full`): F3 and F6 run on
// SECURITY.md's own ten-minute timelines, which do not fit in CI's 20 minutes beside the rest.
const fullTimelines = true
