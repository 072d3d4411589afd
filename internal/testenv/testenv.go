// Package testenv gives tests the real services they run against. A service named by an
// environment variable is used; without it the test skips, except in CI (CI=true), where a
// missing or unreachable service fails the test so that CI never passes by skipping.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InCI reports whether the tests run in CI, where every service must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

func require(t testing.TB, variable string) string {
	t.Helper()
	v := os.Getenv(variable)
	if v == "" {
		if InCI() {
			t.Fatalf("%s is not set: CI requires this service", variable)
		}
		t.Skipf("set %s to run this test against a real service", variable)
	}
	return v
}

// SQLiteURL returns the path of a fresh SQLite file in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "portaria.db")
}

var schemaSeq atomic.Int64

// PostgresURL returns a URL to a fresh, empty schema of the database named by
// PORTARIA_TEST_DATABASE_URL; the schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := require(t, "PORTARIA_TEST_DATABASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, "PORTARIA_TEST_DATABASE_URL", err)
	}
	defer conn.Close(context.Background())
	name := schemaName(t)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("PORTARIA_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// unreachable fails the test in CI and skips it elsewhere, so that `make test` passes on a
// machine without the service while CI can never pass by skipping.
func unreachable(t testing.TB, variable string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s: service unreachable: %v", variable, err)
	}
	t.Skipf("%s: service unreachable (%v); skipping outside CI", variable, err)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

func schemaName(t testing.TB) string {
	n := strings.ToLower(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(n) > 30 {
		n = n[len(n)-30:]
	}
	return fmt.Sprintf("t%d_%d_%s", os.Getpid(), schemaSeq.Add(1), n)
}

// RedisURL returns PORTARIA_TEST_REDIS_URL, and a key prefix unique to the test so that tests
// sharing one Redis never see each other's keys.
func RedisURL(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	u := require(t, "PORTARIA_TEST_REDIS_URL")
	if err := pingRedis(u); err != nil {
		unreachable(t, "PORTARIA_TEST_REDIS_URL", err)
	}
	return u, fmt.Sprintf("test:%d:%d:%s:", os.Getpid(), schemaSeq.Add(1), schemaName(t))
}

// pingRedis checks that the Redis server answers, speaking just enough RESP to send PING.
func pingRedis(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse URL: %w", err)
	}
	if u.Scheme == "rediss" {
		return nil // TLS: let the test's own client report problems
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "+PONG") && !strings.HasPrefix(string(buf[:n]), "-NOAUTH") {
		return fmt.Errorf("unexpected answer %q", buf[:n])
	}
	return nil
}
