package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// target is a server under load.
type target struct {
	name   string
	url    string // base URL, without a trailing slash
	creds  credentials
	remote bool // may be at a non-loopback address (-target)
}

// options shape a measurement.
type options struct {
	scenario    scenario
	duration    time.Duration // of one measured round
	warmup      time.Duration // once per target, before the first round
	rounds      int
	concurrency int
}

// targetResult is what the rounds measured on one target. Latencies are of answered requests.
type targetResult struct {
	name          string
	roundRPS      []float64 // successful requests per second, per round
	rps           float64   // median of roundRPS
	requests      int       // successful, over all rounds
	errors        int       // non-200 answers and transport failures
	firstError    string
	p50, p90, p99 time.Duration
}

// driver sends one target its load.
type driver struct {
	target
	client      *http.Client
	newRequest  requestFunc
	concurrency int
	latencies   []time.Duration // of every measured request, all rounds
	result      targetResult
}

// maxPerWorker bounds the latency slice preallocated per worker and round (8 MiB).
const maxPerWorker = 1 << 20

// measure warms up each target, then runs the rounds interleaved (baseline, target, baseline,
// target, …) so that whatever else the machine does hits all targets alike. It writes a line per
// round, and the first error body of each target, to progress.
func measure(ctx context.Context, opts options, targets []target, progress io.Writer) ([]targetResult, error) {
	drivers := make([]*driver, len(targets))
	for i, t := range targets {
		d := &driver{
			target:      t,
			client:      newClient(opts.concurrency, t.remote),
			newRequest:  opts.scenario.request(t.url, t.creds),
			concurrency: opts.concurrency,
			result:      targetResult{name: t.name},
		}
		defer d.client.CloseIdleConnections()
		drivers[i] = d
	}

	capHint := make([]int, len(drivers))
	for i, d := range drivers {
		if err := d.check(ctx); err != nil {
			return nil, fmt.Errorf("%s at %s: %w", d.name, d.url, err)
		}
		w := d.round(ctx, opts.warmup, 1024)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if w.ok == 0 {
			return nil, fmt.Errorf("%s: no request succeeded during warm-up: %s", d.name, w.firstError)
		}
		// Size each worker's latency slice for the round from the warm-up rate, with room to spare,
		// so that appending never reallocates while measuring.
		perWorker := w.rps() * opts.duration.Seconds() / float64(opts.concurrency)
		capHint[i] = min(int(perWorker*2)+256, maxPerWorker)
	}

	for r := range opts.rounds {
		for i, d := range drivers {
			runtime.GC() // the previous round's garbage is not this round's cost
			s := d.round(ctx, opts.duration, capHint[i])
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			d.add(s)
			fmt.Fprintf(progress, "round %d/%d  %-10s %8.0f req/s  %d errors\n", r+1, opts.rounds, d.name, s.rps(), s.errors)
			if s.firstError != "" && d.result.firstError == "" {
				d.result.firstError = s.firstError
				fmt.Fprintf(progress, "%s: first error: %s\n", d.name, s.firstError)
			}
		}
	}

	results := make([]targetResult, len(drivers))
	for i, d := range drivers {
		slices.Sort(d.latencies)
		res := d.result
		res.rps = median(res.roundRPS)
		res.p50 = percentile(d.latencies, 50)
		res.p90 = percentile(d.latencies, 90)
		res.p99 = percentile(d.latencies, 99)
		results[i] = res
	}
	return results, nil
}

// newClient returns a client for concurrency keep-alive HTTP/1.1 connections. Unless remote, it
// refuses to dial anything but a loopback address.
func newClient(concurrency int, remote bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !remote {
		dialer.Control = loopbackOnly
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConns:        concurrency,
			MaxIdleConnsPerHost: concurrency,
			MaxConnsPerHost:     concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			// A non-nil, empty map turns HTTP/2 off, also over TLS.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
		// A server that stops answering must not hold a round open for ever.
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to dial %s: not a loopback address", address)
	}
	return nil
}

// check sends one request and verifies that the answer is a token response, so that a run
// against a misconfigured server fails at once rather than measuring error pages.
func (d *driver) check(ctx context.Context) error {
	req, err := d.newRequest(ctx)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return fmt.Errorf("not a token response: %s", bytes.TrimSpace(body))
	}
	return nil
}

// roundStats is one round on one target.
type roundStats struct {
	ok, errors int
	elapsed    time.Duration
	latencies  []time.Duration
	firstError string
}

func (s roundStats) rps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

// worker is one connection's share of a round; only its own goroutine touches it until the
// round ends, so the hot path takes no lock.
type worker struct {
	latencies  []time.Duration
	errors     int
	firstError string
}

// round has every worker send requests back to back for d, and returns what they measured.
// Requests still in flight at the end complete and count; elapsed runs until the last one does.
func (d *driver) round(ctx context.Context, dur time.Duration, capHint int) roundStats {
	workers := make([]worker, d.concurrency)
	for i := range workers {
		workers[i].latencies = make([]time.Duration, 0, capHint)
	}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for i := range workers {
		w := &workers[i]
		wg.Go(func() { d.work(ctx, end, w) })
	}
	wg.Wait()
	s := roundStats{elapsed: time.Since(start)}
	for _, w := range workers {
		s.ok += len(w.latencies)
		s.errors += w.errors
		if s.firstError == "" {
			s.firstError = w.firstError
		}
	}
	s.latencies = make([]time.Duration, 0, s.ok)
	for _, w := range workers {
		s.latencies = append(s.latencies, w.latencies...)
	}
	return s
}

func (d *driver) work(ctx context.Context, end time.Time, w *worker) {
	for ctx.Err() == nil && time.Now().Before(end) {
		req, err := d.newRequest(ctx)
		if err != nil {
			w.fail(err.Error())
			return // the same request would fail to build again
		}
		t0 := time.Now()
		resp, err := d.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.fail(err.Error())
			// Back off so that a server that is gone is not redialled in a tight loop.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if resp.StatusCode == http.StatusOK {
			_, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				w.fail(err.Error())
				continue
			}
			w.latencies = append(w.latencies, time.Since(t0))
			continue
		}
		var body []byte
		if w.firstError == "" {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // drained, the connection is reused
		resp.Body.Close()
		w.fail(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body)))
	}
}

func (w *worker) fail(msg string) {
	w.errors++
	if w.firstError == "" {
		w.firstError = msg
	}
}

// add records a measured round.
func (d *driver) add(s roundStats) {
	d.result.roundRPS = append(d.result.roundRPS, s.rps())
	d.result.requests += s.ok
	d.result.errors += s.errors
	d.latencies = append(d.latencies, s.latencies...)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the nearest-rank method: the
// smallest value with at least p % of all values at or below it; 0 if there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// p*n is exact for whole p and any realistic n, so the division lands on whole ranks exactly.
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// median returns the median of xs, the mean of the middle two for an even count; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
