package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RL-07, bounded everything, with real `portaria serve` processes: an SMTP server that never
// answers must not slow POST /api/auth/password/forgot nor token issuance, and must not grow the
// process; password logins at twice what the server can hash are shed with 503 instead of
// queuing, with goroutines and memory flat. Figures are printed with t.Logf
// (docs/reliability.md, "Bounded everything").

// boundedDeployment is one instance on PostgreSQL and the shared Redis, with users created by
// the CLI (platform administrators, so that the first one can use the admin API).
type boundedDeployment struct {
	srv     *proc
	app     client // password
	machine client // client_credentials
	users   []string
}

func newBoundedDeployment(t *testing.T, users int, extra map[string]string) *boundedDeployment {
	t.Helper()
	_, vars := deploymentVars(t, extra)
	if code, _, errOut := cli(t, vars, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	d := &boundedDeployment{
		app:     createClient(t, vars, "app", "password"),
		machine: createClient(t, vars, "machine", "client_credentials"),
	}
	// In parallel: each creation hashes a password.
	errs := make([]string, users)
	var wg sync.WaitGroup
	for i := range users {
		email := fmt.Sprintf("user%d@example.test", i)
		d.users = append(d.users, email)
		wg.Go(func() {
			if code, _, errOut := cli(t, vars, faultPassword+"\n", "admin", "create", "--email", email, "--name", "U", "--password-stdin"); code != 0 {
				errs[i] = fmt.Sprintf("admin create %s: %s", email, errOut)
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	d.srv = startProc(t, vars)
	return d
}

// blackhole is an SMTP server that accepts connections and then says nothing (silent) or only
// its greeting: the two ways a mail relay hangs.
type blackhole struct {
	addr     string
	greet    bool
	open     atomic.Int64 // connections open now
	maxOpen  atomic.Int64
	accepted atomic.Int64
}

func startBlackhole(t *testing.T, greet bool) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{addr: ln.Addr().String(), greet: greet}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			n := b.open.Add(1)
			for m := b.maxOpen.Load(); n > m && !b.maxOpen.CompareAndSwap(m, n); m = b.maxOpen.Load() {
			}
			if greet {
				io.WriteString(c, "220 blackhole.test ESMTP\r\n")
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			// Read (and drop) whatever comes, so that a closed connection is seen.
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
				b.open.Add(-1)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return b
}

// forgot posts POST /api/auth/password/forgot as if from ip (behind a trusted proxy, so that the
// per-IP limit does not turn the load into 429s: the test is about SMTP, not PR-01).
func forgot(c *http.Client, base, email, ip string) answer {
	body, _ := json.Marshal(map[string]string{"email": email})
	return sendJSON(c, http.MethodPost, base+"/api/auth/password/forgot", "", body, "X-Forwarded-For", ip)
}

// sendJSON sends a JSON request, with a bearer token when bearer is not empty.
func sendJSON(c *http.Client, method, target, bearer string, body []byte, header ...string) answer {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	began := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(began)}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), took: time.Since(began), err: err}
	json.Unmarshal(data, &a.body)
	return a
}

// sample is one reading of the process's /metrics.
type sample struct {
	at         time.Duration // since the load began
	goroutines int
	rss        float64 // bytes
}

var rssLine = regexp.MustCompile(`(?m)^process_resident_memory_bytes (\S+)`)

// sampleMetrics reads go_goroutines and process_resident_memory_bytes every interval until ctx
// ends.
func sampleMetrics(ctx context.Context, base string, interval time.Duration) []sample {
	var out []sample
	began := time.Now()
	runWorkers(ctx, 1, interval, func(int, int) {
		status, body := get(base + "/metrics")
		g, r := goroutinesLine.FindSubmatch(body), rssLine.FindSubmatch(body)
		if status != 200 || g == nil || r == nil {
			return
		}
		s := sample{at: time.Since(began)}
		s.goroutines, _ = strconv.Atoi(string(g[1]))
		s.rss, _ = strconv.ParseFloat(string(r[1]), 64)
		out = append(out, s)
	})
	return out
}

// trend summarises samples as the maxima of the two halves of those taken from warm on (before
// it a backlog may still be building up to its bound), and the peak of all: a bounded series has
// halves alike, one growing with time does not.
func trend(samples []sample, warm time.Duration, value func(sample) float64) (first, second, peak float64, n int) {
	var steady []float64
	for _, s := range samples {
		peak = max(peak, value(s))
		if s.at >= warm {
			steady = append(steady, value(s))
		}
	}
	for i, v := range steady {
		if i < len(steady)/2 {
			first = max(first, v)
		} else {
			second = max(second, v)
		}
	}
	return first, second, peak, len(steady)
}

func goroutinesOf(s sample) float64 { return float64(s.goroutines) }
func rssMiBOf(s sample) float64     { return s.rss / (1 << 20) }

// checkFlat fails when the second half of the samples after warm is well above the first
// (growth with time) or the peak passes limit.
func checkFlat(t *testing.T, what string, samples []sample, warm time.Duration, value func(sample) float64, slack, limit float64) {
	t.Helper()
	first, second, peak, n := trend(samples, warm, value)
	t.Logf("%s: max %.0f in the first half, %.0f in the second half after %v; peak %.0f (%d samples)", what, first, second, warm, peak, len(samples))
	if n < 4 {
		t.Errorf("%s: only %d samples of /metrics after %v", what, n, warm)
		return
	}
	if second > first*1.25+slack {
		t.Errorf("%s grows with time: %.0f in the second half against %.0f in the first", what, second, first)
	}
	if peak > limit {
		t.Errorf("%s peaked at %.0f, above %.0f", what, peak, limit)
	}
}

func TestFaultBoundedSMTPBlackholed(t *testing.T) {
	for _, greet := range []bool{false, true} {
		name := "silent"
		if greet {
			name = "greeting then stall"
		}
		t.Run(name, func(t *testing.T) { testSMTPBlackholed(t, greet) })
	}
}

func testSMTPBlackholed(t *testing.T, greet bool) {
	start := time.Now()
	smtp := startBlackhole(t, greet)
	d := newBoundedDeployment(t, 3, map[string]string{
		"PORTARIA_SMTP_URL":        "smtp://" + smtp.addr,
		"PORTARIA_TRUSTED_PROXIES": "127.0.0.1/32",
	})
	baseline := goroutines(d.srv.base)
	// Known accounts the load asks resets for: each takes 5 e-mails per 15 min (PR-01), so the
	// full-queue phase uses fresh ones.
	known := d.users

	// Forgot at 80 requests/s (half known accounts, half unknown) while one worker each asks for
	// client_credentials and password tokens, for 4 s.
	load := func(duration time.Duration) (forgets, grants []outcome, samples []sample) {
		var rec recorder
		var ip atomic.Int64
		hc := httpClient(8)
		ctx, cancel := context.WithTimeout(context.Background(), duration)
		defer cancel()
		var wg sync.WaitGroup
		wg.Go(func() { samples = sampleMetrics(ctx, d.srv.base, 200*time.Millisecond) })
		wg.Go(func() {
			runWorkers(ctx, 4, 50*time.Millisecond, func(w, i int) {
				email := fmt.Sprintf("nobody%d-%d@example.test", w, i)
				if i%2 == 0 {
					email = known[(w*1000+i)%len(known)]
				}
				n := ip.Add(1)
				sent := time.Now()
				a := forgot(hc, d.srv.base, email, fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255))
				rec.add(outcome{op: "forgot", chain: -1, sent: sent, answer: a})
			})
		})
		wg.Go(func() {
			// Few logins: they are CPU-bound, and the forgot figures are about waiting, not CPU.
			runWorkers(ctx, 2, 100*time.Millisecond, func(w, i int) {
				if w == 1 && i%3 != 0 {
					return
				}
				sent := time.Now()
				var a answer
				op := "client_credentials"
				if w == 0 {
					a = postToken(hc, d.srv.base, d.machine.id, d.machine.secret, url.Values{"grant_type": {"client_credentials"}})
				} else {
					op = "password"
					a = login(hc, d.srv.base, d.app, d.users[0], faultPassword)
				}
				rec.add(outcome{op: op, chain: -1, sent: sent, answer: a})
			})
		})
		wg.Wait()
		all := rec.all()
		for _, o := range all {
			if o.op == "forgot" {
				forgets = append(forgets, o)
			} else {
				grants = append(grants, o)
			}
		}
		return forgets, grants, samples
	}
	report := func(phase string, forgets, grants []outcome, samples []sample) {
		t.Helper()
		p99 := percentile(forgets, 99)
		t.Logf("%s: forgot %d requests (%s): p50 %v, p99 %v, max %v", phase, len(forgets), statusCounts(forgets),
			percentile(forgets, 50).Round(time.Millisecond), p99.Round(time.Millisecond), percentile(forgets, 100).Round(time.Millisecond))
		for _, op := range []string{"client_credentials", "password"} {
			l := sentIn(grants, time.Time{}, time.Now(), op)
			t.Logf("%s: %s %d requests (%s): p50 %v, p99 %v", phase, op, len(l), statusCounts(l),
				percentile(l, 50).Round(time.Millisecond), percentile(l, 99).Round(time.Millisecond))
		}
		var bad []outcome
		for _, o := range forgets {
			if o.status != 202 {
				bad = append(bad, o)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: %d forgot answers were not 202 (%s)", phase, len(bad), statusCounts(bad))
		}
		// The endpoint must not wait on SMTP at all (a send gives up after 10 s); 200 ms is
		// SECURITY.md's bound (RL-07). On a shared machine every request is slow now and then, so
		// the bound holds unless client_credentials, which sends no mail, was slow as well.
		control := percentile(sentIn(grants, time.Time{}, time.Now(), "client_credentials"), 99)
		if p99 >= 200*time.Millisecond && control < 100*time.Millisecond || percentile(forgets, 100) >= 2*time.Second {
			t.Errorf("%s: forgot p99 %v, max %v (client_credentials p99 %v), want p99 < 200 ms (RL-07)",
				phase, p99, percentile(forgets, 100), control)
		}
		if bad := failures(grants); len(bad) > 0 {
			t.Errorf("%s: token issuance failed meanwhile: %s", phase, statusCounts(bad))
		}
		// The mail queue is a channel with two workers: no goroutine per message or request
		// beyond the HTTP connections of the load (10 kept alive).
		checkFlat(t, phase+": go_goroutines", samples, 0, goroutinesOf, 10, float64(baseline)+40)
		t.Logf("%s: SMTP connections accepted %d, open at most %d at once (mail workers: 2)",
			phase, smtp.accepted.Load(), smtp.maxOpen.Load())
		if smtp.maxOpen.Load() > 2 {
			t.Errorf("%s: %d SMTP connections open at once, want at most the 2 mail workers", phase, smtp.maxOpen.Load())
		}
	}

	t.Logf("go_goroutines at start: %d (set up in %v)", baseline, time.Since(start).Round(time.Millisecond))
	forgets, grants, samples := load(3 * time.Second)
	report("blackholed SMTP", forgets, grants, samples)
	if smtp.accepted.Load() == 0 {
		t.Errorf("no SMTP connection was made: the reset e-mails were not sent to the blackhole")
	}
	if greet {
		return
	}

	// Fill the queue (1,000 messages) with invitations, which cost no hashing, then ask again:
	// a full queue must refuse messages at once (logged), not block or grow.
	admin := login(httpClient(1), d.srv.base, d.app, d.users[0], faultPassword)
	if admin.status != 200 {
		t.Fatalf("admin login: %d %v", admin.status, admin.body)
	}
	bearer := admin.str("access_token")
	org := sendJSON(http.DefaultClient, http.MethodPost, d.srv.base+"/api/organizations", bearer, []byte(`{"name":"Bounded"}`))
	orgID, _ := org.body["id"].(string)
	if org.status != 201 || orgID == "" {
		t.Fatalf("create organization: %d %v", org.status, org.body)
	}
	began := time.Now()
	var created atomic.Int64
	var invitedMu sync.Mutex
	var invited []string
	hc := httpClient(8)
	fillCtx, stopFill := context.WithTimeout(context.Background(), 15*time.Second)
	defer stopFill()
	runWorkers(fillCtx, 8, time.Millisecond, func(w, i int) {
		if created.Load() >= 1100 {
			stopFill()
			return
		}
		email := fmt.Sprintf("invited%d-%d@example.test", w, i)
		body := fmt.Sprintf(`{"email":%q,"name":"I"}`, email)
		a := sendJSON(hc, http.MethodPost, d.srv.base+"/api/organizations/"+orgID+"/users", bearer, []byte(body))
		if a.status != 201 {
			t.Errorf("create user: %d %v", a.status, a.body)
			stopFill()
			return
		}
		invitedMu.Lock()
		invited = append(invited, email)
		invitedMu.Unlock()
		if created.Add(1)%50 == 0 && strings.Contains(readAll(d.srv.logs), "mail not queued: queue full") {
			stopFill()
		}
	})
	full := strings.Count(readAll(d.srv.logs), "mail not queued: queue full")
	t.Logf("queue fill: %d invitations in %v; %d refused as queue full", created.Load(), time.Since(began).Round(time.Millisecond), full)
	if full == 0 {
		t.Fatalf("the queue never reported full after %d messages", created.Load())
	}
	known = invited
	forgets, grants, samples = load(2 * time.Second)
	report("queue full", forgets, grants, samples)
	logs := readAll(d.srv.logs)
	t.Logf("after the full-queue load: %d \"queue full\" log lines, %d \"password reset e-mail not queued\"",
		strings.Count(logs, "mail not queued: queue full"), strings.Count(logs, "password reset e-mail not queued"))
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs, "password reset e-mail not queued") {
		t.Errorf("a reset e-mail refused by the full queue was not logged")
	}
}

// readAll returns the whole of a file ("" when unreadable).
func readAll(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func TestFaultBoundedOverload(t *testing.T) {
	// One core's worth of hashing (one argon2id slot), so that twice its capacity is a load this
	// 2-core machine can offer. The logins go round 32 accounts, as an overload of many users
	// does: a user's attempts in flight together all count towards their lock until they end (so
	// that the bound holds however many race), and a few accounts at 17 logins/s each would have
	// five in flight at once.
	d := newBoundedDeployment(t, 32, map[string]string{"GOMAXPROCS": "1"})
	hc := httpClient(64)
	baseline := goroutines(d.srv.base)

	// Capacity: logins answered per second by four closed-loop workers (the slot always busy).
	var served atomic.Int64
	capCtx, stopCap := context.WithTimeout(context.Background(), 2*time.Second)
	began := time.Now()
	runWorkers(capCtx, 4, time.Millisecond, func(w, i int) {
		if login(hc, d.srv.base, d.app, d.users[(w+i)%len(d.users)], faultPassword).status == 200 {
			served.Add(1)
		}
	})
	stopCap()
	capacity := float64(served.Load()) / time.Since(began).Seconds()
	t.Logf("capacity with GOMAXPROCS=1: %.1f logins/s (%d in %v); go_goroutines at start %d",
		capacity, served.Load(), time.Since(began).Round(time.Millisecond), baseline)
	if capacity < 1 {
		t.Fatalf("capacity %.1f logins/s: the server is not answering logins", capacity)
	}

	// Twice that, open loop: requests arrive at their rate whatever the answers cost, as users do.
	duration := 8 * time.Second
	if longTests {
		duration = 30 * time.Second
	}
	rate := 2 * capacity
	interval := time.Duration(float64(time.Second) / rate)
	var rec recorder
	var samples []sample
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	var wg, inflight sync.WaitGroup
	wg.Go(func() { samples = sampleMetrics(ctx, d.srv.base, 250*time.Millisecond) })
	wg.Go(func() {
		runWorkers(ctx, 1, interval, func(_, i int) {
			inflight.Go(func() {
				sent := time.Now()
				a := login(hc, d.srv.base, d.app, d.users[i%len(d.users)], faultPassword)
				rec.add(outcome{op: "password", chain: -1, sent: sent, answer: a})
			})
		})
	})
	wg.Wait()
	cancel()
	inflight.Wait()
	list := rec.all()
	var accepted, shed, other []outcome
	for _, o := range list {
		switch {
		case o.status == 200:
			accepted = append(accepted, o)
		case o.status == 503:
			// Only 503: every password is right, so a 429 would be an account locked by busy
			// answers (an attempt refused for want of a hashing slot is not counted).
			shed = append(shed, o)
			if o.retryAfter == "" {
				t.Errorf("a %d without Retry-After", o.status)
			}
		default:
			other = append(other, o)
		}
	}
	t.Logf("overload: %.1f logins/s asked for %v: %d requests (%s); accepted %.1f/s", rate, duration, len(list),
		statusCounts(list), float64(len(accepted))/duration.Seconds())
	t.Logf("overload: accepted p50 %v, p99 %v, max %v; shed p50 %v, max %v (F14 asks p99 < 500 ms at 30 logins/s on 2 vCPUs)",
		percentile(accepted, 50).Round(time.Millisecond), percentile(accepted, 99).Round(time.Millisecond),
		percentile(accepted, 100).Round(time.Millisecond), percentile(shed, 50).Round(time.Millisecond),
		percentile(shed, 100).Round(time.Millisecond))
	reasons := map[string]int{}
	for _, o := range shed {
		reasons[fmt.Sprintf("%d %s", o.status, o.str("error_description"))]++
	}
	t.Logf("overload: shed answers by reason: %v", reasons)
	if len(other) > 0 {
		t.Errorf("answers other than 200 and 503 under overload: %s", statusCounts(other))
	}
	// Accepted logins wait at most the slot's wait limit (2 s) and one hash: a queue that grows
	// with time would show here. The bound is about design, hence its slack.
	if slowest := percentile(accepted, 100); slowest > 5*time.Second {
		t.Errorf("an accepted login took %v: requests queue beyond the hashing wait limit", slowest)
	}
	// The machine is shared: when it sped up after the capacity was measured, the load was no
	// overload, and there was nothing to shed.
	overloaded := float64(len(accepted)) < 0.9*float64(len(list))
	t.Logf("overload: overloaded %v (accepted %.0f %% of the requests)", overloaded, 100*float64(len(accepted))/float64(max(len(list), 1)))
	if overloaded && len(shed) == 0 {
		t.Errorf("nothing was shed at twice the capacity (accepted p99 %v)", percentile(accepted, 99))
	}
	// Each request waits at most ~2 s: the process holds about rate × 3 s of them at once.
	checkFlat(t, "overload: go_goroutines", samples, 3*time.Second, goroutinesOf, 20, float64(baseline)+rate*3*2+50)
	checkFlat(t, "overload: RSS MiB", samples, 3*time.Second, rssMiBOf, 30, 512)
	// The shed attempts were given back: no account is left locked or nearer its lock.
	for _, u := range d.users {
		if a := login(hc, d.srv.base, d.app, u, faultPassword); a.status != 200 {
			t.Errorf("after the overload, %s logs in with %d %s", u, a.status, a.str("error_description"))
		}
	}

	// A burst of client_credentials at 64 concurrent clients for 3 s.
	var burst recorder
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	wg.Go(func() { samples = sampleMetrics(ctx, d.srv.base, 250*time.Millisecond) })
	runWorkers(ctx, 64, time.Millisecond, func(int, int) {
		sent := time.Now()
		a := postToken(hc, d.srv.base, d.machine.id, d.machine.secret, url.Values{"grant_type": {"client_credentials"}})
		burst.add(outcome{op: "client_credentials", chain: -1, sent: sent, answer: a})
	})
	wg.Wait()
	list = burst.all()
	t.Logf("client_credentials burst, 64 concurrent for 3 s: %d requests (%s), %.0f/s; p50 %v, p99 %v",
		len(list), statusCounts(list), float64(len(list))/3, percentile(list, 50).Round(time.Millisecond),
		percentile(list, 99).Round(time.Millisecond))
	for _, o := range list {
		if o.err != nil || o.status >= 500 && o.status != 503 {
			t.Errorf("client_credentials burst: %v %d", o.err, o.status)
			break
		}
	}
	// Three seconds are too short to tell growth from the ramp-up of 64 keep-alive connections
	// (a slow machine opens them over the first half): the burst is held to its bound, a
	// goroutine per connection and one per request in flight.
	_, _, peak, n := trend(samples, 0, goroutinesOf)
	t.Logf("burst: go_goroutines peak %.0f (%d samples)", peak, n)
	if limit := float64(baseline) + 2*64 + 50; peak > limit {
		t.Errorf("burst: go_goroutines peaked at %.0f, above %.0f", peak, limit)
	}
}
