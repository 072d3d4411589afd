package main

import (
	"context"
	"testing"
	"time"
)

// TestFaultRedisFullUnderLoad is RL-01 for a full Redis: under the mixed load, Redis reaches
// its maxmemory with the noeviction policy docs/deploy.md requires, and refuses every write that
// needs memory (OOM). Token requests fail closed as in any Redis outage, 503 with Retry-After
// within a second and never 500, and nothing is handed out without its state; a refresh, whose
// script deletes the old token before it writes, is let through by Redis whole (so it may answer
// 200). Once the limit is lifted (CONFIG SET maxmemory 0) every grant succeeds again within 5 s,
// without a restart, and no state was lost: every refresh token handed out before still works,
// no consumed or revoked one is accepted, no session ended.
func TestFaultRedisFullUnderLoad(t *testing.T) {
	p := redisPlan()
	d := newRedisDeployment(t, "0s", p.workers)
	load := newChainLoad(d, d.srv.base, p.workers)
	revoked, revokedConsumed := revokedSessions(t, d, 3)
	meAccess := loginAccess(t, d)

	var full time.Time // when Redis refused the filler: full from then on
	filler := 0
	fill := func() { filler = d.redis.Fill(); full = time.Now() }
	all, at := runFault(p, &load.rec, fill, d.redis.Unfill,
		func(ctx context.Context) { runWorkers(ctx, p.workers, p.interval, load.step) },
		func(ctx context.Context) {
			monitor(ctx, &load.rec, d.srv.base, "/api/auth/me", "me", meAccess, 50*time.Millisecond)
		})

	writes := sentIn(all, at.began, at.healing, "refresh", "password", "client_credentials")
	for _, o := range writes {
		when := o.sent.Sub(at.began).Seconds()
		switch {
		case o.status == 200:
		case o.status != 503 || o.retryAfter == "":
			t.Errorf("%s at +%.2f s: %d (Retry-After %q, err %v), want 503 with Retry-After", o.op, when, o.status, o.retryAfter, o.err)
		case o.took > time.Second:
			t.Errorf("%s at +%.2f s took %v to fail, want ≤ 1 s", o.op, when, o.took)
		}
	}
	// A login writes a new session (and its throttle counter first): none may succeed while full.
	logins := sentIn(all, full, at.healing, "password")
	for _, o := range logins {
		if o.status == 200 && o.done().Before(at.healing) {
			t.Errorf("a login at +%.2f s answered 200 while Redis was full: a token without its state", o.sent.Sub(at.began).Seconds())
		}
	}
	if len(logins) == 0 {
		t.Error("no login was sent while Redis was full")
	}
	failed := failures(writes)
	t.Logf("Redis full %.1f s (%d filler keys; load asked: %d requests/s): password %s, refresh %s, client_credentials %s; failures answered in p99 %v, max %v",
		at.healing.Sub(full).Seconds(), filler, p.rate(),
		statusCounts(sentIn(all, full, at.healing, "password")), statusCounts(sentIn(all, full, at.healing, "refresh")),
		statusCounts(sentIn(all, full, at.healing, "client_credentials")), percentile(failed, 99), percentile(failed, 100))
	checkRecovery(t, all, at.healed, "maxmemory was lifted", "refresh", "password")
	checkMeThroughout(t, all)
	t.Log(`below, "the kill" is the moment Redis began to fill, and "the restart" the end of the load`)
	checkNothingResurrected(t, d, load, at.began, revoked, revokedConsumed)
	t.Logf("sessions ended: %d", len(load.lost))
	if len(load.lost) > 0 {
		t.Errorf("sessions ended while Redis was full (invalid_grant per worker: %v), want none", load.lost)
	}
}
