package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaria/portaria/assessment"
	assessmentsql "github.com/portaria/portaria/assessment/sqlstore"
	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/mail"
	identitysql "github.com/portaria/portaria/identity/sqlstore"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/internal/testenv"
	"github.com/portaria/portaria/keys"
	keysql "github.com/portaria/portaria/keys/sqlstore"
	"github.com/portaria/portaria/server"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
	tokensql "github.com/portaria/portaria/tokens/sqlstore"
)

// fixture is a running token server and resource API on a fresh SQLite database, with token
// state in SQLite or, with redisTokens, in Redis.
type fixture struct {
	metrics  *server.Metrics
	outbox   string // the e-mails the server sent, as .eml files
	srv      *httptest.Server
	ids      *identity.Service
	ring     *keys.Ring
	sessions *tokens.Sessions
	revoked  *tokens.RevocationCache
	issuer   string
	audience string
	clock    *clock
	assess   *assessment.Service
	audit    *audit.Log
}

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheapPasswords keeps argon2id fast in tests; production uses the OWASP defaults.
var cheapPasswords = identity.PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type fixtureOption func(*fixtureConfig)

type fixtureConfig struct {
	tokenStore      func(t testing.TB, db *sqldb.DB) tokens.Store
	grace           time.Duration
	accountFailures int
	logs            *logBuffer
	auditLog        func(server.AuditLog) server.AuditLog
	auditClients    bool
	trusted         []netip.Prefix
	passwords       *identity.PasswordParams
}

// logBuffer collects what the server logs, as JSON lines; safe for the handlers' goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// withAuditLog puts wrap(log) between the server and the audit log, to fail it or watch it.
func withAuditLog(wrap func(server.AuditLog) server.AuditLog) fixtureOption {
	return func(c *fixtureConfig) { c.auditLog = wrap }
}

// withLogs sends every log line of the server, the identity service and the audit log to l
// (by default they are discarded).
func withLogs(l *logBuffer) fixtureOption {
	return func(c *fixtureConfig) { c.logs = l }
}

// withClientTokenAudit stores client_credentials tokens as audit events
// (PORTARIA_AUDIT_CLIENT_TOKENS).
func withClientTokenAudit() fixtureOption {
	return func(c *fixtureConfig) { c.auditClients = true }
}

// withTrustedProxies believes X-Forwarded-For from these networks (PORTARIA_TRUSTED_PROXIES).
func withTrustedProxies(cidrs ...string) fixtureOption {
	return func(c *fixtureConfig) {
		for _, s := range cidrs {
			c.trusted = append(c.trusted, netip.MustParsePrefix(s))
		}
	}
}

// withPasswordParams hashes passwords with p instead of cheapPasswords.
func withPasswordParams(p identity.PasswordParams) fixtureOption {
	return func(c *fixtureConfig) { c.passwords = &p }
}

// withAccountFailures sets how many failures lock an account.
func withAccountFailures(n int) fixtureOption {
	return func(c *fixtureConfig) { c.accountFailures = n }
}

// withRedisTokens keeps token state in Redis (PORTARIA_TEST_REDIS_URL).
func withRedisTokens() fixtureOption {
	return func(c *fixtureConfig) {
		c.tokenStore = func(t testing.TB, _ *sqldb.DB) tokens.Store {
			u, prefix := testenv.RedisURL(t)
			client, err := redisstore.NewClient(u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			return redisstore.New(client, prefix)
		}
	}
}

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	cfg := fixtureConfig{grace: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, testenv.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, identitysql.Migrations, keysql.Migrations, tokensql.Migrations,
		assessmentsql.Migrations, audit.Migrations); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.logs != nil {
		logger = slog.New(slog.NewJSONHandler(cfg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	master := make([]byte, 32)
	sealer, err := keys.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(keysql.New(db), sealer, keys.Options{Alg: keys.ES256, Retain: 25 * time.Hour, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	passwords := cheapPasswords
	if cfg.passwords != nil {
		passwords = *cfg.passwords
	}
	ids := identity.NewService(identitysql.New(db), identity.Options{
		Pepper: keys.DeriveKey(master, "test pepper"), Sealer: sealer, Now: clk.Now, Password: passwords, Logger: logger,
	})
	assess := assessment.NewService(assessmentsql.New(db), ids, assessment.Options{Now: clk.Now, Sealer: sealer})
	auditLog := audit.New(db, logger, clk.Now)
	auditCtx, stopAudit := context.WithCancel(ctx)
	auditDone := make(chan struct{})
	go func() { auditLog.Run(auditCtx); close(auditDone) }()
	t.Cleanup(func() { stopAudit(); <-auditDone })
	var serverAudit server.AuditLog = auditLog
	if cfg.auditLog != nil {
		serverAudit = cfg.auditLog(auditLog)
	}
	var store tokens.Store = tokensql.New(db, clk.Now)
	if cfg.tokenStore != nil {
		store = cfg.tokenStore(t, db)
	}
	revlog := tokensql.NewRevocationLog(db, clk.Now)
	metrics := server.NewMetrics()
	sessions := tokens.NewSessions(store, tokens.SessionOptions{
		Grace: cfg.grace, SuccessorKey: keys.DeriveKey(master, "successor"), Log: revlog, Now: clk.Now,
		Index:    tokensql.NewSessionIndex(db, clk.Now),
		OnReuse:  server.OnRefreshReuse(auditLog, metrics),
		OnReplay: server.OnRefreshReplay(auditLog, metrics),
	})
	revoked := tokens.NewRevocationCache(revlog, time.Second, clk.Now)

	outbox := filepath.Join(t.TempDir(), "outbox")
	sender, err := mail.NewOutbox(outbox)
	if err != nil {
		t.Fatal(err)
	}
	queue := mail.NewQueue(sender, mail.QueueOptions{})
	mailCtx, stopMail := context.WithCancel(ctx)
	go queue.Run(mailCtx)
	t.Cleanup(stopMail)

	f := &fixture{metrics: metrics, ids: ids, ring: ring, sessions: sessions, revoked: revoked, clock: clk, outbox: outbox,
		assess: assess, audit: auditLog}
	// The issuer is the test server's own URL, known only once it listens.
	var h atomic.Pointer[http.Handler]
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := h.Load(); p != nil {
			(*p).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(f.srv.Close)
	f.issuer = f.srv.URL
	f.audience = f.srv.URL + "/api"
	verifier, err := tokens.NewVerifier(ctx, tokens.VerifierOptions{
		JWKSURL: f.issuer + "/.well-known/jwks.json", Issuer: f.issuer, Audience: f.audience, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler := server.NewServer(server.Deps{
		Logger:            logger,
		Role:              server.RoleAll,
		Issuer:            f.issuer,
		Clients:           ids,
		Users:             ids,
		Tokens:            tokens.NewIssuer(ring, f.issuer, f.audience, clk.Now),
		Sessions:          sessions,
		OneTime:           tokens.NewOneTimeTokens(store, clk.Now),
		Verifier:          verifier,
		Revocations:       revoked,
		RevocationFeed:    revlog,
		Keys:              ring,
		DefaultAccessTTL:  15 * time.Minute,
		DefaultRefreshTTL: 720 * time.Hour,
		MaxAccessTTL:      24 * time.Hour,
		SigningAlg:        "ES256",
		Checks:            []server.Check{{Name: "database", Check: func(ctx context.Context) error { return db.PingContext(ctx) }}},
		Now:               clk.Now,
		MFA:               ids,
		Accounts:          ids,
		Directory:         ids,
		Assessment:        assess,
		Audit:             serverAudit,
		RateLimit:         tokens.NewRateLimit(store, clk.Now),
		Throttle:          tokens.NewThrottle(store, tokens.ThrottleOptions{Now: clk.Now, AccountFailures: cfg.accountFailures}),
		Mail:              testMailer{queue},
		DecoyKey:          keys.DeriveKey(master, "decoy"),
		Signup:            true,
		Metrics:           f.metrics,
		AuditClientTokens: cfg.auditClients,
		TrustedProxies:    cfg.trusted,
	})
	h.Store(&handler)
	return f
}

// testMailer renders and queues e-mails into the fixture's outbox, as the server's does.
type testMailer struct{ q *mail.Queue }

func (m testMailer) Deliver(kind mail.Kind, lang string, data mail.Data) error {
	msg, err := mail.Render(kind, lang, data)
	if err != nil {
		return err
	}
	return m.q.Enqueue(msg)
}

// mails waits for at least n e-mails in the outbox and returns them, oldest first.
func (f *fixture) mails(t *testing.T, n int) []mail.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms, err := mail.ReadOutbox(f.outbox)
		if err == nil && len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d e-mails in the outbox, want %d (err %v)", len(ms), n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) client(t testing.TB, nc identity.NewClient) (identity.Client, string) {
	t.Helper()
	c, secret, err := f.ids.CreateClient(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

// post sends a form to path with optional Basic credentials.
func (f *fixture) post(t *testing.T, path, body, user, pass string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func decode(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return m
}

// jwtParts decodes a compact JWT's header and claims without verifying it.
func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}
