package main

import (
	"bytes"
	"context"
	"crypto/tls"
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

	"golang.org/x/sync/errgroup"
)

// target is a server under load.
type target struct {
	name   string
	url    string // base URL, without a trailing slash
	acct   account
	bearer string // for the baseline's /verify: the token it minted at start
	remote bool   // may be at a non-loopback address (-target)
}

// options shape a measurement.
type options struct {
	duration time.Duration // of one measured round
	warmup   time.Duration // once per target, before the first round
	rounds   int
}

// runner is what is measured in rounds: a server under HTTP load, or the argon2id loop.
type runner interface {
	name() string
	// prepare gets it ready for rounds of the given duration (logins, a first checked request, a
	// warm-up of the given length).
	prepare(ctx context.Context, warmup, round time.Duration) error
	// round runs one measured round. An error ends the run; failed requests are not errors but
	// counted in the stats.
	round(ctx context.Context, d time.Duration) (roundStats, error)
	close()
}

// targetResult is what the rounds measured on one target. Latencies are of answered requests.
type targetResult struct {
	name          string
	concurrency   int       // connections; 0 for the argon2id loop
	roundRPS      []float64 // successful requests per second, per round
	rps           float64   // median of roundRPS
	requests      int       // successful, over all rounds
	errors        int       // non-200 answers and transport failures
	firstError    string
	p50, p90, p99 time.Duration
}

// maxPerWorker bounds the latency slice preallocated per worker and round (8 MiB).
const maxPerWorker = 1 << 20

// measure prepares each runner, then runs the rounds interleaved (baseline, target, baseline,
// target, …) so that whatever else the machine does hits all runners alike. It writes a line per
// round, and the first error of each runner, to progress.
func measure(ctx context.Context, opts options, runners []runner, progress io.Writer) ([]targetResult, error) {
	for _, r := range runners {
		if err := r.prepare(ctx, opts.warmup, opts.duration); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
	}
	results := make([]targetResult, len(runners))
	latencies := make([][]time.Duration, len(runners))
	for i, r := range runners {
		results[i].name = r.name()
		if d, ok := r.(*driver); ok {
			results[i].concurrency = d.concurrency
		}
	}
	for round := range opts.rounds {
		for i, r := range runners {
			runtime.GC() // the previous round's garbage is not this round's cost
			s, err := r.round(ctx, opts.duration)
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				return nil, err
			}
			res := &results[i]
			res.roundRPS = append(res.roundRPS, s.rps())
			res.requests += s.ok
			res.errors += s.errors
			latencies[i] = append(latencies[i], s.latencies...)
			fmt.Fprintf(progress, "round %d/%d  %-10s %8.0f /s  %d errors\n", round+1, opts.rounds, res.name, s.rps(), s.errors)
			if s.firstError != "" && res.firstError == "" {
				res.firstError = s.firstError
				fmt.Fprintf(progress, "%s: first error: %s\n", res.name, s.firstError)
			}
		}
	}
	for i := range results {
		slices.Sort(latencies[i])
		res := &results[i]
		res.rps = median(res.roundRPS)
		res.p50 = percentile(latencies[i], 50)
		res.p90 = percentile(latencies[i], 90)
		res.p99 = percentile(latencies[i], 99)
	}
	return results, nil
}

// driver sends one server its load over concurrency keep-alive connections, a worker and a
// session each.
type driver struct {
	target
	load        load
	client      *http.Client
	concurrency int
	sessions    []session
	capHint     int // latency slice capacity per worker and round
}

func newDriver(t target, l load, concurrency int) *driver {
	return &driver{
		target:      t,
		load:        l,
		client:      newClient(concurrency, t.remote),
		concurrency: concurrency,
		sessions:    make([]session, concurrency),
	}
}

func (d *driver) name() string { return d.target.name }

func (d *driver) close() { d.client.CloseIdleConnections() }

// loginParallelism bounds the logins in flight at once: the server hashes one password per CPU,
// and a login that waits too long for its turn is refused.
const loginParallelism = 4

// login starts the session of every worker that has none, or whose session would expire before
// horizon.
func (d *driver) login(ctx context.Context, horizon time.Time) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(loginParallelism)
	for i := range d.sessions {
		s := &d.sessions[i]
		if s.request != nil && (s.expires.IsZero() || s.expires.After(horizon)) {
			continue
		}
		g.Go(func() error {
			next, err := d.load.login(ctx, d.client, d.target)
			if err != nil {
				return err
			}
			*s = next
			return nil
		})
	}
	return g.Wait()
}

func (d *driver) prepare(ctx context.Context, warmup, round time.Duration) error {
	if err := d.login(ctx, time.Now().Add(warmup+round)); err != nil {
		return fmt.Errorf("%s at %s: %w", d.target.name, d.url, err)
	}
	if err := d.check(ctx); err != nil {
		return fmt.Errorf("%s at %s: %w", d.target.name, d.url, err)
	}
	d.capHint = 1024
	w, err := d.round(ctx, warmup)
	if err != nil {
		return err
	}
	if w.ok == 0 {
		return fmt.Errorf("%s: no request succeeded during warm-up: %s", d.target.name, w.firstError)
	}
	// Size each worker's latency slice for a round from the warm-up rate, with room to spare,
	// so that appending never reallocates while measuring.
	perWorker := w.rps() * round.Seconds() / float64(d.concurrency)
	d.capHint = min(int(perWorker*2)+256, maxPerWorker)
	return nil
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

// check sends one request of the first session and checks the answer, so that a run against a
// misconfigured server fails at once rather than measuring error pages.
func (d *driver) check(ctx context.Context) error {
	s := &d.sessions[0]
	req, err := s.request(ctx)
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
	if err := d.load.expect(body); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(body))
	}
	if s.follow != nil {
		return s.follow(body)
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

// round has every worker send requests back to back for dur, and returns what they measured.
// Requests still in flight at the end complete and count; elapsed runs until the last one does.
// Sessions about to expire are renewed first, outside the measured time.
func (d *driver) round(ctx context.Context, dur time.Duration) (roundStats, error) {
	if err := d.login(ctx, time.Now().Add(dur+time.Minute)); err != nil {
		return roundStats{}, fmt.Errorf("%s: log in again: %w", d.target.name, err)
	}
	workers := make([]worker, d.concurrency)
	for i := range workers {
		workers[i].latencies = make([]time.Duration, 0, d.capHint)
	}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for i := range workers {
		w, s := &workers[i], &d.sessions[i]
		wg.Go(func() { d.work(ctx, end, s, w) })
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
	return s, ctx.Err()
}

func (d *driver) work(ctx context.Context, end time.Time, s *session, w *worker) {
	for ctx.Err() == nil && time.Now().Before(end) {
		req, err := s.request(ctx)
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
			var body []byte
			if s.follow != nil {
				body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			} else {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			if err != nil {
				w.fail(err.Error())
				continue
			}
			w.latencies = append(w.latencies, time.Since(t0))
			if s.follow != nil {
				if err := s.follow(body); err != nil {
					w.fail(err.Error())
				}
			}
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
