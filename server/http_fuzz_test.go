package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portaria/portaria/internal/testenv"
)

// TestHTTPFuzz is SECURITY.md F13's HTTP fuzz (IN-04): requests built at random from every
// operation of openapi.yaml — the route's method or another, path parameters that name real
// records or are garbage, random query strings, headers and credentials of every kind of caller,
// and bodies that are valid ones mutated byte by byte or field by field — go through the whole
// server. None may answer a 5xx but 503, an /api/ error must be application/problem+json, and no
// request with a small body may allocate more than 1 MiB once its operation has been used (but
// the /metrics scrape, whose size follows the number of series). PORTARIA_FUZZ_REQUESTS sets how many
// (default 3,000; `make fuzz` sends 10⁶), PORTARIA_FUZZ_SEED the seed (printed, to replay a run).
func TestHTTPFuzz(t *testing.T) {
	n := 3000
	if s := os.Getenv("PORTARIA_FUZZ_REQUESTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("PORTARIA_FUZZ_REQUESTS=%q: want a positive count", s)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PORTARIA_FUZZ_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PORTARIA_FUZZ_SEED=%q: %v", s, err)
		}
	}
	f := newOrgFixture(t)
	manager := f.addUser(t, "group manager", f.orgA.ID)
	g := f.matrixGroup(t, "A", 1, manager.ID)
	gen := &requestGen{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		routes: openAPIOperations(t),
		ids: []string{f.orgA.ID, f.orgB.ID, f.user.ID, manager.ID, g.ID, f.matrixMember(t, g, 1),
			f.matrixTest(t, 2), f.matrixResult(t, "A", 3, manager.ID)},
		app:    f.app.ID + ":" + f.appSecret,
		origin: f.issuer,
	}
	for _, actor := range []string{"platform admin", "org admin of A", "member of A", "support", "client credentials", "group manager"} {
		gen.tokens = append(gen.tokens, f.tokens[actor])
	}
	h := f.srv.Config.Handler
	t.Logf("HTTP fuzz: %d requests over %d operations, seed %d (PORTARIA_FUZZ_SEED to replay)", n, len(gen.routes), seed)

	statuses, seen := map[int]int{}, map[string]bool{}
	var maxAlloc uint64
	var maxAllocReq string
	began := time.Now()
	for i := range n {
		req, body, op := gen.next()
		desc := fmt.Sprintf("%s %.300s (Content-Type %q, Authorization %.40q, body %.200q)", req.Method, req.URL.RequestURI(),
			req.Header.Get("Content-Type"), req.Header.Get("Authorization"), body)
		again := req.Clone(req.Context()) // before serving: a handler may change req
		rec, alloc := serveCounting(h, req)
		statuses[rec.Code]++
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("request %d answered %d: %s\n%s", i, rec.Code, desc, rec.Body)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Content-Security-Policy") == "" {
			t.Fatalf("request %d answered %d without the security headers (CK-05): %s", i, rec.Code, desc)
		}
		if rec.Code >= 400 && strings.HasPrefix(req.URL.Path, "/api/") {
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("request %d answered %d with Content-Type %q: %s", i, rec.Code, ct, desc)
			}
		}
		// The scrape's size follows the number of series, whatever the request says; the first
		// request of an operation also fills what the server keeps for the next ones.
		// The count is of the whole process: a request over the bound is sent once more, and the
		// smaller count is its own, so that the server's background work does not weigh on it.
		warm := seen[op]
		seen[op] = true
		if len(body) > testenv.FuzzInputLimit || req.URL.Path == "/metrics" || !warm {
			continue
		}
		if alloc > testenv.FuzzAllocLimit {
			again.Body = io.NopCloser(bytes.NewReader(body))
			_, second := serveCounting(h, again)
			alloc = min(alloc, second)
		}
		if alloc > maxAlloc {
			maxAlloc, maxAllocReq = alloc, desc
		}
	}
	took := time.Since(began)
	t.Logf("HTTP fuzz: %d requests in %.1f s (%.0f/s); statuses %v; most allocated by one request with a body ≤ 64 KiB: %d KiB, %s",
		n, took.Seconds(), float64(n)/took.Seconds(), statuses, maxAlloc>>10, maxAllocReq)
	if maxAlloc > testenv.FuzzAllocLimit {
		t.Errorf("a request allocated %d KiB (more than 1 MiB): %s", maxAlloc>>10, maxAllocReq)
	}
}

// TestUnroutedAPIRequestsAreProblems: a path under /api/ that no route takes, or a method a
// route does not take, is answered like every API error (application/problem+json), a 405 with
// the route's methods in Allow. The fuzz found the mux's plain-text answers.
func TestUnroutedAPIRequestsAreProblems(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, code string
		status             int
		allow              string
	}{
		{"GET", "/api/nothing-here", "not_found", 404, ""},
		{"PATCH", "/api/organizations", "method_not_allowed", 405, "GET, HEAD, OPTIONS, POST"},
		{"OPTIONS", "/api/organizations", "not_found", 404, ""}, // not a CORS preflight
	} {
		rec := httptest.NewRecorder()
		f.srv.Config.Handler.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		var p struct{ Code string }
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != tc.status || p.Code != tc.code || rec.Header().Get("Content-Type") != "application/problem+json" ||
			rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d %s, Content-Type %q, Allow %q; want %d %s, Allow %q", tc.method, tc.path, rec.Code, p.Code,
				rec.Header().Get("Content-Type"), rec.Header().Get("Allow"), tc.status, tc.code, tc.allow)
		}
	}
}

// serveCounting serves req and returns the answer and the bytes the process allocated meanwhile.
func serveCounting(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, uint64) {
	before := testenv.HeapAllocated()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, testenv.HeapAllocated() - before
}

// openAPIOperations lists every operation of openapi.yaml as "METHOD /path/{param}".
func openAPIOperations(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, methods := range doc.Paths {
		for m := range methods {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete"}, m) {
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	slices.Sort(ops) // the seed alone decides the run
	return ops
}

// requestGen builds the fuzz's requests.
type requestGen struct {
	rng    *rand.Rand
	routes []string
	ids    []string // records that exist
	tokens []string // access tokens of every kind of caller
	app    string   // "client_id:secret" of a confidential client
	origin string
}

var (
	fuzzMethods      = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "get", "BREW"}
	fuzzContentTypes = []string{"application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
		"text/plain", "", "application/json; charset=latin1", "multipart/form-data; boundary=x", "application/merge-patch+json", "*/*"}
	fuzzQueryKeys = []string{"limit", "cursor", "q", "email", "active", "name", "field.color", "user_id", "group_id",
		"test_id", "org", "type", "since", "until", "from", "to", "page", "sort", "include_answers", "limit"}
	fuzzStrings = []string{"", "0", "-1", "1", "100", "1000000", "9223372036854775808", "1e309", "NaN", "true", "null",
		"abc", "%00", "%ff", "..%2f..", "../..", "\u202e", "\x00", "a\r\nX-Injected: 1", "2026-01-01T00:00:00Z",
		"2026-13-45", "' OR 1=1 --", "<script>", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "😀", "\xff\xfe"}
	fuzzBodies = []string{"{}", "[]", "null", `""`, "0", `{"a":1}`,
		`{"email":"ana@acme.test","password":"correct horse battery staple"}`,
		`{"email":"nobody@example.test"}`, `{"token":"AAAA","password":"a brand new passphrase"}`,
		`{"current_password":"x","new_password":"a brand new passphrase"}`, `{"code":"123456"}`,
		`{"name":"Name","description":"d","version":"1","score_schema":{"type":"object"}}`,
		`{"name":"Field","type":"choice","choices":["a","b"]}`, `{"permissions":["users:read","platform:admin"]}`,
		`{"email":"new@example.test","name":"New","permissions":[],"fields":{"color":"red"}}`,
		`{"result_ids":["x","y"],"feedback_at":"2026-03-01T12:00:00Z"}`,
		`{"user_id":"x","test_id":"y","scores":{"score":1},"answers":{"q1":"a"},"applied_at":"2026-01-01T00:00:00Z"}`,
		"grant_type=client_credentials&scope=api", "grant_type=password&username=ana%40acme.test&password=x&scope=openid+api",
		"grant_type=refresh_token&refresh_token=AAAA", "token=AAAA&token_type_hint=refresh_token"}
	fuzzTokens = []string{"@{", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x", "\x00", "Basic", ""}
)

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

// next returns a new request, its body and the operation it was made from.
func (g *requestGen) next() (*http.Request, []byte, string) {
	r := g.rng
	op := pick(r, g.routes)
	method, path, _ := strings.Cut(op, " ")
	if r.IntN(10) == 0 {
		method = pick(r, fuzzMethods)
	}
	for strings.Contains(path, "{") {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:i] + g.param() + path[j+1:]
	}
	target := path
	if q := g.query(); q != "" {
		target += "?" + q
	}
	body := g.body()
	req := httptest.NewRequest(http.MethodGet, "/", bytes.NewReader(body))
	req.Method = method
	if u, err := url.ParseRequestURI(target); err == nil {
		req.URL, req.RequestURI = u, target
	} else {
		req.URL.Path, req.RequestURI = "/", "/"
	}
	if ct := pick(r, fuzzContentTypes); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	switch r.IntN(6) {
	case 0, 1, 2:
		req.Header.Set("Authorization", "Bearer "+pick(r, g.tokens))
	case 3:
		req.Header.Set("Authorization", pick(r, []string{"Bearer ", "bearer ", "Basic ", "Token "})+pick(r, fuzzTokens))
	case 4:
		id, secret, _ := strings.Cut(g.app, ":")
		if r.IntN(2) == 0 {
			secret = pick(r, fuzzStrings)
		}
		req.SetBasicAuth(id, secret)
	}
	if r.IntN(4) == 0 {
		req.Header.Set("Cookie", "accessToken="+pick(r, g.tokens)+"; refreshToken="+pick(r, fuzzStrings))
	}
	if r.IntN(2) == 0 {
		req.Header.Set("Origin", pick(r, []string{g.origin, "https://evil.example", "null", ""}))
	}
	if r.IntN(8) == 0 {
		req.Header.Set("X-Forwarded-For", pick(r, []string{"203.0.113.9", "::1", "garbage", "1.2.3.4, 5.6.7.8"}))
	}
	if r.IntN(8) == 0 {
		req.Header.Set("Accept-Language", pick(r, []string{"pt-BR", "en;q=0", "*", "xx-YY,;q=abc"}))
	}
	return req, body, op
}

// param is a path parameter: a record that exists (of any kind, so often the wrong kind), or
// garbage.
func (g *requestGen) param() string {
	r := g.rng
	switch r.IntN(4) {
	case 0, 1:
		return pick(r, g.ids)
	case 2:
		return url.PathEscape(pick(r, fuzzStrings))
	}
	return strings.Repeat("a", r.IntN(3000))
}

func (g *requestGen) query() string {
	r := g.rng
	q := url.Values{}
	for range r.IntN(4) {
		v := pick(r, fuzzStrings)
		if r.IntN(3) == 0 {
			v = pick(r, g.ids)
		}
		q.Add(pick(r, fuzzQueryKeys), v)
	}
	return q.Encode()
}

// body is empty, a seed, a seed with one JSON field replaced by a random value, or a seed
// mutated byte by byte; now and then a large one.
func (g *requestGen) body() []byte {
	r := g.rng
	switch r.IntN(10) {
	case 0:
		return nil
	case 1:
		return bytes.Repeat([]byte(pick(r, []string{"a", "[", `{"a":`, " "})), 1<<10+r.IntN(2<<20))
	case 2, 3, 4:
		var m map[string]any
		seed := pick(r, fuzzBodies)
		if json.Unmarshal([]byte(seed), &m) != nil || len(m) == 0 {
			return []byte(seed)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m[pick(r, keys)] = g.value(3)
		if r.IntN(4) == 0 {
			m[pick(r, fuzzQueryKeys)] = g.value(2)
		}
		b, _ := json.Marshal(m)
		return b
	}
	b := []byte(pick(r, fuzzBodies))
	for range 1 + r.IntN(4) {
		b = g.mutate(b)
	}
	return b
}

// value is a random JSON value, nested at most depth deep.
func (g *requestGen) value(depth int) any {
	r := g.rng
	switch r.IntN(9) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return pick(r, []float64{0, -1, 1.5, 1e300, -1e-300, 9007199254740993})
	case 3:
		return strings.Repeat("x", r.IntN(5000))
	case 4, 5:
		if r.IntN(3) == 0 {
			return pick(r, g.ids)
		}
		return pick(r, fuzzStrings)
	case 6:
		if depth > 0 {
			list := make([]any, r.IntN(5))
			for i := range list {
				list[i] = g.value(depth - 1)
			}
			return list
		}
	case 7, 8:
		if depth > 0 {
			m := map[string]any{}
			for range r.IntN(4) {
				m[pick(r, fuzzQueryKeys)] = g.value(depth - 1)
			}
			return m
		}
	}
	return pick(r, fuzzStrings)
}

// mutate changes b in one random way: a byte flipped, a fragment inserted, a range deleted or
// repeated, or the end cut off.
func (g *requestGen) mutate(b []byte) []byte {
	r := g.rng
	if len(b) == 0 {
		return []byte(pick(r, fuzzStrings))
	}
	i := r.IntN(len(b))
	switch r.IntN(5) {
	case 0:
		b = slices.Clone(b)
		b[i] ^= byte(1 << r.IntN(8))
	case 1:
		frag := pick(r, []string{`"`, "{", "}", "[", "]", ",", ":", `\`, `\u0000`, `\ud800`, "1e999", "-0", `"x":`, "\xff", "&", "=", "%"})
		b = slices.Concat(b[:i], []byte(frag), b[i:])
	case 2:
		b = slices.Concat(b[:i], b[i+r.IntN(len(b)-i+1):])
	case 3:
		j := i + r.IntN(len(b)-i+1)
		b = slices.Concat(b[:j], b[i:j], b[j:])
	default:
		b = b[:i]
	}
	return b
}
