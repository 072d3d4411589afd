package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis processes of a test's own: a private redis-server on a free loopback port, a three-master
// Cluster, a master with a replica watched by three Sentinels. The shared Redis of
// PORTARIA_TEST_REDIS_URL cannot be killed, clustered or failed over; these can. Every process is
// killed when the test ends (and, on Linux, when the test binary dies).

// startTimeout bounds how long a process, a Cluster or a Sentinel group may take to be ready.
const startTimeout = 30 * time.Second

// RedisProcess is one redis-server (or Sentinel) process of a test.
type RedisProcess struct {
	t    testing.TB
	Port int
	Dir  string // its working and data directory (AOF, RDB, nodes.conf, log)
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Addr is the process's host:port.
func (p *RedisProcess) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// URL is a redis:// URL of the process, database 0.
func (p *RedisProcess) URL() string { return "redis://" + p.Addr() + "/0" }

// requireRedisBinaries returns the paths of redis-server and redis-cli. Without them the test
// skips, or fails in CI, which must never pass by skipping.
func requireRedisBinaries(t testing.TB) (server, cli string) {
	t.Helper()
	var err error
	for _, b := range []struct {
		name string
		path *string
	}{{"redis-server", &server}, {"redis-cli", &cli}} {
		if *b.path, err = exec.LookPath(b.name); err != nil {
			if InCI() {
				t.Fatalf("%s is not on PATH: CI requires it for the Redis process tests", b.name)
			}
			t.Skipf("%s is not on PATH: install Redis 7 (Debian: apt-get install redis-server) to run this test", b.name)
		}
	}
	return server, cli
}

// StartRedis starts a private redis-server on a free loopback port with nothing persisted
// (save "", appendonly no) unless args say otherwise: args follow the defaults on the command
// line, and Redis keeps the last value of an option given twice ("--appendonly", "yes",
// "--appendfsync", "always" makes it durable). It waits until the server answers PING.
func StartRedis(t testing.TB, args ...string) *RedisProcess {
	t.Helper()
	server, _ := requireRedisBinaries(t)
	dir := t.TempDir()
	port := FreePort(t)
	p := &RedisProcess{t: t, Port: port, Dir: dir, args: append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no",
		"--save", "", "--appendonly", "no",
	}, args...)}
	p.start(server)
	return p
}

// startSentinel starts a Sentinel from a configuration file written into its own directory
// (Sentinel rewrites the file as it learns the topology, so it must be writable).
func startSentinel(t testing.TB, masterName string, master *RedisProcess) *RedisProcess {
	t.Helper()
	server, _ := requireRedisBinaries(t)
	dir := t.TempDir()
	port := FreePort(t)
	conf := strings.Join([]string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", masterName, master.Port),
		// Short detection and failover times: a test waits for them.
		"sentinel down-after-milliseconds " + masterName + " 1000",
		"sentinel failover-timeout " + masterName + " 10000",
		"sentinel parallel-syncs " + masterName + " 1",
		"",
	}, "\n")
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatalf("write Sentinel configuration: %v", err)
	}
	p := &RedisProcess{t: t, Port: port, Dir: dir, args: []string{path, "--sentinel"}}
	p.start(server)
	return p
}

// start runs the process and waits until it answers PING; the test's cleanup kills it.
func (p *RedisProcess) start(server string) {
	p.t.Helper()
	cmd := exec.Command(server, p.args...)
	cmd.Dir = p.Dir
	cmd.SysProcAttr = ChildProcAttr()
	out, err := os.OpenFile(filepath.Join(p.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatalf("redis output file: %v", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start redis-server: %v", err)
	}
	p.mu.Lock()
	first := p.cmd == nil
	p.cmd = cmd
	p.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if first {
		p.t.Cleanup(p.Kill)
	}
	// The goroutine above reaps the process whenever it ends, so Kill never waits on a zombie.
	p.waitReady(exited)
}

// waitReady polls PING until the server answers PONG; it fails the test, with the server's log,
// if the process exits or the deadline passes first.
func (p *RedisProcess) waitReady(exited <-chan error) {
	p.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		err := ping(p.Addr())
		if err == nil {
			return
		}
		select {
		case werr := <-exited:
			p.t.Fatalf("redis-server on port %d exited (%v) before it was ready:\n%s", p.Port, werr, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("redis-server on port %d not ready after %v (%v):\n%s", p.Port, startTimeout, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING and wants PONG: a server still loading its data answers LOADING instead.
func ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Log returns what the process wrote to its log files (for failure messages).
func (p *RedisProcess) Log() string {
	var b strings.Builder
	for _, name := range []string{"redis.log", "sentinel.log", "stdout.log"} {
		if data, err := os.ReadFile(filepath.Join(p.Dir, name)); err == nil {
			fmt.Fprintf(&b, "--- %s\n%s", name, tail(string(data), 4000))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Kill ends the process with SIGKILL, as a crash would: nothing is flushed on the way out.
func (p *RedisProcess) Kill() {
	p.signal(syscall.SIGKILL)
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	// The port is free once the process is gone; a restart must not race the dying one.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(cmd.Process.Pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Pause stops the process (SIGSTOP): connections stay open but nothing is answered, as with a
// hung server or a network that drops packets. Resume continues it.
func (p *RedisProcess) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *RedisProcess) Resume() { p.signal(syscall.SIGCONT) }

func (p *RedisProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// Restart starts the process again on the same port, directory and arguments (after Kill), and
// waits until it answers PING, which a server replaying its append-only file does only once
// the replay is done.
func (p *RedisProcess) Restart() {
	p.t.Helper()
	server, _ := requireRedisBinaries(p.t)
	p.start(server)
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RedisCluster is a three-master Redis Cluster of a test (no replicas: the tests need the slot
// split, not failover).
type RedisCluster struct {
	Nodes []*RedisProcess
}

// Addrs is the comma-separated list of the nodes, the form PORTARIA_REDIS_URL takes for a Cluster.
func (c *RedisCluster) Addrs() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return strings.Join(addrs, ",")
}

// StartRedisCluster starts three cluster-enabled redis-server processes, joins them with
// `redis-cli --cluster create`, and waits until every node says the cluster is ok.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	_, cli := requireRedisBinaries(t)
	c := &RedisCluster{}
	for range 3 {
		// The cluster bus gets a port of its own: the default (port + 10000) may be taken.
		bus := FreePort(t)
		c.Nodes = append(c.Nodes, StartRedis(t,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "5000"))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		waitFor(t, "cluster state ok on "+n.Addr(), func(ctx context.Context, rc *redis.Client) error {
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:3"} {
				if !strings.Contains(info, want) {
					return fmt.Errorf("cluster info lacks %s", want)
				}
			}
			return nil
		}, n)
	}
	return c
}

// RedisSentinel is a master, one replica and three Sentinels (quorum 2) of a test.
type RedisSentinel struct {
	MasterName string
	Master     *RedisProcess
	Replica    *RedisProcess
	Sentinels  []*RedisProcess
}

// URL is the Sentinel form of PORTARIA_REDIS_URL: the first Sentinel as the host, the others as
// addr parameters, the master's name as master_name.
func (s *RedisSentinel) URL() string {
	q := "master_name=" + s.MasterName
	for _, sn := range s.Sentinels[1:] {
		q += "&addr=" + sn.Addr()
	}
	return "redis://" + s.Sentinels[0].Addr() + "/0?" + q
}

// StartRedisSentinel starts a master, a replica of it and three Sentinels monitoring it, and
// waits until the replica is in sync and the Sentinels have found each other and agree they
// could fail over (SENTINEL CKQUORUM).
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{MasterName: "portaria"}
	s.Master = StartRedis(t)
	s.Replica = StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	waitFor(t, "the replica in sync", func(ctx context.Context, rc *redis.Client) error {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("master link not up")
		}
		return nil
	}, s.Replica)
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, s.MasterName, s.Master))
	}
	for _, sn := range s.Sentinels {
		waitFor(t, "Sentinel quorum on "+sn.Addr(), func(ctx context.Context, rc *redis.Client) error {
			return rc.Do(ctx, "SENTINEL", "CKQUORUM", s.MasterName).Err()
		}, sn)
	}
	return s
}

// waitFor polls check against each process until it passes, failing the test with the
// processes' logs after startTimeout.
func waitFor(t testing.TB, what string, check func(context.Context, *redis.Client) error, procs ...*RedisProcess) {
	t.Helper()
	for _, p := range procs {
		rc := redis.NewClient(&redis.Options{Addr: p.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
		deadline := time.Now().Add(startTimeout)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := check(ctx, rc)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				t.Fatalf("waiting for %s: %v\n%s", what, err, p.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
		rc.Close()
	}
}
