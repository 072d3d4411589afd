//go:build !full

package main

// fullTimelines is false: F3 and F6 run compressed (`make test-long`) or short (`make test`).
const fullTimelines = false
