package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout = 20 * time.Second // a spawned server answers /readyz within this, or the run fails
	killAfter    = 10 * time.Second // SIGTERM, then SIGKILL this much later
	tailBytes    = 8 << 10          // how much of a child's output is kept for a failure message
)

// process is a child server. Its output goes to a tail buffer rather than the terminal: a
// server's access logs cost the measurement nothing but would bury the result, and the tail is
// what explains a failure.
type process struct {
	name   string
	cmd    *exec.Cmd
	tail   *tailBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed once the process has exited
	// logFile, if set, is where the process's standard error went instead of the tail.
	logFile string
	err     error // its exit status, set before done is closed
}

// startProcess starts path with args and env. Cancelling ctx, or stop, sends it SIGTERM and,
// killAfter later, SIGKILL. stdout, if not nil, receives its standard output (the tail otherwise);
// logFile, if not nil, receives its standard error directly, with no pipe for this process to
// drain: a server's access log must not cost the load generator CPU it needs to send requests.
func startProcess(ctx context.Context, name, path string, args, env []string, stdout io.Writer, logFile *os.File) (*process, error) {
	ctx, cancel := context.WithCancel(ctx)
	p := &process{name: name, tail: &tailBuffer{max: tailBytes}, cancel: cancel, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, path, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.tail, p.tail
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	if logFile != nil {
		p.cmd.Stderr = logFile
		p.logFile = logFile.Name()
	}
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = killAfter
	if err := p.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop terminates the process and waits for it to exit.
func (p *process) stop() {
	p.cancel()
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure wraps err with the end of the process's output.
func (p *process) failure(err error) error {
	out := strings.TrimSpace(p.tail.String())
	if p.logFile != "" {
		if b, err := os.ReadFile(p.logFile); err == nil {
			out = strings.TrimSpace(out + "\n" + string(b[max(0, len(b)-tailBytes):]))
		}
	}
	if out == "" {
		return err
	}
	return fmt.Errorf("%w\nlast output of %s:\n%s", err, p.name, out)
}

// childEnv is the environment of a spawned server: ours without any PORTARIA_* setting (the
// run measures the embedded default, whatever the shell has configured) or GOMAXPROCS, plus set.
func childEnv(set ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORTARIA_") || strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, set...)
}

// spawned is a server loadgen started, and what to drive it with.
type spawned struct {
	target  target
	proc    *process
	cleanup func()
}

func (s *spawned) stop() {
	s.proc.stop()
	if s.cleanup != nil {
		s.cleanup()
	}
}

// startBaseline re-executes loadgen in baseline mode on one CPU, with fresh credentials. The
// child listens on a port of its choosing and prints it, with the token for /verify, as its
// first line.
func startBaseline(ctx context.Context) (*spawned, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("baseline: find own executable: %w", err)
	}
	// The credentials are ephemeral, random and only ever sent over loopback, so passing them on
	// the command line exposes nothing worth keeping.
	creds := credentials{ID: randomToken(16), Secret: randomToken(32)}
	first := &firstLine{ch: make(chan string, 1)}
	p, err := startProcess(ctx, "baseline", exe,
		[]string{"-baseline-serve", "127.0.0.1:0", "-client-id", creds.ID, "-client-secret", creds.Secret},
		childEnv("GOMAXPROCS=1"), first, nil)
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case line := <-first.ch:
		var ready baselineReady
		if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Addr == "" {
			p.stop()
			return nil, p.failure(fmt.Errorf("baseline: unexpected first line %.200q", line))
		}
		t := target{name: "baseline", url: "http://" + ready.Addr, acct: account{client: creds}, bearer: ready.Token}
		return &spawned{target: t, proc: p}, nil
	case <-p.done:
		return nil, p.failure(fmt.Errorf("baseline exited before serving: %v", p.err))
	case <-timer.C:
		p.stop()
		return nil, p.failure(errors.New("baseline did not start serving"))
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// startPortaria registers what the scenario needs in a fresh data directory, then serves
// Portaria from it on a free loopback port with GOMAXPROCS=1, and waits until it is ready. A
// scenario that measures Redis gets redisURL and a key prefix of its own, whose keys are deleted
// when the server is stopped.
func startPortaria(ctx context.Context, bin string, sc scenario, redisURL string) (_ *spawned, err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("portaria binary: %w (build it with `make build`, or pass -portaria or -target)", err)
	}
	dir, err := os.MkdirTemp("", "portaria-loadgen-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	settings := []string{"PORTARIA_DATA_DIR=" + dir}
	if sc.redis {
		prefix := "loadgen-" + randomToken(9) + ":"
		settings = append(settings, "PORTARIA_REDIS_URL="+redisURL, "PORTARIA_REDIS_PREFIX="+prefix)
		cleanup = func() {
			os.RemoveAll(dir)
			// Rotated refresh tokens are kept for the family's lifetime (weeks): a shared Redis
			// must not keep a run's thousands of them.
			delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := deleteRedisPrefix(delCtx, redisURL, prefix); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: delete Redis keys %s*: %v\n", prefix, err)
			}
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()

	acct, err := sc.setup(ctx, portariaCLI{bin: bin, env: childEnv(settings...)})
	if err != nil {
		return nil, fmt.Errorf("scenario %s: set up: %w", sc.name, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	env := childEnv(append(settings, "GOMAXPROCS=1", "PORTARIA_ADDR="+addr, "PORTARIA_LOG_FORMAT=json")...)
	p, err := startProcess(ctx, "portaria", bin, []string{"serve"}, env, nil, logFile)
	if err != nil {
		return nil, err
	}
	base := "http://" + addr
	if err := waitReady(ctx, p, base); err != nil {
		p.stop()
		return nil, p.failure(err)
	}
	return &spawned{target: target{name: "portaria", url: base, acct: acct}, proc: p, cleanup: cleanup}, nil
}

// freePort returns a loopback port that was free a moment ago. Another process could take it
// before the server binds it; the server then fails to start and says so.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// waitReady polls GET base/readyz until it answers 200, the process exits, or readyTimeout.
func waitReady(ctx context.Context, p *process, base string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := newClient(1, false)
	client.Timeout = time.Second
	defer client.CloseIdleConnections()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", p.name, readyTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portariaCLI runs administration commands of the binary on the spawned server's data.
type portariaCLI struct {
	bin string
	env []string
}

// run runs one command with stdin (nil: none) and returns its standard output.
func (c portariaCLI) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: tailBytes}
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("portaria %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// createClient runs `portaria clients create` with flags and returns the new client's credentials.
func (c portariaCLI) createClient(ctx context.Context, flags ...string) (credentials, error) {
	out, err := c.run(ctx, nil, append([]string{"clients", "create"}, flags...)...)
	if err != nil {
		return credentials{}, err
	}
	var creds credentials
	if err := json.Unmarshal(out, &creds); err != nil {
		return credentials{}, fmt.Errorf("portaria clients create: parse output: %w", err)
	}
	if creds.ID == "" || creds.Secret == "" {
		return credentials{}, fmt.Errorf("portaria clients create: no client_id and client_secret in %s", bytes.TrimSpace(out))
	}
	return creds, nil
}

// createAdmin runs `portaria admin create`, the password on its standard input.
func (c portariaCLI) createAdmin(ctx context.Context, email, name, password string) error {
	_, err := c.run(ctx, strings.NewReader(password+"\n"), "admin", "create", "--email", email, "--name", name, "--password-stdin")
	return err
}

// tailBuffer keeps the last max bytes or so written to it, cut at a line start: the last lines.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool // the buffer no longer starts where the output did, maybe mid-line
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) > t.max {
		p = p[len(p)-t.max:]
		t.dropped = true
	}
	// Compact once the buffer holds twice what is kept, so each byte is copied at most twice.
	if len(t.buf)+len(p) > 2*t.max {
		keep := t.max - len(p)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
		t.dropped = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	if t.dropped || len(b) < len(t.buf) {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// firstLine sends the first line written to it on ch, without its newline, and drops the rest.
type firstLine struct {
	mu   sync.Mutex
	line []byte
	sent bool
	ch   chan string
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sent {
		return len(p), nil
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		f.sent = true
		f.ch <- strings.TrimSpace(string(append(f.line, p[:i]...)))
		return len(p), nil
	}
	if len(f.line) < 1<<10 {
		f.line = append(f.line, p...)
	}
	return len(p), nil
}
