package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultUnknownKidStorm is F9 / JW-08 with real processes: a token server and a resource API
// (--role api, which knows the keys only through PORTARIA_JWKS_URL) on PostgreSQL and Redis; the
// API is flooded with tokens whose kid nobody published, each a new random one, while a user's
// real token keeps being used. Every forged token is refused with 401, the real one is never
// refused, and the JWKS is fetched from the token server at most twice for the whole storm (the
// refetch cool-down, RL-03). Long (`make test-long`, run without the race detector so that the
// driver keeps up): 10,000 requests/s for 60 s, F9's own timeline; short: 1,000 requests/s for
// 3 s. The rate reached and the latencies are printed (docs/reliability.md); the long run also
// holds the API's own p99 (its latency histogram) under F9's 5 ms.
func TestFaultUnknownKidStorm(t *testing.T) {
	rate, length := 1000, 3*time.Second
	if longTests {
		rate, length = 10000, 60*time.Second
	}
	shared, first := deploymentVars(t, nil)
	if code, _, errOut := cli(t, first, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	app := createClient(t, first, "app", "password")
	const email = "kid-storm@example.test"
	createUser(t, first, email, faultPassword)
	issuer := startProc(t, first, "--role", "token")

	// The API fetches the token server's JWKS through this counter.
	var fetches atomic.Int64
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		res, err := http.Get(issuer.base + "/.well-known/jwks.json")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.Header().Set("Content-Type", res.Header.Get("Content-Type"))
		w.Header().Set("Cache-Control", res.Header.Get("Cache-Control"))
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	}))
	t.Cleanup(jwks.Close)
	apiVars := instanceVars(t, shared)
	apiVars["PORTARIA_JWKS_URL"] = jwks.URL
	api := startProc(t, apiVars, "--role", "api")

	hc := httpClient(1)
	issued := login(hc, issuer.base, app, email, faultPassword)
	if issued.status != 200 {
		t.Fatalf("login: %d %v", issued.status, issued.body)
	}
	access := issued.str("access_token")
	if status := meStatus(api.base, access); status != 200 {
		t.Fatalf("the API refused the real token before the storm: %d", status)
	}
	forge := unknownKidForger(t, access)

	const workers = 100
	interval := time.Duration(workers) * time.Second / time.Duration(rate)
	storm := httpClient(workers)
	type tally struct {
		took     []time.Duration
		statuses map[int]int
		failed   int // no answer
	}
	tallies := make([]tally, workers)
	for i := range tallies {
		tallies[i].statuses = map[int]int{}
	}
	var realRefused, realSent atomic.Int64
	served := meHistogram(t, api.base)
	before := fetches.Load()
	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()
	// F9 counts the fetches of the storm's 60 s: an answer still in flight when they end may
	// start the cool-down's next fetch (one every 30 s from the first), which is counted apart.
	atEnd := make(chan int64, 1)
	go func() { <-ctx.Done(); atEnd <- fetches.Load() }()
	began := time.Now()
	runWorkers(ctx, workers, interval, func(w, i int) {
		token := forge()
		if w == 0 && i%10 == 0 { // the real user goes on using the API
			token = access
			realSent.Add(1)
		}
		sent := time.Now()
		status := bearerStatus(storm, api.base+"/api/auth/me", token)
		if token == access {
			if status != 200 {
				realRefused.Add(1)
			}
			return
		}
		tallies[w].took = append(tallies[w].took, time.Since(sent))
		if status == 0 {
			tallies[w].failed++
		} else {
			tallies[w].statuses[status]++
		}
	})
	elapsed := time.Since(began)
	served = meHistogram(t, api.base).minus(served)

	var took []time.Duration
	statuses, failed := map[int]int{}, 0
	for _, tl := range tallies {
		took = append(took, tl.took...)
		for s, n := range tl.statuses {
			statuses[s] += n
		}
		failed += tl.failed
	}
	slices.Sort(took)
	at := func(p float64) time.Duration { return took[min(len(took)-1, int(float64(len(took))*p/100))] }
	during := <-atEnd - before
	t.Logf("unknown-kid storm: %d forged tokens in %.1f s (%.0f requests/s, %d asked), answers %v, %d without an answer; "+
		"p50 %v, p99 %v, max %v; JWKS fetches during the storm: %d (%d with the answers after it); the real token: %d of %d refused",
		len(took), elapsed.Seconds(), float64(len(took))/elapsed.Seconds(), rate, statuses, failed,
		at(50).Round(10*time.Microsecond), at(99).Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond),
		during, fetches.Load()-before, realRefused.Load(), realSent.Load())
	// The latency above is the driver's: it includes the wait of an answer for the driver's
	// own turn on the CPU. The API's histogram times each request from its handler's start to its
	// last byte written, the resource server's own share.
	t.Logf("unknown-kid storm at the API (its own histogram of %s): %d requests, %.2f %% within 1 ms, %.2f %% within 2.5 ms, "+
		"%.2f %% within 5 ms", meRoute, served.count, served.within(0.001), served.within(0.0025), served.within(0.005))
	if len(took) == 0 {
		t.Fatal("no forged token was sent")
	}
	if served.count < len(took) {
		t.Errorf("the API's histogram counted %d requests, %d were answered", served.count, len(took))
	} else if longTests && served.within(0.005) < 99 { // the short run shares the CPU with other packages' tests
		t.Errorf("%.2f %% of the requests took the API at most 5 ms, want 99 %% (F9's p99 < 5 ms)", served.within(0.005))
	}
	if statuses[http.StatusUnauthorized] != len(took) {
		t.Errorf("every forged token must be refused with 401: %v, %d without an answer", statuses, failed)
	}
	if during > 2 {
		t.Errorf("the storm caused %d JWKS fetches, want at most 2 (JW-08)", during)
	}
	if realSent.Load() == 0 || realRefused.Load() != 0 {
		t.Errorf("the real token was refused %d times of %d during the storm", realRefused.Load(), realSent.Load())
	}
	if lines := api.errorLines(); len(lines) > 0 {
		t.Errorf("the API logged errors during the storm: %s", strings.Join(lines[:min(3, len(lines))], "\n"))
	}
}

// unknownKidForger returns a function that makes tokens shaped like access, each with a new
// random kid in its header (and access's claims and signature, which match no published key).
func unknownKidForger(t *testing.T, access string) func() string {
	t.Helper()
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		t.Fatalf("the access token is not a JWS: %q", access)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	rest := "." + parts[1] + "." + parts[2]
	return func() string {
		h := map[string]any{}
		for k, v := range header {
			h[k] = v
		}
		h["kid"] = rand.Text()
		raw, _ := json.Marshal(h)
		return base64.RawURLEncoding.EncodeToString(raw) + rest
	}
}

// bearerStatus is the status of GET target with token as the bearer, or 0 when nothing answered.
func bearerStatus(c *http.Client, target, token string) int {
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// meRoute is the route label of GET /api/auth/me in portaria_http_request_duration_seconds.
const meRoute = "GET /api/auth/me"

// histogram is one route's portaria_http_request_duration_seconds: requests at most each bound.
type histogram struct {
	count   int
	buckets map[float64]int
}

var bucketLine = regexp.MustCompile(`(?m)^portaria_http_request_duration_seconds_bucket\{route="` +
	regexp.QuoteMeta(meRoute) + `",le="([^"]+)"\} (\d+)`)

// meHistogram reads the histogram of GET /api/auth/me from base's /metrics.
func meHistogram(t *testing.T, base string) histogram {
	t.Helper()
	status, body := get(base + "/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: %d", status)
	}
	h := histogram{buckets: map[float64]int{}}
	for _, m := range bucketLine.FindAllSubmatch(body, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		if string(m[1]) == "+Inf" {
			h.count = n
			continue
		}
		le, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("bucket %q: %v", m[1], err)
		}
		h.buckets[le] = n
	}
	return h
}

// minus is the histogram of the requests between earlier and h.
func (h histogram) minus(earlier histogram) histogram {
	d := histogram{count: h.count - earlier.count, buckets: map[float64]int{}}
	for le, n := range h.buckets {
		d.buckets[le] = n - earlier.buckets[le]
	}
	return d
}

// within is the percentage of the requests that took at most le seconds (a bucket's bound).
func (h histogram) within(le float64) float64 {
	if h.count == 0 {
		return 0
	}
	return 100 * float64(h.buckets[le]) / float64(h.count)
}
