package main

import (
	"context"
	"testing"
	"time"
)

// TestFaultRedisHangsUnderLoad is RL-01 with a hung Redis rather than a dead one (SIGSTOP: the
// connections stay open and nothing answers, as with a network that drops packets): the short
// client timeouts must still turn every token write into a 503 within a second. With the default
// grace window a refresh whose command Redis runs only after it wakes is answered by the same
// successor when the client retries within the window, so no session is lost to a hang shorter
// than PORTARIA_REFRESH_GRACE.
func TestFaultRedisHangsUnderLoad(t *testing.T) {
	// The hang stays shorter than the 5 s grace window (see above); a longer load would show
	// nothing more, so there is no long version.
	p := plan{warm: 3 * time.Second, down: 3 * time.Second, after: 4 * time.Second, workers: 5, interval: 50 * time.Millisecond}
	d := newRedisDeployment(t, "5s", p.workers)
	load := newChainLoad(d, d.srv.base, p.workers)
	all, at := runFault(p, &load.rec, d.redis.Pause, d.redis.Resume,
		func(ctx context.Context) { runWorkers(ctx, p.workers, p.interval, load.step) })
	outage := checkOutage(t, all, at.began, at.healed)
	failed := failures(outage)
	t.Logf("Redis hung %.1f s (load asked: %d requests/s): token writes %s; failures answered in p50 %v, p99 %v, max %v", at.healed.Sub(at.began).Seconds(),
		p.rate(), statusCounts(outage), percentile(failed, 50), percentile(failed, 99), percentile(failed, 100))
	checkRecovery(t, all, at.healed, "Redis resumed", "refresh", "password")
	load.mu.Lock()
	defer load.mu.Unlock()
	if len(load.lost) > 0 {
		t.Errorf("sessions lost to a %v hang: %v", at.healed.Sub(at.began), load.lost)
	}
}
