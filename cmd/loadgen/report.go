package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// report is the outcome of a run, printed as a table or, with -json, as this object.
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

type targetReport struct {
	Name       string    `json:"name"`
	RPS        float64   `json:"requests_per_second"`
	RoundRPS   []float64 `json:"rounds_requests_per_second"`
	Requests   int       `json:"requests"`
	Errors     int       `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
	P50ms      float64   `json:"p50_ms"`
	P90ms      float64   `json:"p90_ms"`
	P99ms      float64   `json:"p99_ms"`
}

// summarize builds the report; results[0] is the baseline, results[1] the target.
func summarize(opts options, results []targetResult, minRatio float64) report {
	rep := report{
		Scenario:     opts.scenario.name,
		Rounds:       opts.rounds,
		RoundSeconds: opts.duration.Seconds(),
		Concurrency:  opts.concurrency,
		MinRatio:     minRatio,
	}
	errs := 0
	for _, r := range results {
		rep.Targets = append(rep.Targets, targetReport{
			Name:       r.name,
			RPS:        round2(r.rps),
			RoundRPS:   roundAll(r.roundRPS),
			Requests:   r.requests,
			Errors:     r.errors,
			FirstError: r.firstError,
			P50ms:      ms(r.p50),
			P90ms:      ms(r.p90),
			P99ms:      ms(r.p99),
		})
		errs += r.errors
	}
	if len(results) == 2 && results[0].rps > 0 {
		rep.Ratio = results[1].rps / results[0].rps
	}
	rep.Pass = rep.Ratio >= minRatio && errs == 0
	rep.Ratio = math.Round(rep.Ratio*1000) / 1000
	return rep
}

func (rep report) writeText(w io.Writer) error {
	var b strings.Builder
	procs := "baseline and portaria on GOMAXPROCS=1"
	if !rep.SpawnedTarget {
		procs = "baseline on GOMAXPROCS=1"
	}
	fmt.Fprintf(&b, "%d rounds × %s, %d keep-alive connections, %s\n",
		rep.Rounds, time.Duration(rep.RoundSeconds*float64(time.Second)), rep.Concurrency, procs)
	fmt.Fprintf(&b, "%-19s %-8s %9s %8s %8s %8s %8s\n", "scenario", "target", "req/s", "p50", "p90", "p99", "errors")
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, "%-19s %-8s %9.0f %8s %8s %8s %8d\n",
			rep.Scenario, t.Name, t.RPS, fmtMS(t.P50ms), fmtMS(t.P90ms), fmtMS(t.P99ms), t.Errors)
	}
	verdict := "pass"
	switch {
	case !rep.Pass && rep.Ratio < rep.MinRatio:
		verdict = "below target"
	case !rep.Pass:
		verdict = "fail: some requests failed"
	}
	if len(rep.Targets) == 2 {
		fmt.Fprintf(&b, "ratio %s/%s %.2f (min %.2f): %s\n", rep.Targets[1].Name, rep.Targets[0].Name, rep.Ratio, rep.MinRatio, verdict)
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
