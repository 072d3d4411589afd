package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/portaria/portaria/internal/testenv"
)

// syncBuffer is an io.Writer safe for the server's goroutines and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cli runs one command the way main does and returns its exit code and output.
func cli(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return vars[k] }, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// startServer runs `portaria serve` in-process and waits until /readyz answers 200.
func startServer(t *testing.T, vars map[string]string) (base string, stop func() int) {
	t.Helper()
	return startServerRole(t, vars, "all")
}

func startServerRole(t *testing.T, vars map[string]string, role string) (base string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--role", role}, func(k string) string { return vars[k] }, strings.NewReader(""), io.Discard, logs)
	}()
	base = "http://" + vars["PORTARIA_ADDR"]
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("server exited with %d:\n%s", code, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server not ready in time:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("server did not shut down")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

func embeddedVars(t *testing.T) map[string]string {
	return map[string]string{
		"PORTARIA_ADDR":       freeAddr(t),
		"PORTARIA_DATA_DIR":   t.TempDir(),
		"PORTARIA_LOG_FORMAT": "json",
	}
}

// endToEnd creates a client with the CLI, gets a token with a standard client from a running
// server, and checks the shutdown is clean.
func endToEnd(t *testing.T, vars map[string]string) {
	code, out, errOut := cli(t, vars, "", "clients", "create", "--name", "e2e", "--grant", "client_credentials", "--scope", "reports:read reports:write")
	if code != 0 {
		t.Fatalf("clients create: %d %s", code, errOut)
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ClientID == "" || len(created.ClientSecret) < 43 {
		t.Fatalf("clients create printed %q", out)
	}
	base, stop := startServer(t, vars)
	cfg := clientcredentials.Config{ClientID: created.ClientID, ClientSecret: created.ClientSecret, TokenURL: base + "/oauth/token", Scopes: []string{"reports:read"}}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.Extra("scope") != "reports:read" {
		t.Errorf("token %+v", tok)
	}
	// A client created while the server runs works at once (no restart, no cache to wait for).
	_, out, _ = cli(t, vars, "", "clients", "create", "--name", "late", "--grant", "client_credentials")
	json.Unmarshal([]byte(out), &created)
	cfg = clientcredentials.Config{ClientID: created.ClientID, ClientSecret: created.ClientSecret, TokenURL: base + "/oauth/token"}
	if _, err := cfg.Token(context.Background()); err != nil {
		t.Errorf("client created while serving: %v", err)
	}
	if res, err := http.Get(base + "/openapi.yaml"); err != nil || res.StatusCode != 200 {
		t.Errorf("openapi.yaml not served: %v", err)
	}
	if code, out, errOut := cli(t, vars, "", "keys", "list"); code != 0 || !strings.Contains(out, `"active"`) {
		t.Errorf("keys list: %d %s %s", code, out, errOut)
	}
	if code := stop(); code != 0 {
		t.Errorf("serve exited with %d after a graceful shutdown", code)
	}
}

func TestEndToEndOnTheEmbeddedDefault(t *testing.T) {
	endToEnd(t, embeddedVars(t))
}

func TestEndToEndOnPostgreSQLAndRedis(t *testing.T) {
	vars := embeddedVars(t)
	vars["PORTARIA_DATABASE_URL"] = testenv.PostgresURL(t)
	redisURL, prefix := testenv.RedisURL(t)
	vars["PORTARIA_REDIS_URL"] = redisURL
	vars["PORTARIA_REDIS_PREFIX"] = prefix
	endToEnd(t, vars)
}

func TestInvalidConfigurationStopsStartUpWithOneLinePerSetting(t *testing.T) {
	vars := embeddedVars(t)
	vars["PORTARIA_ACCESS_TOKEN_TTL"] = "soon"
	code, _, errOut := cli(t, vars, "", "serve")
	if code == 0 || !strings.Contains(errOut, "PORTARIA_ACCESS_TOKEN_TTL") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	vars = embeddedVars(t)
	vars["PORTARIA_SIGNING_ALG"] = "none"
	vars["PORTARIA_CLOCK_SKEW"] = "5m"
	code, _, errOut = cli(t, vars, "", "serve")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 1 {
		t.Errorf("two bad settings must give two lines: exit %d, stderr %q", code, errOut)
	}
}

func TestClientsCommands(t *testing.T) {
	vars := embeddedVars(t)
	code, out, _ := cli(t, vars, "", "clients", "create", "--name", "svc", "--grant", "client_credentials", "--access-ttl", "10m")
	if code != 0 {
		t.Fatal(out)
	}
	var c struct {
		ClientID  string `json:"client_id"`
		AccessTTL string `json:"access_ttl"`
	}
	json.Unmarshal([]byte(out), &c)
	if _, out, _ := cli(t, vars, "", "clients", "list"); !strings.Contains(out, c.ClientID) || strings.Contains(out, "secret") {
		t.Errorf("clients list must show the client and no secret material: %s", out)
	}
	code, out, _ = cli(t, vars, "", "clients", "rotate-secret", c.ClientID)
	if code != 0 || !strings.Contains(out, "client_secret") {
		t.Errorf("rotate-secret: %d %s", code, out)
	}
	if code, _, _ := cli(t, vars, "", "clients", "delete", c.ClientID); code != 0 {
		t.Errorf("delete: %d", code)
	}
	if code, _, errOut := cli(t, vars, "", "clients", "delete", c.ClientID); code == 0 || errOut == "" {
		t.Errorf("deleting twice must fail with a message: %d %q", code, errOut)
	}
	for _, args := range [][]string{
		{"clients", "create", "--name", "x", "--grant", "implicit"},
		{"clients", "create", "--grant", "client_credentials"},
		{"clients", "create", "--name", "x", "--grant", "client_credentials", "--public"},
		{"clients", "frobnicate"},
	} {
		if code, out, errOut := cli(t, vars, "", args...); code == 0 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
		}
	}
}

func TestKeysCommands(t *testing.T) {
	vars := embeddedVars(t)
	code, out, errOut := cli(t, vars, "", "keys", "rotate")
	if code != 0 {
		t.Fatalf("keys rotate: %s", errOut)
	}
	code, out, _ = cli(t, vars, "", "keys", "list")
	if code != 0 || !strings.Contains(out, "pending") {
		t.Errorf("keys list after rotate: %s", out)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	if code, out, _ := cli(t, nil, "", "version"); code != 0 || !strings.Contains(out, "version") {
		t.Errorf("version: %d %s", code, out)
	}
	if code, _, errOut := cli(t, nil, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown: %d %s", code, errOut)
	}
}
