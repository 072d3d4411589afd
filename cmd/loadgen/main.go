// Command loadgen measures the token endpoint as a ratio against a baseline. The baseline is a
// handler that does only the irreducible work of a token response: parse the form, verify an
// HMAC-hashed client secret, sign one ES256 JWT. Both servers run with GOMAXPROCS=1 in processes
// of their own and are measured in interleaved rounds, so that noise on a shared machine hits
// both alike: absolute figures wander, the ratio does not.
//
// Usage:
//
//	loadgen [-portaria bin/portaria | -target URL -client-id ID -client-secret S] [flags]
package main

import (
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
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
	minRatio     float64
	strict       bool
	json         bool
	// baselineServe is the hidden mode in which loadgen re-executes itself to serve the baseline.
	baselineServe string
}

// hiddenFlags are for loadgen's own child process, not for people.
var hiddenFlags = map[string]bool{"baseline-serve": true}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.portaria, "portaria", "bin/portaria", "the portaria binary to spawn (unless -target is given)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of each measured round")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds per server, interleaved baseline, target, baseline, …")
	fs.IntVar(&c.concurrency, "concurrency", 32, "keep-alive connections, one worker each")
	fs.StringVar(&c.scenario, "scenario", "client_credentials", "what to drive: "+strings.Join(scenarioNames(), ", "))
	fs.StringVar(&c.target, "target", "", "base URL of an already-running server to drive instead of spawning one")
	fs.StringVar(&c.clientID, "client-id", "", "client id for -target")
	fs.StringVar(&c.clientSecret, "client-secret", "", "client secret for -target")
	fs.Float64Var(&c.minRatio, "min-ratio", 0.8, "throughput target/baseline below which the result is a fail")
	fs.BoolVar(&c.strict, "strict", false, "exit with status 1 on a fail")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&c.baselineServe, "baseline-serve", "", "serve the baseline on this loopback address (internal)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [-portaria bin/portaria | -target URL -client-id ID -client-secret S] [flags]\n\n")
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
	if c.baselineServe != "" {
		return c, nil
	}
	switch {
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.rounds < 1:
		return c, errors.New("-rounds must be at least 1")
	case c.concurrency < 1:
		return c, errors.New("-concurrency must be at least 1")
	case c.minRatio <= 0:
		return c, errors.New("-min-ratio must be positive")
	}
	if _, ok := findScenario(c.scenario); !ok {
		return c, fmt.Errorf("unknown -scenario %q; want one of %s", c.scenario, strings.Join(scenarioNames(), ", "))
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

// run is the whole program; it returns the exit status: 0 done (a result below target too,
// unless -strict), 1 failed or below target with -strict, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
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
	rep, err := loadTest(ctx, cfg, stderr)
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
		err = enc.Encode(rep)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %s\n", err)
		return 1
	}
	if !rep.Pass && cfg.strict {
		return 1
	}
	return 0
}

// loadTest starts the baseline and, without -target, Portaria; measures both; stops them.
func loadTest(ctx context.Context, cfg config, progress io.Writer) (report, error) {
	sc, _ := findScenario(cfg.scenario)

	base, err := startBaseline(ctx)
	if err != nil {
		return report{}, err
	}
	defer base.stop()
	servers := []*spawned{base}

	tgt := target{name: "target", url: cfg.target, creds: credentials{ID: cfg.clientID, Secret: cfg.clientSecret}, remote: true}
	if cfg.target == "" {
		p, err := startPortaria(ctx, cfg.portaria, sc)
		if err != nil {
			return report{}, err
		}
		defer p.stop()
		servers = append(servers, p)
		tgt = p.target
	}

	opts := options{
		scenario:    sc,
		duration:    cfg.duration,
		warmup:      time.Second,
		rounds:      cfg.rounds,
		concurrency: cfg.concurrency,
	}
	results, err := measure(ctx, opts, []target{base.target, tgt}, progress)
	if err != nil {
		for _, s := range servers {
			if s.proc.exited() {
				err = s.proc.failure(fmt.Errorf("%w (%s exited: %v)", err, s.proc.name, s.proc.err))
			}
		}
		return report{}, err
	}
	rep := summarize(opts, results, cfg.minRatio)
	rep.SpawnedTarget = cfg.target == ""
	return rep, nil
}

// randomToken returns n random bytes, base64url: ephemeral baseline credentials.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24): it crashes the program instead.
	return base64.RawURLEncoding.EncodeToString(b)
}
