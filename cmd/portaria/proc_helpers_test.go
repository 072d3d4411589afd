package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
)

// Helpers of the tests that run `portaria serve` as real processes (multi_test.go,
// fault_test.go): several instances at once, killed with SIGKILL, stopped with SIGTERM, as an
// orchestrator would. In-process servers (startServer) cannot be killed that way.

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// portariaBinary builds the binary once per test run (without -race: the processes under test
// run as they do in production) and returns its path.
func portariaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "portaria-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "portaria")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one `portaria serve` process.
type proc struct {
	t    *testing.T
	vars map[string]string
	args []string
	base string
	logs string // path of its stderr

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has ended
	code   int
}

// startProc starts `portaria serve args…` with vars as its whole PORTARIA_* environment and
// waits until /readyz answers 200.
func startProc(t *testing.T, vars map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, vars: vars, args: append([]string{"serve"}, args...),
		base: "http://" + vars["PORTARIA_ADDR"], logs: filepath.Join(t.TempDir(), "serve.log")}
	p.launch()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
	})
	p.waitReady(30 * time.Second)
	return p
}

// launch starts the process; its environment is vars alone (plus PATH and HOME), so that no
// setting of the test's own environment leaks in.
func (p *proc) launch() {
	p.t.Helper()
	cmd := exec.Command(portariaBinary(p.t), p.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range p.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs, err := os.OpenFile(p.logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = testenv.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start portaria serve: %v", err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.code = cmd.ProcessState.ExitCode()
		p.mu.Unlock()
		close(exited)
	}()
}

// waitReady polls /readyz until it answers 200, failing with the process's log if it exits or
// the limit passes.
func (p *proc) waitReady(limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if status, _ := get(p.base + "/readyz"); status == 200 {
			return
		}
		select {
		case <-p.done():
			p.t.Fatalf("portaria serve exited with %d before it was ready:\n%s", p.exitCode(), p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("portaria serve not ready after %v:\n%s", limit, p.Logs())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *proc) done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

func (p *proc) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// wait waits up to limit for the process to end and returns its exit code, or -1.
func (p *proc) wait(limit time.Duration) int {
	select {
	case <-p.done():
		return p.exitCode()
	case <-time.After(limit):
		return -1
	}
}

// kill ends the process with SIGKILL, as a crash or `kill -9` would.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.wait(10 * time.Second)
}

// restart starts the process again with the same settings (after kill) and waits until ready.
func (p *proc) restart() {
	p.t.Helper()
	p.launch()
	p.waitReady(30 * time.Second)
}

// Logs returns the end of what the process wrote (for failure messages).
func (p *proc) Logs() string {
	data, _ := os.ReadFile(p.logs)
	if len(data) > 6000 {
		data = data[len(data)-6000:]
	}
	return string(data)
}

// errorLines returns the lines of the process's whole log at level ERROR (JSON logs).
func (p *proc) errorLines() []string {
	data, _ := os.ReadFile(p.logs)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return out
}

// newMasterKey returns a PORTARIA_MASTER_KEY: instances that share a database must share it.
func newMasterKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// deploymentVars returns the settings every instance of a deployment shares (a fresh PostgreSQL
// schema, a fresh Redis prefix, one master key, extra) and the first instance's own. The issuer
// is the first instance's URL for all of them, as behind a load balancer: any instance verifies
// any instance's tokens.
func deploymentVars(t *testing.T, extra map[string]string) (shared, first map[string]string) {
	t.Helper()
	redisURL, prefix := testenv.RedisURL(t)
	shared = map[string]string{
		"PORTARIA_DATABASE_URL": testenv.PostgresURL(t),
		"PORTARIA_REDIS_URL":    redisURL,
		"PORTARIA_REDIS_PREFIX": prefix,
		"PORTARIA_MASTER_KEY":   newMasterKey(t),
	}
	for k, v := range extra {
		shared[k] = v
	}
	first = instanceVars(t, shared)
	shared["PORTARIA_ISSUER"] = "http://" + first["PORTARIA_ADDR"]
	first["PORTARIA_ISSUER"] = shared["PORTARIA_ISSUER"]
	return shared, first
}

// instanceVars returns the settings of one more instance of a deployment: shared holds what
// every instance shares (database, Redis, master key, issuer), and each instance gets its own
// address and data directory.
func instanceVars(t *testing.T, shared map[string]string) map[string]string {
	vars := map[string]string{
		"PORTARIA_ADDR":       freeAddr(t),
		"PORTARIA_DATA_DIR":   t.TempDir(),
		"PORTARIA_LOG_FORMAT": "json",
	}
	for k, v := range shared {
		vars[k] = v
	}
	return vars
}

// httpClient is a keep-alive client for load: enough idle connections per host that every
// worker keeps its own.
func httpClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        4 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// answer is one HTTP answer as the tests look at it.
type answer struct {
	status     int
	body       map[string]any
	retryAfter string
	took       time.Duration
	err        error // transport error: no answer at all
}

func (a answer) str(field string) string {
	s, _ := a.body[field].(string)
	return s
}

// postToken posts form to base's token endpoint with client authentication.
func postToken(c *http.Client, base, clientID, secret string, form url.Values) answer {
	return postForm(c, base+"/oauth/token", clientID, secret, form)
}

func postForm(c *http.Client, target, clientID, secret string, form url.Values) answer {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	began := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(began)}
	}
	defer res.Body.Close()
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
	data, err := io.ReadAll(res.Body)
	a.took = time.Since(began)
	if err != nil {
		a.err = fmt.Errorf("read answer: %w", err)
		return a
	}
	if json.Unmarshal(data, &a.body) != nil {
		a.body = map[string]any{"text": strings.TrimSpace(string(data))}
	}
	return a
}

// get returns the status and body of a GET, or 0 when nothing answered.
func get(target string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// client is a registered OAuth client of a test.
type client struct{ id, secret string }

// createClient registers a client with the CLI (in-process, against the shared database).
func createClient(t *testing.T, vars map[string]string, name string, grants ...string) client {
	t.Helper()
	args := []string{"clients", "create", "--name", name, "--scope", "api"}
	for _, g := range grants {
		args = append(args, "--grant", g)
	}
	code, out, errOut := cli(t, vars, "", args...)
	if code != 0 {
		t.Fatalf("clients create: %s", errOut)
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID == "" {
		t.Fatalf("clients create printed %q", out)
	}
	return client{c.ID, c.Secret}
}

// createUser creates an active user (a platform administrator: the only kind the CLI creates).
func createUser(t *testing.T, vars map[string]string, email, password string) {
	t.Helper()
	if code, _, errOut := cli(t, vars, password+"\n", "admin", "create", "--email", email, "--name", "U", "--password-stdin"); code != 0 {
		t.Fatalf("admin create %s: %s", email, errOut)
	}
}

// login runs the password grant and returns its answer.
func login(c *http.Client, base string, app client, email, password string) answer {
	return postToken(c, base, app.id, app.secret, url.Values{
		"grant_type": {"password"}, "username": {email}, "password": {password}, "scope": {"api"},
	})
}

// refresh runs the refresh grant.
func refresh(c *http.Client, base string, app client, rt string) answer {
	return postToken(c, base, app.id, app.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// revoke revokes a token at /oauth/revoke.
func revoke(c *http.Client, base string, app client, token string) answer {
	return postForm(c, base+"/oauth/revoke", app.id, app.secret, url.Values{"token": {token}})
}
