package audit_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
)

func TestSQLite(t *testing.T) { run(t, testenv.SQLiteURL) }

func TestPostgres(t *testing.T) { run(t, testenv.PostgresURL) }

// run is the whole suite against one database; each case gets a fresh one.
func run(t *testing.T, dsn func(testing.TB) string) {
	cases := []struct {
		name string
		test func(*testing.T, *fixture)
	}{
		{"an event reads back as recorded and its log line carries the same fields", testRoundTrip},
		{"refresh-token reuse is logged at WARN", testReuseIsAWarning},
		{"pages run newest first without duplicates or gaps", testPagination},
		{"an organization's query never returns another's events", testOrgIsolation},
		{"filters narrow the list", testFilters},
		{"queries without an organization, with a negative limit or a forged cursor are refused", testBadQueries},
		{"unknown types, outcomes and detail keys are refused and go nowhere", testRefusedEvents},
		{"control characters are escaped and a CR/LF user agent stays one line", testEscaping},
		{"long values are cut between characters and marked", testCaps},
		{"secrets under a forbidden key reach neither the table nor the log", testCanary},
		{"a cancelled request still leaves its trace", testCancelledContext},
		{"a failed insert still writes the log line and reports the error", testInsertFailure},
		{"concurrent records get distinct ids", testConcurrentRecords},
		{"the pruning statement of docs/audit.md removes only old events", testPrune},
		{"enqueued events are logged at once and all stored by Run, in batches", testEnqueue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newFixture(t, dsn(t))) })
	}
}

type fixture struct {
	db    *sqldb.DB
	log   *audit.Log
	out   *bytes.Buffer // slog handlers serialize their writes; tests read after the writers are done
	clock *clock
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	db, err := sqldb.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(t.Context(), audit.Migrations); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, out: &bytes.Buffer{}, clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)}}
	logger := slog.New(slog.NewJSONHandler(f.out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.log = audit.New(db, logger, f.clock.now)
	return f
}

func (f *fixture) record(t *testing.T, e audit.Event) {
	t.Helper()
	if err := f.log.Record(t.Context(), e); err != nil {
		t.Fatalf("Record(%s): %v", e.Type, err)
	}
}

func (f *fixture) list(t *testing.T, q audit.Query) ([]audit.Event, string) {
	t.Helper()
	events, next, err := f.log.List(t.Context(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	return events, next
}

// listAll follows the cursors to the end.
func (f *fixture) listAll(t *testing.T, q audit.Query) []audit.Event {
	t.Helper()
	var all []audit.Event
	for {
		events, next := f.list(t, q)
		all = append(all, events...)
		if next == "" {
			return all
		}
		q.Cursor = next
	}
}

// rawRows reads every column of every row as the database holds it.
func (f *fixture) rawRows(t *testing.T) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := f.db.NewRaw("SELECT * FROM audit_events").Scan(t.Context(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// lines decodes the JSON log output, one object per line.
func (f *fixture) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(f.out.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// clock advances one second per reading, so that every event has its own time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func resultRead(org, actor, result string) audit.Event {
	return audit.Event{
		Type: audit.ResultRead, Outcome: audit.OutcomeSuccess, ActorID: actor, ClientID: "client-1",
		OrgID: org, SubjectID: result, Route: "GET /api/results/{result}", RequestID: "req-1",
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0",
	}
}

func testRoundTrip(t *testing.T, f *fixture) {
	in := audit.Event{
		Type: audit.TokenIssued, Outcome: audit.OutcomeSuccess, ActorID: "user-1", ClientID: "client-1",
		OrgID: "org-a", SubjectID: "user-1", Route: "POST /oauth/token", RequestID: "req-42",
		IP: "2001:db8::1", UserAgent: "curl/8.5.0",
		Details: map[string]string{"grant": "password", "jti": "jti-1", "family": "fam-1", "scope": "openid"},
		ID:      "ignored", At: time.Unix(0, 0),
	}
	f.record(t, in)

	events, next := f.list(t, audit.Query{OrgID: "org-a"})
	if len(events) != 1 || next != "" {
		t.Fatalf("List = %d events, next %q; want 1, \"\"", len(events), next)
	}
	got := events[0]
	if id, err := uuid.Parse(got.ID); err != nil || id.Version() != 7 {
		t.Errorf("ID = %q, want a UUIDv7 (%v)", got.ID, err)
	}
	if want := time.Date(2026, 3, 1, 9, 0, 1, 123456000, time.UTC); !got.At.Equal(want) || got.At.Location() != time.UTC {
		t.Errorf("At = %v, want %v in UTC", got.At, want)
	}
	want := in
	want.ID, want.At = got.ID, got.At
	if !equalJSON(t, got, want) {
		t.Errorf("read back %+v\nwant %+v", got, want)
	}

	lines := f.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1", len(lines))
	}
	line := lines[0]
	if line["level"] != "INFO" || line["msg"] != "audit" {
		t.Errorf("level %v msg %v, want INFO audit", line["level"], line["msg"])
	}
	if !strings.HasSuffix(line["at"].(string), "Z") {
		t.Errorf("at = %v, want UTC ending in Z", line["at"])
	}
	delete(line, "time")
	delete(line, "level")
	delete(line, "msg")
	if !equalJSON(t, line, got) {
		t.Errorf("log line %v\ndoes not carry the row's fields %+v", line, got)
	}
}

// equalJSON compares two values by their JSON form, the schema the row and the line share.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	var ma, mb map[string]any
	for _, p := range []struct {
		v   any
		dst *map[string]any
	}{{a, &ma}, {b, &mb}} {
		raw, err := json.Marshal(p.v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, p.dst); err != nil {
			t.Fatal(err)
		}
	}
	ra, _ := json.Marshal(ma) // maps marshal with sorted keys
	rb, _ := json.Marshal(mb)
	return bytes.Equal(ra, rb)
}

func testReuseIsAWarning(t *testing.T, f *fixture) {
	f.record(t, audit.Event{Type: audit.RefreshReuseDetected, Outcome: audit.OutcomeDenied, OrgID: "org-a",
		SubjectID: "user-1", Details: map[string]string{"family": "fam-1"}})
	f.record(t, audit.Event{Type: audit.LoginFailed, Outcome: audit.OutcomeFailure, OrgID: "org-a",
		Details: map[string]string{"factor": "password"}})
	lines := f.lines(t)
	if len(lines) != 2 || lines[0]["level"] != "WARN" || lines[1]["level"] != "INFO" {
		t.Fatalf("levels of %v, want WARN then INFO", lines)
	}
}

func testPagination(t *testing.T, f *fixture) {
	const n = 120
	for i := range n {
		f.record(t, resultRead("org-a", "user-1", fmt.Sprintf("result-%03d", i)))
	}
	q := audit.Query{OrgID: "org-a"}
	var sizes []int
	var all []audit.Event
	for {
		events, next := f.list(t, q)
		sizes = append(sizes, len(events))
		all = append(all, events...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if fmt.Sprint(sizes) != "[50 50 20]" {
		t.Errorf("page sizes %v, want [50 50 20] (default limit 50)", sizes)
	}
	if len(all) != n {
		t.Fatalf("%d events over all pages, want %d", len(all), n)
	}
	for i, e := range all {
		if want := fmt.Sprintf("result-%03d", n-1-i); e.SubjectID != want {
			t.Fatalf("event %d is %s, want %s: not newest first, or a duplicate or gap", i, e.SubjectID, want)
		}
		if i > 0 && !e.At.Before(all[i-1].At) {
			t.Fatalf("event %d at %v is not older than the one before (%v)", i, e.At, all[i-1].At)
		}
	}

	events, next := f.list(t, audit.Query{OrgID: "org-a", Limit: 7})
	if len(events) != 7 || next == "" {
		t.Errorf("Limit 7 gave %d events, next %q", len(events), next)
	}
	events, next = f.list(t, audit.Query{OrgID: "org-a", Limit: 10_000})
	if len(events) != n || next != "" {
		t.Errorf("a limit above the maximum gave %d events, next %q; want all %d", len(events), next, n)
	}
}

func testOrgIsolation(t *testing.T, f *fixture) {
	count := map[string]int{}
	for i := range 45 {
		org := []string{"org-a", "org-b", ""}[i%3]
		f.record(t, resultRead(org, "user-"+org, fmt.Sprintf("result-%d", i)))
		count[org]++
	}
	for _, org := range []string{"org-a", "org-b"} {
		events := f.listAll(t, audit.Query{OrgID: org, Limit: 4})
		if len(events) != count[org] {
			t.Errorf("%s: %d events, want %d", org, len(events), count[org])
		}
		for _, e := range events {
			if e.OrgID != org {
				t.Errorf("%s's query returned an event of %q", org, e.OrgID)
			}
		}
	}

	// Another organization's cursor only says where to start: it never widens the query.
	_, cursorB := f.list(t, audit.Query{OrgID: "org-b", Limit: 1})
	for _, e := range f.listAll(t, audit.Query{OrgID: "org-a", Cursor: cursorB}) {
		if e.OrgID != "org-a" {
			t.Errorf("org-a's query with org-b's cursor returned an event of %q", e.OrgID)
		}
	}

	if got := len(f.listAll(t, audit.Query{Platform: true, Limit: 10})); got != 45 {
		t.Errorf("platform query: %d events, want all 45, platform events included", got)
	}
	if got := len(f.listAll(t, audit.Query{Platform: true, OrgID: "org-b"})); got != count["org-b"] {
		t.Errorf("platform query for org-b: %d events, want %d", got, count["org-b"])
	}
}

func testFilters(t *testing.T, f *fixture) {
	f.record(t, resultRead("org-a", "manager", "result-1"))
	f.record(t, resultRead("org-a", "admin", "result-1"))
	f.record(t, resultRead("org-a", "admin", "result-2"))
	denied := resultRead("org-a", "member", "result-1")
	denied.Outcome = audit.OutcomeDenied
	f.record(t, denied)
	f.record(t, audit.Event{Type: audit.PermissionsChanged, Outcome: audit.OutcomeSuccess, ActorID: "admin",
		OrgID: "org-a", SubjectID: "manager", Details: map[string]string{"before": "", "after": "results:read"}})

	cases := []struct {
		name  string
		query audit.Query
		want  int
	}{
		{"by type", audit.Query{Type: audit.ResultRead}, 4},
		{"by subject", audit.Query{SubjectID: "result-1"}, 3},
		{"by actor", audit.Query{ActorID: "admin"}, 3},
		{"by subject and actor", audit.Query{SubjectID: "result-1", ActorID: "admin"}, 1},
		{"by type and actor", audit.Query{Type: audit.PermissionsChanged, ActorID: "admin"}, 1},
		{"matching nothing", audit.Query{Type: audit.LoginFailed}, 0},
	}
	for _, c := range cases {
		c.query.OrgID = "org-a"
		events := f.listAll(t, c.query)
		if len(events) != c.want {
			t.Errorf("%s: %d events, want %d", c.name, len(events), c.want)
		}
		for _, e := range events {
			if (c.query.Type != "" && e.Type != c.query.Type) || (c.query.SubjectID != "" && e.SubjectID != c.query.SubjectID) ||
				(c.query.ActorID != "" && e.ActorID != c.query.ActorID) {
				t.Errorf("%s: %+v does not match the filter", c.name, e)
			}
		}
	}
}

func testBadQueries(t *testing.T, f *fixture) {
	f.record(t, resultRead("org-a", "user-1", "result-1"))
	nonCanonical := base64.RawURLEncoding.EncodeToString([]byte("{" + uuid.Must(uuid.NewV7()).String() + "}"))
	for _, q := range []audit.Query{
		{},
		{Type: audit.ResultRead},
		{OrgID: "org-a", Limit: -1},
		{OrgID: "org-a", Cursor: "not a cursor"},
		{OrgID: "org-a", Cursor: base64.RawURLEncoding.EncodeToString([]byte("' OR 1=1 --"))},
		{OrgID: "org-a", Cursor: nonCanonical},
		{OrgID: "org-a", Type: "\x00"},
		{OrgID: "org-a", SubjectID: "\xff"},
		{OrgID: "org-\u202e", ActorID: "x"},
	} {
		if events, _, err := f.log.List(t.Context(), q); !errors.Is(err, audit.ErrInvalidQuery) || events != nil {
			t.Errorf("List(%+v) = %d events, %v; want ErrInvalidQuery", q, len(events), err)
		}
	}
}

func testRefusedEvents(t *testing.T, f *fixture) {
	ok := resultRead("org-a", "user-1", "result-1")
	cases := map[string]func(*audit.Event){
		"an unknown type":           func(e *audit.Event) { e.Type = "result.exported" },
		"no type":                   func(e *audit.Event) { e.Type = "" },
		"an unknown outcome":        func(e *audit.Event) { e.Outcome = "ok" },
		"no outcome":                func(e *audit.Event) { e.Outcome = "" },
		"an unknown detail key":     func(e *audit.Event) { e.Details = map[string]string{"answers": "[1,2,3]"} },
		"a key beside allowed ones": func(e *audit.Event) { e.Details = map[string]string{"jti": "j", "token": "t"} },
		"a key differing in case":   func(e *audit.Event) { e.Details = map[string]string{"JTI": "j"} },
	}
	for name, change := range cases {
		e := ok
		change(&e)
		if err := f.log.Record(t.Context(), e); !errors.Is(err, audit.ErrInvalidEvent) {
			t.Errorf("%s: Record = %v, want ErrInvalidEvent", name, err)
		}
	}
	if rows := f.rawRows(t); len(rows) != 0 {
		t.Errorf("%d rows stored for refused events", len(rows))
	}
	if out := f.out.String(); out != "" {
		t.Errorf("refused events were logged: %s", out)
	}
	err := f.log.Record(t.Context(), audit.Event{Type: audit.LoginFailed, Outcome: audit.OutcomeFailure,
		Details: map[string]string{"password": "x"}})
	if err == nil || !strings.Contains(err.Error(), `"password"`) {
		t.Errorf("the error %v does not name the refused key", err)
	}
}

func testEscaping(t *testing.T, f *fixture) {
	injected := "Mozilla/5.0\r\n" + `{"level":"INFO","msg":"audit","type":"login.succeeded"}`
	cases := []struct {
		name, in, want string
	}{
		{"CR/LF", injected, `Mozilla/5.0\u000d\u000a{"level":"INFO","msg":"audit","type":"login.succeeded"}`},
		{"NUL, ESC and DEL", "a\x00b\x1b[31mc\x7f", `a\u0000b\u001b[31mc\u007f`},
		{"C1 control", "a\u0085b", `a\u0085b`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"a bidirectional override", "evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"a backslash, so that an escape in the input cannot pass for ours", `a\u000ab`, `a\\u000ab`},
		{"plain Unicode", "Zoë 東京 🙂", "Zoë 東京 🙂"},
	}
	for _, c := range cases {
		e := resultRead("org-a", "user-1", "result-1")
		e.UserAgent = c.in
		e.RequestID = c.in
		e.Details = map[string]string{"reason": c.in}
		f.record(t, e)
		events, _ := f.list(t, audit.Query{OrgID: "org-a", Limit: 1})
		got := events[0]
		if got.UserAgent != c.want || got.RequestID != c.want || got.Details["reason"] != c.want {
			t.Errorf("%s: stored %q, %q, %q; want %q", c.name, got.UserAgent, got.RequestID, got.Details["reason"], c.want)
		}
	}
	if n := strings.Count(f.out.String(), "\n"); n != len(cases) {
		t.Errorf("%d events wrote %d log lines, want one each", len(cases), n)
	}
	lines := f.lines(t)
	if lines[0]["user_agent"] != cases[0].want || lines[0]["type"] != audit.ResultRead {
		t.Errorf("first line: user_agent %q, type %v", lines[0]["user_agent"], lines[0]["type"])
	}
}

func testCaps(t *testing.T, f *fixture) {
	e := resultRead("org-a", strings.Repeat("u", 1000), "result-1")
	e.UserAgent = strings.Repeat("é", 5000) // two bytes each: a cut must not split one
	e.Route = strings.Repeat("/x", 1000)
	e.Details = map[string]string{"after": strings.Repeat("results:read ", 500)}
	f.record(t, e)
	events, _ := f.list(t, audit.Query{OrgID: "org-a"})
	got := events[0]
	for _, c := range []struct {
		field, value string
		max          int
	}{
		{"actor_id", got.ActorID, 128},
		{"user_agent", got.UserAgent, 256},
		{"route", got.Route, 256},
		{"details.after", got.Details["after"], 512},
	} {
		if len(c.value) > c.max || !strings.HasSuffix(c.value, "…") || !utf8.ValidString(c.value) {
			t.Errorf("%s: %d bytes %q…, want at most %d, valid UTF-8, ending in …", c.field, len(c.value), c.value[:20], c.max)
		}
	}
}

func testCanary(t *testing.T, f *fixture) {
	canary := "canary-" + rand.Text()
	for _, key := range []string{"password", "token", "refresh_token", "totp", "authorization", "answers", "cookie"} {
		err := f.log.Record(t.Context(), audit.Event{
			Type: audit.LoginFailed, Outcome: audit.OutcomeFailure, OrgID: "org-a", ActorID: "user-1",
			Details: map[string]string{"factor": "password", key: canary},
		})
		if !errors.Is(err, audit.ErrInvalidEvent) {
			t.Fatalf("Record with detail %q = %v, want ErrInvalidEvent", key, err)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("the error carries the secret: %v", err)
		}
	}
	f.record(t, resultRead("org-a", "user-1", "result-1")) // the table and the log are in use

	if out := f.out.String(); strings.Contains(out, canary) {
		t.Errorf("the secret reached the log: %s", out)
	}
	rows := f.rawRows(t)
	if len(rows) != 1 {
		t.Errorf("%d rows, want only the valid event's", len(rows))
	}
	if dump := fmt.Sprintf("%v", rows); strings.Contains(dump, canary) {
		t.Errorf("the secret reached the table: %s", dump)
	}
}

func testCancelledContext(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := resultRead("org-a", "user-1", "result-1")
	e.Outcome = audit.OutcomeDenied
	if err := f.log.Record(ctx, e); err != nil {
		t.Fatalf("Record with a cancelled context: %v", err)
	}
	if events, _ := f.list(t, audit.Query{OrgID: "org-a"}); len(events) != 1 {
		t.Errorf("%d events stored, want 1", len(events))
	}
}

func testInsertFailure(t *testing.T, f *fixture) {
	f.db.Close()
	if err := f.log.Record(t.Context(), resultRead("org-a", "user-1", "result-1")); err == nil {
		t.Fatal("Record on a closed database succeeded")
	}
	if lines := f.lines(t); len(lines) != 1 || lines[0]["subject_id"] != "result-1" {
		t.Errorf("log lines %v, want the event's", lines)
	}
}

func testConcurrentRecords(t *testing.T, f *fixture) {
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- f.log.Record(context.Background(), resultRead("org-a", "user-1", fmt.Sprint("result-", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, e := range f.listAll(t, audit.Query{OrgID: "org-a", Limit: 9}) {
		if seen[e.ID] {
			t.Errorf("id %s listed twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct events, want %d", len(seen), n)
	}
}

// testPrune runs the statements docs/audit.md gives operators, so that the documentation stays true.
func testPrune(t *testing.T, f *fixture) {
	f.clock.t = time.Now().AddDate(0, 0, -401)
	f.record(t, resultRead("org-a", "user-1", "old"))
	f.clock.t = time.Now().AddDate(0, 0, -399)
	f.record(t, resultRead("org-a", "user-1", "recent"))
	prune := map[sqldb.Dialect]string{
		sqldb.Postgres: "DELETE FROM audit_events WHERE at < now() - interval '400 days'",
		sqldb.SQLite:   "DELETE FROM audit_events WHERE at < datetime('now', '-400 days')",
	}[f.db.Dialect]
	if _, err := f.db.ExecContext(t.Context(), prune); err != nil {
		t.Fatal(err)
	}
	events, _ := f.list(t, audit.Query{OrgID: "org-a"})
	if len(events) != 1 || events[0].SubjectID != "recent" {
		t.Errorf("after pruning: %+v, want only the recent event", events)
	}
}

func testEnqueue(t *testing.T, f *fixture) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.log.Run(ctx); close(done) }()
	const n = 600 // more than a batch
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := f.log.Enqueue(context.Background(), resultRead("org-a", "user-1", fmt.Sprint("result-", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if lines := len(f.lines(t)); lines != n {
		t.Errorf("%d log lines right after Enqueue, want %d", lines, n)
	}
	stop() // Run stores what is still queued before it returns
	<-done
	if got := len(f.listAll(t, audit.Query{OrgID: "org-a", Limit: 500})); got != n {
		t.Errorf("%d events stored, want %d", got, n)
	}
	if err := f.log.Enqueue(context.Background(), audit.Event{Type: "no.such.type", Outcome: audit.OutcomeSuccess}); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Errorf("an unknown type: %v", err)
	}
}
