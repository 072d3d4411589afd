package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// summary is the outcome of a run, printed as a table or, with -json, as this object.
type summary struct {
	Scenarios []report `json:"scenarios"`
	// Pass means every scenario passed.
	Pass bool `json:"pass"`
}

// report is the outcome of one scenario.
type report struct {
	Scenario      string         `json:"scenario"`
	Rounds        int            `json:"rounds"`
	RoundSeconds  float64        `json:"round_seconds"`
	Concurrency   int            `json:"concurrency"`
	SpawnedTarget bool           `json:"spawned_target"` // false with -target: its GOMAXPROCS is not ours to set
	Targets       []targetReport `json:"targets"`
	// Ratio is the target's throughput over the baseline's, medians of rounds.
	Ratio    float64 `json:"ratio"`
	MinRatio float64 `json:"min_ratio"`
	// Pass means the ratio is at least MinRatio and no request failed.
	Pass bool `json:"pass"`
}

// targetReport is one side of a scenario. For the argon2id baseline, requests are hashes and
// Concurrency is 0.
type targetReport struct {
	Name        string    `json:"name"`
	Concurrency int       `json:"concurrency"`
	RPS         float64   `json:"requests_per_second"`
	RoundRPS    []float64 `json:"rounds_requests_per_second"`
	Requests    int       `json:"requests"`
	Errors      int       `json:"errors"`
	FirstError  string    `json:"first_error,omitempty"`
	P50ms       float64   `json:"p50_ms"`
	P90ms       float64   `json:"p90_ms"`
	P99ms       float64   `json:"p99_ms"`
}

// summarize builds the report of scenario name; results[0] is the baseline, results[1] the target.
func summarize(name string, opts options, results []targetResult, minRatio float64) report {
	rep := report{
		Scenario:     name,
		Rounds:       opts.rounds,
		RoundSeconds: opts.duration.Seconds(),
		MinRatio:     minRatio,
	}
	errs := 0
	for _, r := range results {
		rep.Targets = append(rep.Targets, targetReport{
			Name:        r.name,
			Concurrency: r.concurrency,
			RPS:         round2(r.rps),
			RoundRPS:    roundAll(r.roundRPS),
			Requests:    r.requests,
			Errors:      r.errors,
			FirstError:  r.firstError,
			P50ms:       ms(r.p50),
			P90ms:       ms(r.p90),
			P99ms:       ms(r.p99),
		})
		rep.Concurrency = max(rep.Concurrency, r.concurrency)
		errs += r.errors
	}
	if len(results) == 2 && results[0].rps > 0 {
		rep.Ratio = results[1].rps / results[0].rps
	}
	rep.Pass = rep.Ratio >= minRatio && errs == 0
	rep.Ratio = math.Round(rep.Ratio*1000) / 1000
	return rep
}

func (sum summary) writeText(w io.Writer) error {
	if len(sum.Scenarios) == 0 {
		return nil
	}
	var b strings.Builder
	first := sum.Scenarios[0]
	procs := "baseline and portaria on GOMAXPROCS=1"
	if !first.SpawnedTarget {
		procs = "baseline on GOMAXPROCS=1"
	}
	fmt.Fprintf(&b, "%d rounds × %s per target, %s\n", first.Rounds, time.Duration(first.RoundSeconds*float64(time.Second)), procs)
	fmt.Fprintf(&b, "%-19s %-8s %5s %9s %9s %9s %9s %7s\n", "scenario", "target", "conns", "req/s", "p50", "p90", "p99", "errors")
	hashes := false
	for _, rep := range sum.Scenarios {
		for _, t := range rep.Targets {
			conns := "-"
			if t.Concurrency > 0 {
				conns = fmt.Sprint(t.Concurrency)
			} else {
				hashes = true
			}
			fmt.Fprintf(&b, "%-19s %-8s %5s %9.0f %9s %9s %9s %7d\n",
				rep.Scenario, t.Name, conns, t.RPS, fmtMS(t.P50ms), fmtMS(t.P90ms), fmtMS(t.P99ms), t.Errors)
		}
	}
	if hashes {
		fmt.Fprintf(&b, "(argon2id: hashes per second on one CPU with Portaria's parameters, and the time of one)\n")
	}
	for _, rep := range sum.Scenarios {
		if len(rep.Targets) != 2 {
			continue
		}
		verdict := "pass"
		switch {
		case !rep.Pass && rep.Ratio < rep.MinRatio:
			verdict = "below target"
		case !rep.Pass:
			verdict = "fail: some requests failed"
		}
		fmt.Fprintf(&b, "ratio %-19s %-18s %.2f (min %.2f): %s\n",
			rep.Scenario, rep.Targets[1].Name+"/"+rep.Targets[0].Name, rep.Ratio, rep.MinRatio, verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

func fmtMS(v float64) string { return fmt.Sprintf("%.2fms", v) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = round2(x)
	}
	return out
}
