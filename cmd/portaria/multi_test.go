package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestThreeInstancesShareOneDeployment runs three `portaria serve` processes on one PostgreSQL
// schema, one Redis prefix and one master key, as a production deployment behind a load
// balancer does: a session started at one instance is refreshed at another and revoked at the
// third; the revocation reaches every instance's resource API through the feed (C3, RT-06: within
// 5 s); a key rotated with the CLI appears in every instance's JWKS (JW-07, RL-04: replicas
// agree on the key set).
func TestThreeInstancesShareOneDeployment(t *testing.T) {
	shared, first := deploymentVars(t, nil)
	if code, _, errOut := cli(t, first, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	app := createClient(t, first, "app", "password", "refresh_token")
	const email, password = "multi@example.test", "s3cret passphrase!"
	createUser(t, first, email, password)
	var procs []*proc
	for _, vars := range []map[string]string{first, instanceVars(t, shared), instanceVars(t, shared)} {
		procs = append(procs, startProc(t, vars))
	}
	a, b, c := procs[0], procs[1], procs[2]
	hc := httpClient(4)

	issued := login(hc, a.base, app, email, password)
	if issued.status != 200 {
		t.Fatalf("login at instance A: %d %v", issued.status, issued.body)
	}
	refreshed := refresh(hc, b.base, app, issued.str("refresh_token"))
	if refreshed.status != 200 {
		t.Fatalf("refresh at instance B of A's token: %d %v", refreshed.status, refreshed.body)
	}
	// Within the grace window a repeated use at a third instance gets the same successor: the
	// rotation state lives in the shared Redis, not in an instance.
	again := refresh(hc, c.base, app, issued.str("refresh_token"))
	if again.status != 200 || again.str("refresh_token") != refreshed.str("refresh_token") {
		t.Fatalf("repeated use at instance C within the grace window: %d, same successor %v",
			again.status, again.str("refresh_token") == refreshed.str("refresh_token"))
	}
	access := refreshed.str("access_token")
	for i, p := range procs {
		if status := meStatus(p.base, access); status != 200 {
			t.Fatalf("instance %c refused B's access token: %d", 'A'+i, status)
		}
	}

	if res := revoke(hc, c.base, app, refreshed.str("refresh_token")); res.status != 200 {
		t.Fatalf("revoke at instance C: %d %v", res.status, res.body)
	}
	revokedAt := time.Now()
	if res := refresh(hc, a.base, app, refreshed.str("refresh_token")); res.status != 400 || res.str("error") != "invalid_grant" {
		t.Fatalf("refresh at instance A after the revocation at C: %d %v", res.status, res.body)
	}
	for i, took := range untilRefused(procs, access, revokedAt, 10*time.Second) {
		t.Logf("revocation feed: instance %c refused the revoked session's access token after %.2f s", 'A'+i, took.Seconds())
		if took < 0 || took > 5*time.Second {
			t.Errorf("instance %c: the revoked session's access token was accepted for more than 5 s", 'A'+i)
		}
	}

	rotatedAt := time.Now()
	kid := rotateKey(t, first)
	// Each instance re-reads the key ring every 30 s (keys.Options.Reload): the new key appears
	// within that, long before it may sign (PORTARIA_JWKS_MAX_AGE × 2 + 30 s after the rotation).
	for i, took := range untilPublished(procs, kid, rotatedAt, 40*time.Second) {
		t.Logf("key rotation: instance %c published the new key %.2f s after `keys rotate`", 'A'+i, took.Seconds())
		if took < 0 {
			t.Errorf("instance %c never published the new key %s", 'A'+i, kid)
		}
	}
}

// meStatus is the status of GET /api/auth/me with access, or 0 when nothing answered.
func meStatus(base, access string) int {
	return bearerStatus(http.DefaultClient, base+"/api/auth/me", access)
}

// untilRefused polls every instance's resource API with access until it answers 401, and
// returns for each how long after since that took (-1: not within limit).
func untilRefused(procs []*proc, access string, since time.Time, limit time.Duration) []time.Duration {
	return pollEach(procs, since, limit, func(p *proc) bool { return meStatus(p.base, access) == 401 })
}

// untilPublished polls every instance's JWKS until it lists kid.
func untilPublished(procs []*proc, kid string, since time.Time, limit time.Duration) []time.Duration {
	return pollEach(procs, since, limit, func(p *proc) bool { return slices.Contains(jwksKids(p.base), kid) })
}

// pollEach runs done against every instance at once, every 50 ms, and returns for each how
// long after since it first held (-1: not within limit).
func pollEach(procs []*proc, since time.Time, limit time.Duration, done func(*proc) bool) []time.Duration {
	took := make([]time.Duration, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			took[i] = -1
			for time.Since(since) < limit {
				if done(p) {
					took[i] = time.Since(since)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return took
}

// jwksKids returns the kids of the JWKS an instance serves (none when it does not answer).
func jwksKids(base string) []string {
	status, body := get(base + "/.well-known/jwks.json")
	if status != 200 {
		return nil
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	json.Unmarshal(body, &set)
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.KID
	}
	return kids
}

// rotateKey runs `portaria keys rotate` and returns the new key's kid.
func rotateKey(t *testing.T, vars map[string]string) string {
	t.Helper()
	code, out, errOut := cli(t, vars, "", "keys", "rotate")
	if code != 0 {
		t.Fatalf("keys rotate: %s", errOut)
	}
	var k struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.KID == "" {
		t.Fatalf("keys rotate printed %q", out)
	}
	return k.KID
}
