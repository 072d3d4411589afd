package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faultShutdownDelay is PORTARIA_SHUTDOWN_DELAY in the F7 variant: long enough for the test's
// balancers to see /readyz fail twice (250 ms apart) on a loaded machine.
const faultShutdownDelay = 2 * time.Second

// TestFaultSIGTERMWithShutdownDelayDropsNothing is F7 / RL-06 without a drain step: nothing
// tells the balancer that an instance stops but the instance itself, as with an ingress or
// kube-proxy that learns of it from readiness. With PORTARIA_SHUTDOWN_DELAY the instance fails
// /readyz at SIGTERM and keeps serving for the delay, each answer closing its connection, then
// shuts down. Two balancers, in turn: a request-level one with keep-alive pools to the instances
// (balancer), and a connection-level one (connBalancer, as kube-proxy: a keep-alive connection
// stays with its instance). Each instance is stopped in turn, several times, under the mixed
// load over keep-alive connections: no request may fail, and each exits 0 after the delay and
// within 30 s.
func TestFaultSIGTERMWithShutdownDelayDropsNothing(t *testing.T) {
	const workers, interval = 8, 40 * time.Millisecond
	runs := 2
	if longTests {
		runs = 5
	}
	shared, first := deploymentVars(t, map[string]string{"PORTARIA_SHUTDOWN_DELAY": faultShutdownDelay.String()})
	d := &redisDeployment{}
	setUpAccounts(t, first, d, workers)
	procs := []*proc{startProc(t, first), startProc(t, instanceVars(t, shared))}
	lb := startBalancer(t, procs[0].base, procs[1].base)
	cb := startConnBalancer(t, lb)
	stops, failed := 0, 0
	for _, front := range []struct{ name, addr string }{{"request balancer", lb.addr}, {"connection balancer", cb.addr}} {
		load := newChainLoad(d, front.addr, workers)
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { runWorkers(ctx, workers, interval, load.step) })
		time.Sleep(time.Second)
		for run := range runs {
			// In turn: behind the connection balancer every connection is with the instance that
			// was not stopped last.
			i := stops % len(procs)
			p := procs[i]
			stops++
			exited, done := make(chan time.Time, 1), p.done()
			go func() { <-done; exited <- time.Now() }()
			connsAtEnd := make(chan int64, 1)
			go func() { time.Sleep(faultShutdownDelay - 100*time.Millisecond); connsAtEnd <- cb.live[i].Load() }()
			conns, termAt := cb.live[i].Load(), time.Now()
			failed += stopUnderLoad(t, p, &load.rec, termAt, fmt.Sprintf("%s, run %d: bare SIGTERM, delay %v", front.name, run+1, faultShutdownDelay))
			select {
			case at := <-exited:
				if at.Sub(termAt) < faultShutdownDelay {
					t.Errorf("the instance exited %v after SIGTERM, before its %v delay ended", at.Sub(termAt), faultShutdownDelay)
				}
			default: // still running: stopUnderLoad has reported it
			}
			if front.addr == cb.addr {
				t.Logf("  keep-alive connections with the instance: %d at SIGTERM, %d 0.1 s before its delay ended", conns, <-connsAtEnd)
			}
			p.restart()
			time.Sleep(time.Second) // the balancers' checks put it back
		}
		stop()
		wg.Wait()
	}
	t.Logf("bare SIGTERM with PORTARIA_SHUTDOWN_DELAY=%v: %d failed requests in %d stops", faultShutdownDelay, failed, stops)
	if failed > 0 {
		t.Errorf("%d requests failed, want 0", failed)
	}
}

// TestServeShutdownDelay: from SIGTERM, /readyz answers 503 while the instance keeps serving
// for PORTARIA_SHUTDOWN_DELAY, every answer with "Connection: close"; a second signal ends the
// delay, and the instance shuts down and exits 0.
func TestServeShutdownDelay(t *testing.T) {
	_, vars := deploymentVars(t, map[string]string{"PORTARIA_SHUTDOWN_DELAY": "1m"})
	p := startProc(t, vars)
	hc := httpClient(1)
	if res := getWith(t, hc, p.base+"/healthz"); res.StatusCode != 200 || res.Close {
		t.Fatalf("before SIGTERM: %d, Connection: close %v", res.StatusCode, res.Close)
	}
	termAt := time.Now()
	p.signal(syscall.SIGTERM)
	for status, _ := get(p.base + "/readyz"); status != 503; status, _ = get(p.base + "/readyz") {
		if time.Since(termAt) > 5*time.Second {
			t.Fatalf("/readyz still %d 5 s after SIGTERM", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	notReady := time.Since(termAt)
	time.Sleep(500 * time.Millisecond)
	for _, path := range []string{"/healthz", "/.well-known/jwks.json"} {
		if res := getWith(t, hc, p.base+path); res.StatusCode != 200 || !res.Close {
			t.Errorf("%s during the delay: %d, Connection: close %v; want 200 and close", path, res.StatusCode, res.Close)
		}
	}
	select {
	case <-p.done():
		t.Fatalf("the instance exited during its delay:\n%s", p.Logs())
	default:
	}
	againAt := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(10 * time.Second)
	t.Logf("/readyz 503 %.3f s after SIGTERM; a second SIGTERM %.2f s later: exit %d after %.2f s", notReady.Seconds(),
		againAt.Sub(termAt).Seconds(), code, time.Since(againAt).Seconds())
	if code != 0 {
		t.Errorf("exit code %d after the second signal, want 0:\n%s", code, p.Logs())
	}
}

// getWith GETs target with c and returns the answer, its body read.
func getWith(t *testing.T, c *http.Client, target string) *http.Response {
	t.Helper()
	res, err := c.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// connBalancer balances connections, not requests, as kube-proxy does for a Kubernetes
// Service: each new connection goes to the next instance lb has in rotation (lb's /readyz
// checks and drains), and stays with it for its life, so a keep-alive client reaches another
// instance only when it opens a new connection. A connection an instance refuses goes to the
// next (nothing was sent).
type connBalancer struct {
	lb   *balancer
	addr string         // base URL
	live []atomic.Int64 // open connections per instance
}

func startConnBalancer(t *testing.T, lb *balancer) *connBalancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cb := &connBalancer{lb: lb, addr: "http://" + ln.Addr().String(), live: make([]atomic.Int64, len(lb.backends))}
	go func() {
		for n := 0; ; n++ {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go cb.connect(in, n)
		}
	}()
	return cb
}

// connect joins in to the instance in rotation for connection n until either side closes.
func (cb *connBalancer) connect(in net.Conn, n int) {
	for _, i := range cb.lb.inRotation(n) {
		out, err := net.DialTimeout("tcp", strings.TrimPrefix(cb.lb.backends[i], "http://"), time.Second)
		if err != nil {
			continue
		}
		cb.live[i].Add(1)
		defer cb.live[i].Add(-1)
		go splice(out, in)
		splice(in, out)
		return
	}
	in.Close()
}

// splice copies src to dst until either side ends, then closes both.
func splice(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}
