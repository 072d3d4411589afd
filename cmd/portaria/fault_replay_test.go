package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portaria/portaria/internal/audit"
)

// replayGrace is the refresh grace window of the replay test: short, so that every used token
// is past it soon after the load.
const replayGrace = time.Second

// TestFaultReplayStorm is F3: after a load of refresh chains spread by the balancer over two
// instances (short: 4 s; long: 60 s; full: 10 min, F3's own load test), plus up to 50 of the
// load's logins refreshed once each, every refresh token used is replayed past its grace window,
// shuffled, eight at a time, in turn at each instance. None may be accepted.
//
// Exactly one refresh.reuse_detected event per replay: the replay that finds its family live
// revokes it (reason reuse_after_grace, tokens.SessionOptions.OnReuse); every other replay of a
// used token of that family, concurrent or later, at either instance, finds it ended and is
// reported too (reason session_ended, OnReplay). The test counts stored events and log lines per
// family against the replays of that family; none before the storm, and none added when the
// families' live (never used) tokens are refused afterwards.
func TestFaultReplayStorm(t *testing.T) {
	loadFor := 4 * time.Second
	switch {
	case fullTimelines:
		loadFor = 10 * time.Minute
	case longTests:
		loadFor = 60 * time.Second
	}
	const workers, interval = 6, 60 * time.Millisecond
	shared, first := deploymentVars(t, map[string]string{"PORTARIA_REFRESH_GRACE": replayGrace.String()})
	d := &redisDeployment{}
	setUpAccounts(t, first, d, workers)
	procs := []*proc{startProc(t, first), startProc(t, instanceVars(t, shared))}
	load := newChainLoad(d, startBalancer(t, procs[0].base, procs[1].base).addr, workers)
	ctx, stop := context.WithTimeout(context.Background(), loadFor)
	runWorkers(ctx, workers, interval, load.step)
	stop()

	db := auditDB(t, first)
	if before := reuseEvents(t, db, d.app); len(before) > 0 {
		t.Fatalf("reuse detected during the load already (%v): the storm would not be measured alone", before)
	}
	load.mu.Lock()
	used, live, extra, lost := append([]timedRT(nil), load.consumed...), append([]string(nil), load.current...), append([]timedRT(nil), load.extra...), len(load.lost)
	load.mu.Unlock()
	if lost > 0 || len(used) == 0 {
		t.Fatalf("the load lost %d chains and used %d refresh tokens", lost, len(used))
	}
	chains := len(live)
	// Families with one used token each, where one replay is the whole of the family's reuse:
	// half of the load's extra logins (the rest must survive the storm), refreshed once.
	singles, extra := extra[:min(len(extra)/2, 50)], extra[min(len(extra)/2, 50):]
	hc := httpClient(1)
	for _, e := range singles {
		a := refresh(hc, procs[0].base, d.app, e.rt)
		if a.status != 200 {
			t.Fatalf("refresh a login of the load: %d %v", a.status, a.body)
		}
		used = append(used, timedRT{e.rt, time.Now()})
		live = append(live, a.str("refresh_token"))
	}
	var lastUse time.Time
	families := map[string]int{} // replays per family
	for _, u := range used {
		if u.at.After(lastUse) {
			lastUse = u.at
		}
		families[familyOf(u.rt)]++
	}
	// The grace window runs from the first use as the server recorded it, before its answer came.
	time.Sleep(time.Until(lastUse.Add(replayGrace + 500*time.Millisecond)))

	stormAt := time.Now()
	accepted, refused, other := replayAll(procs, d.app, used)
	t.Logf("replay storm: %d used refresh tokens (%d of %d chains in %.0f s of load, %d of single-refresh sessions) replayed in %.2f s: %d accepted, %d invalid_grant, %d other answers",
		len(used), len(used)-len(singles), chains, loadFor.Seconds(), len(singles), time.Since(stormAt).Seconds(), accepted, refused, other)
	if accepted > 0 || other > 0 {
		t.Errorf("%d replays accepted and %d answered otherwise, want every one invalid_grant", accepted, other)
	}

	events := awaitReuseEvents(t, db, d.app, len(used))
	for sid, replays := range families {
		if events[sid] != replays {
			t.Errorf("family %s: %d refresh.reuse_detected events for %d replays, want one each", sid, events[sid], replays)
		}
	}
	for sid, n := range events {
		if _, ok := families[sid]; !ok {
			t.Errorf("%d refresh.reuse_detected events for family %s, which was not replayed", n, sid)
		}
	}
	lines := reuseLogLines(procs)
	t.Logf("reuse events: %d stored and %d log lines for %d replays of %d families", eventCount(events), lines, len(used), len(families))
	if lines != len(used) {
		t.Errorf("%d refresh.reuse_detected log lines, want %d (one per replay)", lines, len(used))
	}

	checkAfterStorm(t, procs[0].base, d.app, live, extra)
	if after := eventCount(reuseEvents(t, db, d.app)); after != eventCount(events) {
		t.Errorf("refusing the revoked families' live tokens added reuse events: %d now, %d before", after, eventCount(events))
	}
}

// familyOf is the family (sid) a refresh token names.
func familyOf(rt string) string {
	sid, _, _ := strings.Cut(rt, ".")
	return sid
}

// replayAll presents every token once, in random order, eight at a time, each to one of procs in
// turn, and counts the answers.
func replayAll(procs []*proc, app client, used []timedRT) (accepted, refused, other int) {
	order := rand.Perm(len(used))
	hc := httpClient(8)
	var mu sync.Mutex
	var next int
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(order) {
					return
				}
				a := refresh(hc, procs[i%len(procs)].base, app, used[order[i]].rt)
				mu.Lock()
				switch {
				case a.status == 200:
					accepted++
				case a.status == 400 && a.str("error") == "invalid_grant":
					refused++
				default:
					other++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return accepted, refused, other
}

// checkAfterStorm: reuse revoked each replayed family, so each family's live token is refused
// now; the users' other sessions (the load's extra logins, never refreshed) are untouched.
func checkAfterStorm(t *testing.T, base string, app client, live []string, extra []timedRT) {
	t.Helper()
	hc := httpClient(1)
	for _, rt := range live {
		if a := refresh(hc, base, app, rt); a.status != 400 {
			t.Errorf("family %s: its live token after the replay answered %d, want 400", familyOf(rt), a.status)
		}
	}
	rand.Shuffle(len(extra), func(i, j int) { extra[i], extra[j] = extra[j], extra[i] })
	extra = extra[:min(len(extra), 20)]
	for _, e := range extra {
		if a := refresh(hc, base, app, e.rt); a.status != 200 {
			t.Errorf("another session of a replayed user was ended: %d %v", a.status, a.body)
		}
	}
	t.Logf("after the storm: %d live tokens of the replayed families refused; %d other sessions of the same users, sampled, still refresh", len(live), len(extra))
}

// auditDB connects to the deployment's schema, where the audit_events table is.
func auditDB(t *testing.T, vars map[string]string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, vars["PORTARIA_DATABASE_URL"])
	if err != nil {
		t.Fatalf("connect to the audit table: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// reuseEvents returns the stored refresh.reuse_detected events as family → count; each must be
// denied and name app.
func reuseEvents(t *testing.T, db *pgx.Conn, app client) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, "SELECT outcome, client_id, details FROM audit_events WHERE type = $1", audit.RefreshReuseDetected)
	if err != nil {
		t.Fatalf("read audit_events: %v", err)
	}
	defer rows.Close()
	events := map[string]int{}
	for rows.Next() {
		var outcome, clientID, details string
		if err := rows.Scan(&outcome, &clientID, &details); err != nil {
			t.Fatalf("read audit_events: %v", err)
		}
		var d map[string]string
		json.Unmarshal([]byte(details), &d)
		if outcome != audit.OutcomeDenied || clientID != app.id || d["family"] == "" {
			t.Errorf("reuse event: outcome %q, client %q, details %s", outcome, clientID, details)
		}
		events[d["family"]]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read audit_events: %v", err)
	}
	return events
}

func eventCount(events map[string]int) int {
	n := 0
	for _, c := range events {
		n += c
	}
	return n
}

// awaitReuseEvents polls until want events are stored (rows are inserted in batches within
// 100 ms), then once more a second later, so that a late duplicate shows too.
func awaitReuseEvents(t *testing.T, db *pgx.Conn, app client, want int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for eventCount(reuseEvents(t, db, app)) < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	return reuseEvents(t, db, app)
}

// reuseLogLines counts the refresh.reuse_detected audit lines of every instance's log.
func reuseLogLines(procs []*proc) int {
	n := 0
	for _, p := range procs {
		data, _ := os.ReadFile(p.logs)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"msg":"audit"`) && strings.Contains(line, `"type":"`+audit.RefreshReuseDetected+`"`) {
				n++
			}
		}
	}
	return n
}
