package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/portaria/portaria"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/portaria/portaria/config"
	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/server"
	"github.com/portaria/portaria/tokens"
)

func cmdServe(ctx context.Context, e env, args []string) error {
	role, migrate := server.RoleAll, true
	cfg, rest, err := loadConfig(e, "serve", args, func(fs *flag.FlagSet) {
		fs.StringVar(&role, "role", server.RoleAll, "all, token or api")
		fs.BoolVar(&migrate, "migrate", true, "apply pending database migrations at start-up")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected argument %q", rest[0])
	}
	switch role {
	case server.RoleAll, server.RoleToken, server.RoleAPI:
	default:
		return fmt.Errorf("invalid configuration: --role: %q is not all, token or api", role)
	}
	logOut := newBufferedLog(e.stderr, 100*time.Millisecond)
	defer logOut.Close()
	log := newLoggerTo(cfg, logOut, e.stderr)
	a, err := openApp(ctx, cfg, log, migrate)
	if err != nil {
		return err
	}
	defer a.Close()
	tuneGC(ctx, e.getenv, a.identity.HashMemory, log)

	// Background work stops before the connections close (deferred above, so it runs after).
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBackground()
	if role != server.RoleAPI {
		// The first step bootstraps a key on a new database: the server must not start without one.
		if err := a.ring.Maintain(ctx); err != nil {
			return fmt.Errorf("signing keys: %w", err)
		}
		wg.Go(func() { a.ring.Run(bg) })
	}
	wg.Go(func() { sweepLoop(bg, a, time.Minute) })
	// Security events are stored in batches; Run stores what is queued before it returns.
	wg.Go(func() { a.audit.Run(bg) })

	verifier, err := a.newVerifier(ctx, role)
	if err != nil {
		return fmt.Errorf("token verifier: %w", err)
	}
	revoked := tokens.NewRevocationCache(a.revlog, 2*time.Second, time.Now)
	if err := revoked.Refresh(ctx); err != nil {
		log.Warn("revocation feed not loaded yet", "err", err)
	}
	wg.Go(func() { revoked.Run(bg) })
	checks := append(a.checks(), server.Check{Name: "revocation_feed", Check: func(context.Context) error {
		if !revoked.Loaded() {
			return errors.New("not loaded")
		}
		return nil
	}}, server.Check{Name: "verification_keys", Check: func(context.Context) error {
		if !verifier.Ready() {
			return errors.New("no verification key loaded")
		}
		return nil
	}})

	mailer, err := a.newMailer()
	if err != nil {
		return err
	}
	wg.Go(func() { mailer.Run(bg) })
	// On the way out, what is queued gets a few seconds to go.
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		mailer.Close(ctx)
	}()
	trusted, err := cfg.TrustedPrefixes()
	if err != nil {
		return err
	}

	draining := new(atomic.Bool)
	handler := server.NewServer(server.Deps{
		Logger:            log,
		Role:              role,
		Issuer:            cfg.Issuer,
		Clients:           a.identity,
		Users:             a.identity,
		Tokens:            a.issuer,
		Sessions:          a.sessions,
		OneTime:           a.oneTime,
		Verifier:          verifier,
		Revocations:       revoked,
		RevocationFeed:    a.revlog,
		Keys:              a.ring,
		DefaultAccessTTL:  cfg.AccessTokenTTL,
		DefaultRefreshTTL: cfg.RefreshTokenTTL,
		MaxAccessTTL:      config.MaxAccessTokenTTL,
		SigningAlg:        cfg.SigningAlg,
		Checks:            checks,
		OpenAPI:           portaria.OpenAPI,
		Metrics:           a.metrics,
		MFA:               a.identity,
		Throttle:          a.throttle,
		RateLimit:         tokens.NewRateLimit(a.tokenStore, time.Now),
		Accounts:          a.identity,
		Directory:         a.identity,
		Assessment:        a.assessment,
		Audit:             a.audit,
		Mail:              queuedMail{q: mailer},
		CookieSecure:      *cfg.CookieSecure,
		CORSOrigins:       cfg.CORSOrigins,
		Signup:            cfg.Signup,
		DecoyKey:          keys.DeriveKey(a.master, "portaria mfa-info decoy v1"),
		TrustedProxies:    trusted,
		AuditClientTokens: cfg.ClientAudit,
		Draining:          draining,
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           closeWhenDraining(handler, draining),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "role", role, "issuer", cfg.Issuer,
		"database", string(a.db.Dialect), "token_store", a.tokenStoreName())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful shutdown: readiness fails first; the instance keeps serving for the delay, so
	// that load balancers take it out before its connections close; then in-flight requests
	// finish.
	draining.Store(true)
	if cfg.ShutdownDelay > 0 {
		log.Info("draining", "delay", cfg.ShutdownDelay)
		if err := drainFor(cfg.ShutdownDelay, served); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// drainFor waits for delay while the server keeps serving. A second SIGINT or SIGTERM ends the
// wait (an operator who means "now"), and so does the server failing, whose error it returns.
func drainFor(delay time.Duration, served <-chan error) error {
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-again:
	case err := <-served:
		return err
	}
	return nil
}

// closeWhenDraining answers with "Connection: close" once the shutdown has begun. A keep-alive
// connection stays with this instance whatever the load balancer has learnt since (kube-proxy
// and other connection-level balancers choose an instance per connection only), and Shutdown
// closes it when idle, racing a request the client may be sending on it: closing it after each
// answer makes the client's next request open a connection, which goes to an instance in service.
func closeWhenDraining(next http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// sweepLoop deletes expired token state from the SQL database (Redis expires keys itself),
// expired entries of the revocation feed, and results past PORTARIA_RESULT_RETENTION.
func sweepLoop(ctx context.Context, a *app, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.sqlTokens != nil {
				if _, err := a.sqlTokens.Sweep(ctx); err != nil {
					a.log.Warn("sweep expired token state", "err", err)
				}
			}
			if _, err := a.revlog.Sweep(ctx); err != nil {
				a.log.Warn("sweep expired revocations", "err", err)
			}
			if _, err := a.sessionIdx.Sweep(ctx); err != nil {
				a.log.Warn("sweep expired sessions", "err", err)
			}
			// Every instance runs it; a result deleted by one is not found by the others.
			switch n, err := a.assessment.PurgeExpiredResults(ctx, a.cfg.ResultRetention); {
			case err != nil:
				a.log.Warn("purge results past their retention", "err", err, "purged", n)
			case n > 0:
				a.log.Info("results past their retention purged", "purged", n, "retention", a.cfg.ResultRetention.String())
			}
		}
	}
}

func cmdMigrate(ctx context.Context, e env, args []string) error {
	cfg, _, err := loadConfig(e, "migrate", args, nil)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(cfg, e.stderr), true)
	if err != nil {
		return err
	}
	defer a.Close()
	return printJSON(e.stdout, map[string]string{"status": "migrated", "database": string(a.db.Dialect)})
}
