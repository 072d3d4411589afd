package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/portaria/portaria/identity"
)

// hashStats is one run of the argon2id loop, printed as JSON by the child that ran it.
type hashStats struct {
	Hashes    int     `json:"hashes"`
	ElapsedNS int64   `json:"elapsed_ns"`
	Latencies []int64 `json:"latencies_ns"` // of each hash, at most maxPerWorker
}

// hashLoop evaluates argon2id with p back to back for d, at least once, and returns what it
// measured. On one CPU this is the ceiling of password logins: each takes one evaluation.
func hashLoop(ctx context.Context, p identity.PasswordParams, d time.Duration) hashStats {
	// A login hashes the password presented with the salt stored; which ones does not matter.
	password := []byte("correct horse battery staple")
	salt := make([]byte, p.SaltLen)
	var s hashStats
	start := time.Now()
	end := start.Add(d)
	for s.Hashes == 0 || (ctx.Err() == nil && time.Now().Before(end)) {
		t0 := time.Now()
		argon2.IDKey(password, salt, p.Time, p.Memory, uint8(p.Threads), p.KeyLen)
		if len(s.Latencies) < maxPerWorker {
			s.Latencies = append(s.Latencies, int64(time.Since(t0)))
		}
		s.Hashes++
	}
	s.ElapsedNS = int64(time.Since(start))
	return s
}

// runHashLoop is the child's side: one loop of d, its stats on stdout.
func runHashLoop(ctx context.Context, p identity.PasswordParams, d time.Duration, stdout io.Writer) error {
	return json.NewEncoder(stdout).Encode(hashLoop(ctx, p, d))
}

// hashBaseline measures the argon2id limit in rounds, each in a new child of loadgen on
// GOMAXPROCS=1 (the CPU Portaria gets). The child times itself, so its start-up is not counted.
type hashBaseline struct {
	exe string
}

func (h *hashBaseline) name() string { return "argon2id" }

func (h *hashBaseline) prepare(ctx context.Context, warmup, _ time.Duration) error {
	s, err := h.round(ctx, warmup)
	if err != nil {
		return err
	}
	if s.ok == 0 {
		return fmt.Errorf("argon2id: no hash during warm-up")
	}
	return nil
}

func (h *hashBaseline) round(ctx context.Context, d time.Duration) (roundStats, error) {
	var out bytes.Buffer
	p, err := startProcess(ctx, "argon2id baseline", h.exe, []string{"-baseline-argon2", d.String()},
		childEnv("GOMAXPROCS=1"), &out, nil)
	if err != nil {
		return roundStats{}, err
	}
	<-p.done // the output is complete once the process is waited for
	if ctx.Err() != nil {
		return roundStats{}, ctx.Err()
	}
	if p.err != nil {
		return roundStats{}, p.failure(fmt.Errorf("argon2id baseline: %w", p.err))
	}
	var hs hashStats
	if err := json.Unmarshal(out.Bytes(), &hs); err != nil || hs.Hashes == 0 {
		return roundStats{}, fmt.Errorf("argon2id baseline: unexpected output %.200q", out.String())
	}
	s := roundStats{ok: hs.Hashes, elapsed: time.Duration(hs.ElapsedNS), latencies: make([]time.Duration, len(hs.Latencies))}
	for i, l := range hs.Latencies {
		s.latencies[i] = time.Duration(l)
	}
	return s, nil
}

func (h *hashBaseline) close() {}

func newHashBaseline() (*hashBaseline, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("argon2id baseline: find own executable: %w", err)
	}
	return &hashBaseline{exe: exe}, nil
}
