package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
)

// Fault tests with real processes (SECURITY.md §1.9, figures F4, F5, F7, F8): a private
// redis-server killed, hung and restarted, PostgreSQL cut off behind a TCP proxy, SIGTERM and
// SIGKILL sent to `portaria serve` under load. Each prints its measured figures with t.Logf
// (go test -v, or docs/reliability.md). `make test` runs short versions; `make test-long` (the
// build tag long) runs the timelines of F4 and F5 and the rotation crash test.

// plan is the timeline and rate of a fault test's load.
type plan struct {
	warm, down, after time.Duration // load before the fault, during it, after recovery
	workers           int
	interval          time.Duration // between two requests of one worker
}

func (p plan) rate() int { return p.workers * int(time.Second/p.interval) }

// redisPlan: short by default; with -tags long, F4's timeline (kill at t=20 s, restart at t=30 s,
// 60 s in all) at 200 requests per second.
func redisPlan() plan {
	if longTests {
		return plan{warm: 20 * time.Second, down: 10 * time.Second, after: 30 * time.Second, workers: 8, interval: 40 * time.Millisecond}
	}
	return plan{warm: 3 * time.Second, down: 3 * time.Second, after: 4 * time.Second, workers: 5, interval: 50 * time.Millisecond}
}

// redisDeployment is one instance on PostgreSQL and a private Redis with the persistence
// docs/deploy.md prescribes for token state: an append-only file fsynced before each reply.
type redisDeployment struct {
	redis   *testenv.RedisProcess
	srv     *proc
	app     client // password and refresh_token
	machine client // client_credentials
	users   []string
}

const faultPassword = "s3cret passphrase!"

func newRedisDeployment(t *testing.T, grace string, users int) *redisDeployment {
	t.Helper()
	d := &redisDeployment{redis: testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")}
	vars := instanceVars(t, map[string]string{
		"PORTARIA_DATABASE_URL":  testenv.PostgresURL(t),
		"PORTARIA_REDIS_URL":     d.redis.URL(),
		"PORTARIA_MASTER_KEY":    newMasterKey(t),
		"PORTARIA_REFRESH_GRACE": grace,
	})
	setUpAccounts(t, vars, d, users)
	d.srv = startProc(t, vars)
	return d
}

// setUpAccounts migrates the database and creates the clients and users of a fault test.
func setUpAccounts(t *testing.T, vars map[string]string, d *redisDeployment, users int) {
	t.Helper()
	if code, _, errOut := cli(t, vars, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	d.app = createClient(t, vars, "app", "password", "refresh_token")
	d.machine = createClient(t, vars, "machine", "client_credentials")
	for i := range users {
		d.users = append(d.users, fmt.Sprintf("user%d@example.test", i))
		createUser(t, vars, d.users[i], faultPassword)
	}
}

// chainLoad is the mixed load of F4 (40 % refresh, 40 % client_credentials, 20 % password): each
// worker keeps a refresh chain of its own user, and remembers every token the server handed out.
type chainLoad struct {
	d   *redisDeployment
	hc  *http.Client
	rec recorder

	mu       sync.Mutex
	current  []string    // each worker's live refresh token ("" when it must log in)
	consumed []timedRT   // refresh tokens presented and answered with a successor
	extra    []timedRT   // refresh tokens of the 20 % extra logins, never presented during the load
	lost     map[int]int // invalid_grant answers per worker
}

type timedRT struct {
	rt string
	at time.Time // when the answer naming it came
}

var mixedOps = []string{"refresh", "client_credentials", "refresh", "client_credentials", "password"}

func newChainLoad(d *redisDeployment, workers int) *chainLoad {
	return &chainLoad{d: d, hc: httpClient(workers), current: make([]string, workers), lost: map[int]int{}}
}

// step is one request of worker w.
func (l *chainLoad) step(w, i int) {
	base := l.d.srv.base
	l.mu.Lock()
	rt := l.current[w]
	l.mu.Unlock()
	op := mixedOps[(w+i)%len(mixedOps)]
	sent := time.Now()
	var a answer
	switch {
	case op == "refresh" && rt != "":
		a = refresh(l.hc, base, l.d.app, rt)
		l.refreshed(w, rt, a)
	case op == "refresh" || rt == "": // no chain yet (or it ended): log in to start one
		op = "password"
		a = login(l.hc, base, l.d.app, l.d.users[w], faultPassword)
		if a.status == 200 {
			l.mu.Lock()
			l.current[w] = a.str("refresh_token")
			l.mu.Unlock()
		}
	case op == "client_credentials":
		a = postToken(l.hc, base, l.d.machine.id, l.d.machine.secret, url.Values{"grant_type": {"client_credentials"}})
	default:
		a = login(l.hc, base, l.d.app, l.d.users[w], faultPassword)
		if a.status == 200 {
			l.mu.Lock()
			l.extra = append(l.extra, timedRT{a.str("refresh_token"), time.Now()})
			l.mu.Unlock()
		}
	}
	l.rec.add(outcome{op: op, chain: w, sent: sent, answer: a})
}

// refreshed records what a refresh of worker w's chain did.
func (l *chainLoad) refreshed(w int, presented string, a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case a.status == 200:
		l.consumed = append(l.consumed, timedRT{presented, time.Now()})
		l.current[w] = a.str("refresh_token")
	case a.status == 400 && a.str("error") == "invalid_grant":
		l.lost[w]++
		l.current[w] = ""
	}
}

// TestFaultRedisKilledAndRestartedUnderLoad is F4 / RL-01 / RL-02: Redis is killed with SIGKILL
// under the mixed load and restarted from its append-only file. While it is down every token
// write answers 503 with Retry-After within a second and no token is handed out; access tokens
// keep verifying offline; after the restart every refresh token handed out before the kill still
// works, and no consumed or revoked refresh token is accepted. The refresh grace is off here so
// that a replayed token is refused whatever its age (with it, a replay within 5 s gets the same
// successor by design, C5).
func TestFaultRedisKilledAndRestartedUnderLoad(t *testing.T) {
	p := redisPlan()
	d := newRedisDeployment(t, "0s", p.workers)
	load := newChainLoad(d, p.workers)
	revoked, revokedConsumed := revokedSessions(t, d, 3)
	meAccess := loginAccess(t, d)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { runWorkers(ctx, p.workers, p.interval, load.step) })
	wg.Go(func() { monitor(ctx, &load.rec, d.srv.base, "/api/auth/me", "me", meAccess, 50*time.Millisecond) })
	time.Sleep(p.warm)
	killedAt := time.Now()
	d.redis.Kill()
	time.Sleep(p.down)
	d.redis.Restart()
	readyAt := time.Now()
	time.Sleep(p.after)
	stop()
	wg.Wait()
	all := load.rec.all()

	outage := checkOutage(t, all, killedAt, readyAt)
	t.Logf("Redis down %.1f s at %d requests/s: token writes %s; p99 %v, max %v; client_credentials %s",
		readyAt.Sub(killedAt).Seconds(), p.rate(), statusCounts(outage), percentile(outage, 99), percentile(outage, 100),
		statusCounts(sentIn(all, killedAt, readyAt, "client_credentials")))
	recovered := lastFailureAfter(all, readyAt, "refresh", "password")
	t.Logf("recovery: every token write succeeded from %.2f s after Redis answered again",
		recovered.Sub(readyAt).Seconds())
	if recovered.Sub(readyAt) > 5*time.Second {
		t.Errorf("token writes failed until %.2f s after Redis was back, want ≤ 5 s", recovered.Sub(readyAt).Seconds())
	}
	checkMeThroughout(t, all)
	checkNothingResurrected(t, d, load, killedAt, revoked, revokedConsumed)
	checkLostOnlyInFlight(t, load, all, killedAt)
}

// TestFaultRedisHangsUnderLoad is RL-01 with a hung Redis rather than a dead one (SIGSTOP: the
// connections stay open and nothing answers, as with a network that drops packets): the short
// client timeouts must still turn every token write into a 503 within a second. With the default
// grace window a refresh whose command Redis runs only after it wakes is answered by the same
// successor when the client retries within the window, so no session is lost to a hang shorter
// than PORTARIA_REFRESH_GRACE.
func TestFaultRedisHangsUnderLoad(t *testing.T) {
	p := redisPlan()
	d := newRedisDeployment(t, "5s", p.workers)
	load := newChainLoad(d, p.workers)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { runWorkers(ctx, p.workers, p.interval, load.step) })
	time.Sleep(p.warm)
	pausedAt := time.Now()
	d.redis.Pause()
	time.Sleep(min(p.down, 3*time.Second))
	d.redis.Resume()
	resumedAt := time.Now()
	time.Sleep(p.after)
	stop()
	wg.Wait()
	all := load.rec.all()
	// A request sent in the last second of the pause may be answered after it: only those sent
	// before resumedAt - 1 s must have failed.
	outage := checkOutage(t, all, pausedAt, resumedAt.Add(-time.Second))
	t.Logf("Redis hung %.1f s at %d requests/s: token writes %s; p50 %v, p99 %v, max %v", resumedAt.Sub(pausedAt).Seconds(),
		p.rate(), statusCounts(outage), percentile(outage, 50), percentile(outage, 99), percentile(outage, 100))
	recovered := lastFailureAfter(all, resumedAt, "refresh", "password")
	t.Logf("recovery: every token write succeeded from %.2f s after Redis resumed", recovered.Sub(resumedAt).Seconds())
	if recovered.Sub(resumedAt) > 5*time.Second {
		t.Errorf("token writes failed until %.2f s after Redis resumed, want ≤ 5 s", recovered.Sub(resumedAt).Seconds())
	}
	load.mu.Lock()
	defer load.mu.Unlock()
	if len(load.lost) > 0 {
		t.Errorf("sessions lost to a %v hang: %v", resumedAt.Sub(pausedAt), load.lost)
	}
}

// revokedSessions logs in n sessions, refreshes each once and revokes the successor; it returns
// the revoked tokens and the consumed ones.
func revokedSessions(t *testing.T, d *redisDeployment, n int) (revoked, consumed []string) {
	t.Helper()
	hc := httpClient(1)
	for range n {
		a := login(hc, d.srv.base, d.app, d.users[0], faultPassword)
		r := refresh(hc, d.srv.base, d.app, a.str("refresh_token"))
		if a.status != 200 || r.status != 200 {
			t.Fatalf("set up a session to revoke: login %d, refresh %d", a.status, r.status)
		}
		if res := revoke(hc, d.srv.base, d.app, r.str("refresh_token")); res.status != 200 {
			t.Fatalf("revoke: %d", res.status)
		}
		revoked = append(revoked, r.str("refresh_token"))
		consumed = append(consumed, a.str("refresh_token"))
	}
	return revoked, consumed
}

// loginAccess returns an access token of a session that stays live for the test.
func loginAccess(t *testing.T, d *redisDeployment) string {
	t.Helper()
	a := login(httpClient(1), d.srv.base, d.app, d.users[0], faultPassword)
	if a.status != 200 {
		t.Fatalf("login: %d %v", a.status, a.body)
	}
	return a.str("access_token")
}

// checkOutage checks the token writes sent while Redis was down: each answered 503 with
// Retry-After within a second (RL-01); none handed out a token. It returns them.
func checkOutage(t *testing.T, all []outcome, from, to time.Time) []outcome {
	t.Helper()
	writes := sentIn(all, from, to, "refresh", "password")
	if len(writes) == 0 {
		t.Fatal("no token write was sent while Redis was down")
	}
	for _, o := range writes {
		switch {
		case o.status == 200:
			t.Errorf("%s at +%.2f s answered 200 while Redis was down: a token without its state", o.op, o.sent.Sub(from).Seconds())
		case o.status != 503 || o.retryAfter == "":
			t.Errorf("%s at +%.2f s: %d (Retry-After %q, err %v), want 503 with Retry-After", o.op, o.sent.Sub(from).Seconds(), o.status, o.retryAfter, o.err)
		case o.took > time.Second:
			t.Errorf("%s at +%.2f s took %v to fail, want ≤ 1 s", o.op, o.sent.Sub(from).Seconds(), o.took)
		}
	}
	return writes
}

// checkMeThroughout: the resource API verifies access tokens offline, so it answers 200 through
// the whole test (F4: RS validation success 100 %).
func checkMeThroughout(t *testing.T, all []outcome) {
	t.Helper()
	var me []outcome
	for _, o := range all {
		if o.op == "me" {
			me = append(me, o)
		}
	}
	bad := slices.DeleteFunc(slices.Clone(me), func(o outcome) bool { return o.status == 200 })
	t.Logf("resource API during the test: %s", statusCounts(me))
	if len(bad) > 0 || len(me) == 0 {
		t.Errorf("%d of %d offline verifications failed", len(bad), len(me))
	}
}

// checkNothingResurrected checks, after the load, that every refresh token handed out before
// the kill still works (its state was persisted before the answer), then that every consumed and
// every revoked one is refused (RL-02).
func checkNothingResurrected(t *testing.T, d *redisDeployment, l *chainLoad, killedAt time.Time, revoked, consumed []string) {
	t.Helper()
	hc := httpClient(1)
	survived, before := 0, 0
	for _, e := range l.extra {
		if e.at.After(killedAt) {
			continue
		}
		before++
		if a := refresh(hc, d.srv.base, d.app, e.rt); a.status == 200 {
			survived++
		} else {
			t.Errorf("a refresh token handed out %.2f s before the kill was lost: %d %v", killedAt.Sub(e.at).Seconds(), a.status, a.body)
		}
	}
	t.Logf("persistence: %d of %d refresh tokens handed out before the kill (and not used since) still work", survived, before)
	replayed, accepted, consumedBefore := 0, 0, 0
	for _, c := range l.consumed {
		consumed = append(consumed, c.rt)
		if c.at.Before(killedAt) {
			consumedBefore++
		}
	}
	for _, rt := range append(consumed, revoked...) {
		replayed++
		if a := refresh(hc, d.srv.base, d.app, rt); a.status != 400 {
			accepted++
			t.Errorf("a consumed or revoked refresh token answered %d after the restart", a.status)
		}
	}
	t.Logf("resurrection: %d consumed (%d of them before the kill) and %d revoked refresh tokens replayed after the restart: %d accepted",
		len(consumed), consumedBefore, len(revoked), accepted)
}

// checkLostOnlyInFlight: a chain whose refresh was in flight at the kill may have been consumed
// without its answer arriving; the next use of the old token is then a reuse and ends the
// session cleanly (invalid_grant). Any other lost session would be state lost by Redis.
func checkLostOnlyInFlight(t *testing.T, l *chainLoad, all []outcome, killedAt time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for w, n := range l.lost {
		inFlight := slices.ContainsFunc(all, func(o outcome) bool {
			return o.chain == w && o.op == "refresh" && o.sent.Before(killedAt.Add(100*time.Millisecond)) &&
				o.done().After(killedAt) && o.status != 200
		})
		if n > 1 || !inFlight {
			t.Errorf("worker %d: %d sessions lost (a refresh in flight at the kill: %v), want at most that one", w, n, inFlight)
		}
	}
	t.Logf("sessions ended by a refresh in flight at the kill: %d (answered invalid_grant, then logged in again)", len(l.lost))
}
