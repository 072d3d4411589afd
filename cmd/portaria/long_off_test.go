//go:build !long

package main

// longTests is false: `make test` runs the short versions of the fault tests.
const longTests = false
