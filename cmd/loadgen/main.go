// Command loadgen measures Portaria as ratios against baselines. Each scenario drives Portaria
// with one kind of request and compares its throughput with a baseline doing only the
// irreducible work of that request:
//
//   - client_credentials (the default): POST /oauth/token against a handler that parses the form,
//     verifies an HMAC-hashed client secret and signs one ES256 JWT;
//   - refresh: the refresh_token grant, each worker rotating its own chain, with the token state
//     in Redis (-redis-url), against the same client_credentials handler;
//   - me: GET /api/auth/me with a user's access token, against a handler that verifies one ES256
//     JWT (signature with the public key in hand, exp, iss, aud);
//   - password: whole password-grant logins, against the argon2id limit: the hashes per second
//     one CPU does with Portaria's parameters, measured in the same run;
//   - all: each of them in turn, in one table.
//
// Portaria and the baseline run with GOMAXPROCS=1 in processes of their own and are measured in
// interleaved rounds, so that noise on a shared machine hits both alike: absolute figures
// wander, the ratio does not. Logins that a scenario needs happen before the measured rounds.
//
// Usage:
//
//	loadgen [-portaria bin/portaria | -target URL -client-id ID -client-secret S [-username U -password-stdin]] [flags]
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portaria/portaria/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the command line.
type config struct {
	portaria     string
	duration     time.Duration
	rounds       int
	concurrency  int
	scenario     string
	target       string
	clientID     string
	clientSecret string
	username     string
	password     string // read from stdin with -password-stdin
	redisURL     string
	minRatio     float64 // 0: each scenario's own
	strict       bool
	json         bool
	// baselineServe and baselineArgon2 are the hidden modes in which loadgen re-executes itself
	// to serve the baseline, or to measure the argon2id limit for that long.
	baselineServe  string
	baselineArgon2 time.Duration
}

// hiddenFlags are for loadgen's own child processes, not for people.
var hiddenFlags = map[string]bool{"baseline-serve": true, "baseline-argon2": true}

func parseFlags(args []string, stdin io.Reader, stderr io.Writer) (config, error) {
	var c config
	var passwordStdin bool
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.portaria, "portaria", "bin/portaria", "the portaria binary to spawn (unless -target is given)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of each measured round")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds per server, interleaved baseline, target, baseline, …")
	fs.IntVar(&c.concurrency, "concurrency", 0, "keep-alive connections, one worker each (default: each scenario's, "+scenarioDefaults(func(sc scenario) string { return fmt.Sprint(sc.concurrency) })+")")
	fs.StringVar(&c.scenario, "scenario", "client_credentials", "what to drive: "+strings.Join(scenarioNames(), ", ")+" or "+scenarioAll)
	fs.StringVar(&c.target, "target", "", "base URL of an already-running server to drive instead of spawning one")
	fs.StringVar(&c.clientID, "client-id", "", "client id for -target")
	fs.StringVar(&c.clientSecret, "client-secret", "", "client secret for -target")
	fs.StringVar(&c.username, "username", "", "user to log in as on -target (refresh, me, password)")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read that user's password from the first line of standard input")
	fs.StringVar(&c.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis of the spawned server in the refresh scenario; its keys get a prefix of their own, deleted at the end")
	fs.Float64Var(&c.minRatio, "min-ratio", 0, "throughput target/baseline below which the result is a fail (default: each scenario's, "+scenarioDefaults(func(sc scenario) string { return fmt.Sprintf("%.2f", sc.minRatio) })+")")
	fs.BoolVar(&c.strict, "strict", false, "exit with status 1 on a fail")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&c.baselineServe, "baseline-serve", "", "serve the baseline on this loopback address (internal)")
	fs.DurationVar(&c.baselineArgon2, "baseline-argon2", 0, "print the argon2id rate over this long (internal)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [-portaria bin/portaria | -target URL -client-id ID -client-secret S [-username U -password-stdin]] [flags]\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(stderr, "  -%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.baselineServe != "" || c.baselineArgon2 != 0 {
		if c.baselineArgon2 < 0 {
			return c, errors.New("-baseline-argon2 must be positive")
		}
		return c, nil
	}
	switch {
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.rounds < 1:
		return c, errors.New("-rounds must be at least 1")
	case c.concurrency < 0:
		return c, errors.New("-concurrency must not be negative")
	case c.minRatio < 0:
		return c, errors.New("-min-ratio must not be negative")
	}
	if _, err := selectScenarios(c.scenario); err != nil {
		return c, err
	}
	if passwordStdin {
		if c.target == "" {
			return c, errors.New("-password-stdin goes with -target; a spawned server gets a user of its own")
		}
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("read the password: %w", err)
		}
		c.password = strings.TrimRight(line, "\r\n")
	}
	if c.username != "" && c.target == "" {
		return c, errors.New("-username goes with -target; a spawned server gets a user of its own")
	}
	if (c.username == "") != (c.password == "") {
		return c, errors.New("-username and -password-stdin go together")
	}
	if c.target != "" {
		u, err := url.Parse(c.target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return c, fmt.Errorf("-target %q: want a base URL such as http://127.0.0.1:8080", c.target)
		}
		c.target = strings.TrimSuffix(c.target, "/")
		if c.clientID == "" || c.clientSecret == "" {
			return c, errors.New("-target needs -client-id and -client-secret")
		}
	} else if c.clientID != "" || c.clientSecret != "" {
		return c, errors.New("-client-id and -client-secret go with -target; a spawned server gets a client of its own")
	}
	return c, nil
}

// scenarioDefaults lists a default of each scenario, for the usage text.
func scenarioDefaults(value func(scenario) string) string {
	var parts []string
	for _, sc := range scenarioTable() {
		parts = append(parts, sc.name+" "+value(sc))
	}
	return strings.Join(parts, ", ")
}

// run is the whole program; it returns the exit status: 0 done (a result below target too,
// unless -strict), 1 failed or below target with -strict, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stdin, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %s\n", err)
		return 2
	}
	if cfg.baselineServe != "" {
		err = serveBaseline(ctx, cfg.baselineServe, credentials{ID: cfg.clientID, Secret: cfg.clientSecret}, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen baseline: %s\n", err)
			return 1
		}
		return 0
	}
	if cfg.baselineArgon2 > 0 {
		if err := runHashLoop(ctx, identity.DefaultPasswordParams(), cfg.baselineArgon2, stdout); err != nil {
			fmt.Fprintf(stderr, "loadgen argon2id baseline: %s\n", err)
			return 1
		}
		return 0
	}
	sum, err := loadTests(ctx, cfg, stderr)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(stderr, "loadgen: interrupted")
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %s\n", err)
		return 1
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(sum)
	} else {
		err = sum.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %s\n", err)
		return 1
	}
	if !sum.Pass && cfg.strict {
		return 1
	}
	return 0
}

// loadTests runs the scenarios -scenario names, one after the other.
func loadTests(ctx context.Context, cfg config, progress io.Writer) (summary, error) {
	scenarios, err := selectScenarios(cfg.scenario)
	if err != nil {
		return summary{}, err
	}
	sum := summary{Pass: true}
	for _, sc := range scenarios {
		if len(scenarios) > 1 {
			fmt.Fprintf(progress, "scenario %s\n", sc.name)
		}
		rep, err := loadTest(ctx, cfg, sc, progress)
		if err != nil {
			return summary{}, fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		sum.Scenarios = append(sum.Scenarios, rep)
		sum.Pass = sum.Pass && rep.Pass
	}
	return sum, nil
}

// loadTest starts the baseline and, without -target, Portaria; measures both; stops them.
func loadTest(ctx context.Context, cfg config, sc scenario, progress io.Writer) (report, error) {
	concurrency := cmp.Or(cfg.concurrency, sc.concurrency)
	minRatio := cmp.Or(cfg.minRatio, sc.minRatio)
	var servers []*spawned
	var base runner
	if sc.hashLimit {
		h, err := newHashBaseline()
		if err != nil {
			return report{}, err
		}
		base = h
	} else {
		s, err := startBaseline(ctx)
		if err != nil {
			return report{}, err
		}
		defer s.stop()
		servers = append(servers, s)
		base = newDriver(s.target, sc.baseline, concurrency)
	}
	defer base.close()

	tgt := target{
		name:   "target",
		url:    cfg.target,
		acct:   account{client: credentials{ID: cfg.clientID, Secret: cfg.clientSecret}, username: cfg.username, password: cfg.password},
		remote: true,
	}
	if cfg.target == "" {
		p, err := startPortaria(ctx, cfg.portaria, sc, cfg.redisURL)
		if err != nil {
			return report{}, err
		}
		defer p.stop()
		servers = append(servers, p)
		tgt = p.target
	}
	d := newDriver(tgt, sc.target, concurrency)
	defer d.close()

	opts := options{duration: cfg.duration, warmup: time.Second, rounds: cfg.rounds}
	results, err := measure(ctx, opts, []runner{base, d}, progress)
	if err != nil {
		for _, s := range servers {
			if s.proc.exited() {
				err = s.proc.failure(fmt.Errorf("%w (%s exited: %v)", err, s.proc.name, s.proc.err))
			}
		}
		return report{}, err
	}
	rep := summarize(sc.name, opts, results, minRatio)
	rep.Concurrency = concurrency
	rep.SpawnedTarget = cfg.target == ""
	return rep, nil
}

// randomToken returns n random bytes, base64url: ephemeral baseline credentials.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24): it crashes the program instead.
	return base64.RawURLEncoding.EncodeToString(b)
}
