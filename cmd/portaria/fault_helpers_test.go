package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/portaria/portaria/internal/testenv"
)

// Load, fault injection and measurement for fault_test.go.

// outcome is one request of a load and its answer.
type outcome struct {
	op    string // refresh, password, client_credentials, me, jwks, readyz, healthz
	chain int    // the worker whose refresh chain it belongs to; -1 for none
	sent  time.Time
	answer
}

// done is when the answer came.
func (o outcome) done() time.Time { return o.sent.Add(o.took) }

// recorder collects the outcomes of every worker.
type recorder struct {
	mu   sync.Mutex
	list []outcome
}

func (r *recorder) add(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, o)
}

func (r *recorder) all() []outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// runWorkers runs step for each of n workers every interval until ctx ends, and returns when
// every worker has stopped. Each worker paces itself, so the rate stays n/interval whatever the
// answers cost (a slow answer delays only the next step of its own worker).
func runWorkers(ctx context.Context, n int, interval time.Duration, step func(worker, i int)) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; ; i++ {
				step(w, i)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
}

// sentIn returns the outcomes of ops sent in [from, to).
func sentIn(list []outcome, from, to time.Time, ops ...string) []outcome {
	var out []outcome
	for _, o := range list {
		if !o.sent.Before(from) && o.sent.Before(to) && slices.Contains(ops, o.op) {
			out = append(out, o)
		}
	}
	return out
}

// failures returns the outcomes that are not 200.
func failures(list []outcome) []outcome {
	return slices.DeleteFunc(slices.Clone(list), func(o outcome) bool { return o.status == 200 })
}

// statusCounts summarises outcomes as "200×12 503×4 error×1".
func statusCounts(list []outcome) string {
	counts := map[string]int{}
	var keys []string
	for _, o := range list {
		k := strconv.Itoa(o.status)
		if o.err != nil {
			k = "error"
		}
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s×%d", k, counts[k])
	}
	return b.String()
}

// percentile returns the p-th percentile (0–100) of the answers' durations.
func percentile(list []outcome, p float64) time.Duration {
	if len(list) == 0 {
		return 0
	}
	d := make([]time.Duration, len(list))
	for i, o := range list {
		d[i] = o.took
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p/100))]
}

// firstAfter returns when the first op answered 200 among those sent at or after from, or the
// zero time.
func firstAfter(list []outcome, from time.Time, op string) time.Time {
	var first time.Time
	for _, o := range list {
		if o.op == op && o.status == 200 && !o.sent.Before(from) && (first.IsZero() || o.done().Before(first)) {
			first = o.done()
		}
	}
	return first
}

// lastFailureAfter returns when the last op of ops sent at or after from failed (not 200), or
// from itself when none failed: after it, every one succeeded.
func lastFailureAfter(list []outcome, from time.Time, ops ...string) time.Time {
	last := from
	for _, o := range list {
		if slices.Contains(ops, o.op) && !o.sent.Before(from) && o.status != 200 && o.done().After(last) {
			last = o.done()
		}
	}
	return last
}

// monitor polls path of base every interval until ctx ends, recording each answer as op; with
// a bearer token when bearer is not empty.
func monitor(ctx context.Context, rec *recorder, base, path, op, bearer string, interval time.Duration) {
	c := &http.Client{Timeout: 5 * time.Second}
	runWorkers(ctx, 1, interval, func(int, int) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		sent := time.Now()
		res, err := c.Do(req)
		a := answer{err: err}
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			a.status = res.StatusCode
		}
		a.took = time.Since(sent)
		rec.add(outcome{op: op, chain: -1, sent: sent, answer: a})
	})
}

var goroutinesLine = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

// goroutines reads the process's goroutine count from its /metrics (-1 when unavailable).
func goroutines(base string) int {
	status, body := get(base + "/metrics")
	m := goroutinesLine.FindSubmatch(body)
	if status != 200 || m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// tcpProxy forwards connections from a loopback port to target, and can cut them: stands in for
// a database host that goes away and comes back (the shared PostgreSQL itself must not stop).
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) listen(addr string) {
	p.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			continue
		}
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// track registers a connection pair, or closes it if the proxy was cut meanwhile.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut closes the listener and every connection: established connections break, new ones are
// refused, as when the database host goes down.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *tcpProxy) restore() { p.listen(p.addr) }

// balancer is a small HTTP load balancer in front of several instances, as the RL-06 test wants
// it, behaving as common ones do: round robin over the instances in rotation; an instance leaves
// it when the orchestrator drains it (a Kubernetes endpoint removed when a pod starts
// terminating) or when /readyz fails twice in a row (checked every checkEvery, 1 s timeout); with
// none left it tries them all (fail open); a keep-alive pool to each; and a retry on the next
// instance only when a connection could not be made (refused: nothing was sent), the one retry
// that is safe for a request that is not idempotent.
type balancer struct {
	backends  []string
	healthy   []atomic.Bool
	drained   []atomic.Bool
	next      atomic.Uint64
	transport *http.Transport
	server    *http.Server
	addr      string
	failures  atomic.Int64 // answers the balancer had to make up (502)
	// retrySent also retries on the next instance after a connection error that came with the
	// request sent but before any byte of an answer (the instance died with it in flight), as
	// balancers can be told to for requests safe to repeat; onRetry, if not nil, is told of each
	// retry and whether the request had been sent. Set both before start.
	retrySent bool
	onRetry   func(body []byte, sent bool)
}

const checkEvery = 250 * time.Millisecond

func startBalancer(t *testing.T, backends ...string) *balancer {
	t.Helper()
	b := newBalancer(backends...)
	b.start(t)
	return b
}

// newBalancer returns a balancer that does not serve yet (start).
func newBalancer(backends ...string) *balancer {
	b := &balancer{backends: backends, healthy: make([]atomic.Bool, len(backends)), drained: make([]atomic.Bool, len(backends)),
		transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	for i := range backends {
		b.healthy[i].Store(true)
	}
	return b
}

// start listens on a loopback port and begins the health checks.
func (b *balancer) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = "http://" + ln.Addr().String()
	b.server = &http.Server{Handler: http.HandlerFunc(b.serve)}
	go b.server.Serve(ln)
	ctx, stop := context.WithCancel(context.Background())
	go b.check(ctx)
	t.Cleanup(func() {
		stop()
		b.server.Close()
		b.transport.CloseIdleConnections()
	})
}

// drain takes backend i out of rotation (or puts it back), as an orchestrator does before it
// stops an instance.
func (b *balancer) drain(i int, drained bool) { b.drained[i].Store(drained) }

// check polls every backend's /readyz; two failures in a row take one out of rotation.
func (b *balancer) check(ctx context.Context) {
	c := &http.Client{Timeout: time.Second}
	failed := make([]int, len(b.backends))
	for ctx.Err() == nil {
		for i, base := range b.backends {
			res, err := c.Get(base + "/readyz")
			if err == nil {
				res.Body.Close()
			}
			if err == nil && res.StatusCode == 200 {
				failed[i] = 0
			} else {
				failed[i]++
			}
			b.healthy[i].Store(failed[i] < 2)
		}
		time.Sleep(checkEvery)
	}
}

// inRotation returns the backends to try, in order, for the request numbered n.
func (b *balancer) inRotation(n int) []int {
	var use, all []int
	for k := range len(b.backends) {
		i := (n + k) % len(b.backends)
		if b.drained[i].Load() {
			continue
		}
		all = append(all, i)
		if b.healthy[i].Load() {
			use = append(use, i)
		}
	}
	if len(use) == 0 {
		return all
	}
	return use
}

// serve forwards one request to the next healthy backend.
func (b *balancer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read request", http.StatusBadRequest)
		return
	}
	for _, i := range b.inRotation(int(b.next.Add(1))) {
		res, err := b.forward(r, body, b.backends[i])
		// Refused: nothing was sent, the next backend may take it.
		refused := errors.Is(err, syscall.ECONNREFUSED)
		if refused || err != nil && b.retrySent && r.Context().Err() == nil {
			if b.onRetry != nil {
				b.onRetry(body, !refused)
			}
			continue
		}
		if err != nil {
			b.failures.Add(1)
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
		return
	}
	b.failures.Add(1)
	http.Error(w, "no backend", http.StatusBadGateway)
}

func (b *balancer) forward(r *http.Request, body []byte, base string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return b.transport.RoundTrip(req)
}

// issuedToken is an access token and when its answer came.
type issuedToken struct {
	jwt string
	at  time.Time
}

type issuedTokens struct {
	mu   sync.Mutex
	list []issuedToken
}

func (i *issuedTokens) add(jwt string, at time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.list = append(i.list, issuedToken{jwt, at})
}

func (i *issuedTokens) all() []issuedToken {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.list)
}

// issueTokens asks the instances, in turn, for client_credentials tokens until ctx ends; an
// instance that is down is skipped.
func issueTokens(ctx context.Context, procs []*proc, machine client, issued *issuedTokens) {
	hc := httpClient(4)
	runWorkers(ctx, 4, 50*time.Millisecond, func(w, i int) {
		p := procs[(w+i)%len(procs)]
		a := postToken(hc, p.base, machine.id, machine.secret, url.Values{"grant_type": {"client_credentials"}})
		if a.status == 200 {
			issued.add(a.str("access_token"), time.Now())
		}
	})
}

// kidWatch records when each kid was first served in a JWKS by any instance.
type kidWatch struct {
	mu    sync.Mutex
	first map[string]time.Time
}

func newKidWatch() *kidWatch { return &kidWatch{first: map[string]time.Time{}} }

func (k *kidWatch) watch(ctx context.Context, procs []*proc) {
	runWorkers(ctx, 1, 100*time.Millisecond, func(int, int) {
		for _, p := range procs {
			for _, kid := range jwksKids(p.base) {
				k.mu.Lock()
				if _, ok := k.first[kid]; !ok {
					k.first[kid] = time.Now()
				}
				k.mu.Unlock()
			}
		}
	})
}

func (k *kidWatch) firstSeen(kid string) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.first[kid]
	return at, ok
}

// crashLoop kills one instance with SIGKILL and restarts it every 2.5 s, and starts a
// `portaria keys rotate` process every 1.5 s that it kills after 0–150 ms unless it finished,
// for duration. It returns the number of instance kills and of rotate processes.
func crashLoop(t *testing.T, procs []*proc, vars map[string]string, duration time.Duration) (kills, rotations int) {
	t.Helper()
	end := time.Now().Add(duration)
	nextKill := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(end) {
		rotations++
		rotateAndKill(t, vars, time.Duration(rand.N(150))*time.Millisecond)
		if time.Now().After(nextKill) {
			p := procs[kills%len(procs)]
			p.kill()
			time.Sleep(300 * time.Millisecond)
			p.restart()
			kills++
			nextKill = time.Now().Add(2500 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond)
	}
	return kills, rotations
}

// rotateAndKill runs `portaria keys rotate` as its own process and kills it with SIGKILL after
// delay if it has not finished by then.
func rotateAndKill(t *testing.T, vars map[string]string, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(portariaBinary(t), "keys", "rotate")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = testenv.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start keys rotate: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(delay):
		cmd.Process.Kill()
		<-done
	}
}

// checkEveryTokenVerifies verifies every token against jwks (the JWKS of an instance started
// after the test) and checks that its kid had been served at least maxAge before the token came
// back (JW-07: never sign with a key caches may not have). The first key of a new deployment is
// exempt from the second check: no cache can hold an older JWKS.
func checkEveryTokenVerifies(t *testing.T, tokens []issuedToken, jwks []byte, seen *kidWatch, maxAge time.Duration) {
	t.Helper()
	set, err := jwk.Parse(jwks)
	if err != nil {
		t.Fatalf("parse the JWKS: %v", err)
	}
	if len(tokens) == 0 {
		t.Fatal("no token was issued")
	}
	bootstrap := tokenKid(tokens[0].jwt)
	perKid := map[string]int{}
	failed := 0
	for _, tok := range tokens {
		kid := tokenKid(tok.jwt)
		perKid[kid]++
		if _, err := jws.Verify([]byte(tok.jwt), jws.WithKeySet(set)); err != nil {
			failed++
			t.Errorf("a token signed with kid %s does not verify against the JWKS: %v", kid, err)
			continue
		}
		if at, ok := seen.firstSeen(kid); kid != bootstrap && (!ok || tok.at.Sub(at) < maxAge) {
			t.Errorf("a token with kid %s came back at %v, before the kid was published for %v (first served: %v)",
				kid, tok.at.Format(time.StampMilli), maxAge, at.Format(time.StampMilli))
		}
	}
	t.Logf("tokens per signing key: %v; %d of %d tokens failed to verify", perKid, failed, len(tokens))
	if len(perKid) < 2 {
		t.Errorf("every token was signed by one key: no rotation happened during the test")
	}
}

// tokenKid returns the kid of a JWS's protected header.
func tokenKid(jwt string) string {
	header, _, _ := strings.Cut(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return ""
	}
	var h struct {
		KID string `json:"kid"`
	}
	json.Unmarshal(raw, &h)
	return h.KID
}

// checkOneActiveKey: RL-04, the ring never holds two active keys.
func checkOneActiveKey(t *testing.T, vars map[string]string) {
	t.Helper()
	code, out, errOut := cli(t, vars, "", "keys", "list")
	if code != 0 {
		t.Fatalf("keys list: %s", errOut)
	}
	var keys []struct {
		KID   string `json:"kid"`
		State string `json:"state"`
	}
	json.Unmarshal([]byte(out), &keys)
	active := 0
	for _, k := range keys {
		if k.State == "active" {
			active++
		}
	}
	t.Logf("key ring after the test: %d keys, %d active", len(keys), active)
	if active != 1 {
		t.Errorf("%d active keys, want exactly one:\n%s", active, out)
	}
}
