package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/portaria/portaria/identity/mail"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portaria/portaria/assessment"
	assessmentsql "github.com/portaria/portaria/assessment/sqlstore"
	"github.com/portaria/portaria/config"
	"github.com/portaria/portaria/identity"
	identitysql "github.com/portaria/portaria/identity/sqlstore"
	"github.com/portaria/portaria/internal/audit"
	"github.com/portaria/portaria/internal/sqldb"
	"github.com/portaria/portaria/keys"
	keysql "github.com/portaria/portaria/keys/sqlstore"
	"github.com/portaria/portaria/server"
	"github.com/portaria/portaria/tokens"
	"github.com/portaria/portaria/tokens/redisstore"
	tokensql "github.com/portaria/portaria/tokens/sqlstore"
)

// Compile-time checks that the packages fit the small interfaces their consumers declare.
var (
	_ tokens.Signer              = (*keys.Ring)(nil)
	_ server.KeySet              = (*keys.Ring)(nil)
	_ server.ClientAuthenticator = (*identity.Service)(nil)
	_ tokens.Store               = (*tokensql.Store)(nil)
	_ tokens.Store               = (*redisstore.Store)(nil)
	_ server.AccountManager      = (*identity.Service)(nil)
	_ server.Throttler           = (*tokens.Throttle)(nil)
	_ server.Mailer              = queuedMail{}
	_ assessment.Access          = (*identity.Service)(nil)
	_ server.AssessmentService   = (*assessment.Service)(nil)
	_ server.AuditLog            = (*audit.Log)(nil)
)

// app is the opened stack: the one place that chooses backends and wires packages together.
type app struct {
	cfg        config.Config
	log        *slog.Logger
	db         *sqldb.DB
	redis      redis.UniversalClient // nil when token state lives in the SQL database
	tokenStore tokens.Store
	sqlTokens  *tokensql.Store // set when token state lives in the SQL database
	ring       *keys.Ring
	identity   *identity.Service
	issuer     *tokens.Issuer
	revlog     *tokensql.RevocationLog
	sessionIdx *tokensql.SessionIndex
	sessions   *tokens.Sessions
	oneTime    *tokens.OneTimeTokens
	throttle   *tokens.Throttle
	master     []byte
	metrics    *server.Metrics
	assessment *assessment.Service
	audit      *audit.Log
}

// migrationSets lists every domain's migrations, in dependency order.
func migrationSets() []sqldb.MigrationSet {
	return []sqldb.MigrationSet{identitysql.Migrations, keysql.Migrations, tokensql.Migrations,
		assessmentsql.Migrations, audit.Migrations}
}

func openApp(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (*app, error) {
	a := &app{cfg: cfg, log: log}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	db, err := sqldb.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a.db = db
	if migrate {
		if err := db.Migrate(ctx, migrationSets()...); err != nil {
			return nil, err
		}
	}
	master, err := keys.LoadMasterKey(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	sealer, err := keys.NewSealer(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	// Token state: Redis when configured, else the same SQL database (the embedded default).
	switch {
	case cfg.RedisURL != "":
		client, err := redisstore.NewClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("PORTARIA_REDIS_URL: %w", err)
		}
		a.redis = client
		a.tokenStore = redisstore.New(client, cfg.RedisPrefix)
	default:
		a.sqlTokens = tokensql.New(db, time.Now)
		a.tokenStore = a.sqlTokens
	}

	a.metrics = server.NewMetrics()
	a.ring, err = keys.NewRing(keysql.New(db), sealer, keys.Options{
		OnActivate: func(kid string) {
			a.metrics.KeyRotation()
			log.Info("signing key active", "kid", kid)
		},
		Alg:        keys.Alg(cfg.SigningAlg),
		Rotation:   cfg.KeyRotation,
		JWKSMaxAge: cfg.JWKSMaxAge,
		// A retired key stays published until every token it signed has expired, and then at
		// least 15 minutes more (SECURITY.md F16), or a JWKS max-age and the skew if longer.
		Retain: config.MaxAccessTokenTTL + max(15*time.Minute, cfg.ClockSkew+cfg.JWKSMaxAge),
		Now:    time.Now,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	a.master = master
	a.identity = identity.NewService(identitysql.New(db), identity.Options{
		Pepper: keys.DeriveKey(master, "portaria client-secret pepper v1"),
		Sealer: sealer,
		Now:    time.Now,
		Logger: log,
	})
	// Assessment asks identity about users and groups through its own small interface.
	a.assessment = assessment.NewService(assessmentsql.New(db), a.identity, assessment.Options{Now: time.Now, Sealer: sealer})
	a.audit = audit.New(db, log, time.Now)
	a.issuer = tokens.NewIssuer(a.ring, cfg.Issuer, cfg.Audience, time.Now)
	// The revocation feed is durable SQL whatever holds the token state: it must survive a
	// token-store restart and be shared by every instance.
	a.revlog = tokensql.NewRevocationLog(db, time.Now)
	a.sessionIdx = tokensql.NewSessionIndex(db, time.Now)
	a.sessions = tokens.NewSessions(a.tokenStore, tokens.SessionOptions{
		// Counted, and recorded in the audit log, whose line for it is a warning.
		OnReuse:      server.OnRefreshReuse(a.audit, a.metrics),
		OnReplay:     server.OnRefreshReplay(a.audit, a.metrics),
		Index:        a.sessionIdx,
		Grace:        cfg.RefreshGrace,
		IdleTimeout:  cfg.RefreshIdleTTL,
		SuccessorKey: keys.DeriveKey(master, "portaria refresh successor v1"),
		Log:          a.revlog,
		MaxAccessTTL: config.MaxAccessTokenTTL + cfg.ClockSkew,
		MaxLifetime:  max(cfg.RefreshTokenTTL, identity.MaxRefreshTTL),
		Now:          time.Now,
	})
	a.oneTime = tokens.NewOneTimeTokens(a.tokenStore, time.Now)
	a.throttle = tokens.NewThrottle(a.tokenStore, tokens.ThrottleOptions{Now: time.Now})
	ok = true
	return a, nil
}

func (a *app) tokenStoreName() string {
	if a.redis != nil {
		if strings.Contains(a.cfg.RedisURL, ",") {
			return "redis-cluster"
		}
		return "redis"
	}
	return string(a.db.Dialect)
}

func (a *app) checks() []server.Check {
	return []server.Check{
		{Name: "database", Check: func(ctx context.Context) error { return a.db.PingContext(ctx) }},
		{Name: "token_store", Check: a.tokenStore.Ping},
	}
}

// Close releases the connections; it is safe on a partly opened app.
func (a *app) Close() {
	if a.redis != nil {
		a.redis.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
}

// newVerifier returns the offline verifier of access tokens. The resource API alone (--role api)
// fetches the JWKS from PORTARIA_JWKS_URL like any third-party resource server; a process that
// also holds the key ring reads the same JWKS document in memory, without a network round trip
// to itself (the issuer URL may not even be reachable from inside).
func (a *app) newVerifier(ctx context.Context, role string) (*tokens.Verifier, error) {
	opts := tokens.VerifierOptions{
		JWKSURL:  a.cfg.JWKSURL,
		Issuer:   a.cfg.Issuer,
		Audience: a.cfg.Audience,
		Skew:     a.cfg.ClockSkew,
	}
	if role != server.RoleAPI {
		opts.HTTPClient = &http.Client{Transport: ringTransport{ring: a.ring}, Timeout: 2 * time.Second}
	}
	return tokens.NewVerifier(ctx, opts)
}

// ringTransport answers every request with the ring's JWKS, as GET /.well-known/jwks.json would.
type ringTransport struct{ ring *keys.Ring }

func (t ringTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := t.ring.JWKS(req.Context())
	if err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"max-age=10"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// newMailer returns the e-mail queue: SMTP when PORTARIA_SMTP_URL is set, else .eml files in the
// data dir's outbox (the embedded default).
func (a *app) newMailer() (*mail.Queue, error) {
	var sender mail.Sender
	if a.cfg.SMTPURL != "" {
		s, err := mail.NewSMTPSender(a.cfg.SMTPURL, a.cfg.MailFrom)
		if err != nil {
			return nil, fmt.Errorf("PORTARIA_SMTP_URL: %w", err)
		}
		sender = s
	} else {
		o, err := mail.NewOutbox(filepath.Join(a.cfg.DataDir, "outbox"))
		if err != nil {
			return nil, err
		}
		sender = o
	}
	return mail.NewQueue(sender, mail.QueueOptions{Logger: a.log}), nil
}

// queuedMail renders account e-mails and queues them.
type queuedMail struct{ q *mail.Queue }

func (m queuedMail) Deliver(kind mail.Kind, lang string, data mail.Data) error {
	msg, err := mail.Render(kind, lang, data)
	if err != nil {
		return err
	}
	return m.q.Enqueue(msg)
}
