package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/portaria/portaria/config"
)

const usage = `portaria — authorization server

Commands:
  serve [--role all|token|api] [--migrate=false]   run the server
  migrate                                          apply database migrations and exit
  admin create --email E --name N --password-stdin create a platform administrator
  clients create --name N --grant G [--grant G…] [--scope S] [--org ORG_ID] [--public] [--access-ttl D] [--refresh-ttl D]
  clients list | clients delete ID | clients rotate-secret ID
  keys list | keys rotate
  version

Every command takes the settings of serve (flags or PORTARIA_* variables); see 'portaria serve --help'.
`

// env is what a command reads and writes; run passes it down so that nothing touches globals.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program: main only supplies the process's context, arguments and streams.
// It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, e, rest)
	case "migrate":
		err = cmdMigrate(ctx, e, rest)
	case "admin":
		err = cmdAdmin(ctx, e, rest)
	case "clients":
		err = cmdClients(ctx, e, rest)
	case "keys":
		err = cmdKeys(ctx, e, rest)
	case "version":
		err = printJSON(stdout, map[string]string{"version": version()})
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "portaria: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "portaria: %s\n", oneLine(err))
		return 1
	}
	return 0
}

// oneLine keeps an error on one line per cause (configuration errors join several).
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "\nportaria: ")
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// loadConfig parses the settings shared by every command, plus the command's own flags.
func loadConfig(e env, name string, args []string, extra func(*flag.FlagSet)) (config.Config, []string, error) {
	cfg, rest, err := config.Load(args, e.getenv, e.stderr, extra)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, nil, err
		}
		return cfg, nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, rest, nil
}

// newLogger returns the process logger: text on a terminal, JSON otherwise, unless configured.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	return newLoggerTo(cfg, w, w)
}

// newLoggerTo writes to w, choosing the format from what terminal is (the stream w buffers).
func newLoggerTo(cfg config.Config, w, terminal io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := terminal.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}
