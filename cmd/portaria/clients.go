package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/portaria/portaria/identity"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdClients(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("clients: want create, list, delete ID or rotate-secret ID")
	}
	sub, args := args[0], args[1:]
	var (
		nc                    identity.NewClient
		grants                stringList
		scope                 string
		accessTTL, refreshTTL time.Duration
	)
	extra := func(fs *flag.FlagSet) {}
	if sub == "create" {
		extra = func(fs *flag.FlagSet) {
			fs.StringVar(&nc.Name, "name", "", "client name")
			fs.Var(&grants, "grant", "allowed grant type (repeatable)")
			fs.StringVar(&scope, "scope", "", "allowed scopes, one space-separated value")
			fs.StringVar(&nc.OrgID, "org", "", "organization the client belongs to")
			fs.BoolVar(&nc.Public, "public", false, "public client: no secret")
			fs.DurationVar(&accessTTL, "access-ttl", 0, "default and maximum access-token lifetime")
			fs.DurationVar(&refreshTTL, "refresh-ttl", 0, "refresh-token family lifetime")
		}
	}
	cfg, rest, err := loadConfig(e, "clients "+sub, args, extra)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(cfg, e.stderr), true)
	if err != nil {
		return err
	}
	defer a.Close()
	svc := a.identity

	switch sub {
	case "create":
		if len(rest) > 0 {
			return fmt.Errorf("clients create: unexpected argument %q", rest[0])
		}
		nc.Grants = grants
		nc.Scopes = strings.Fields(scope)
		nc.AccessTTL, nc.RefreshTTL = accessTTL, refreshTTL
		c, secret, err := svc.CreateClient(ctx, nc)
		if err != nil {
			return fmt.Errorf("clients create: %w", err)
		}
		return printJSON(e.stdout, withSecret(c, secret))
	case "list":
		cs, err := svc.Clients(ctx)
		if err != nil {
			return fmt.Errorf("clients list: %w", err)
		}
		if cs == nil {
			cs = []identity.Client{}
		}
		return printJSON(e.stdout, cs)
	case "delete", "rotate-secret":
		if len(rest) != 1 {
			return fmt.Errorf("clients %s: want exactly one client id", sub)
		}
		if sub == "delete" {
			if err := svc.DeleteClient(ctx, rest[0]); err != nil {
				return fmt.Errorf("clients delete: %w", err)
			}
			return printJSON(e.stdout, map[string]string{"client_id": rest[0], "status": "deleted"})
		}
		secret, err := svc.RotateClientSecret(ctx, rest[0])
		if err != nil {
			return fmt.Errorf("clients rotate-secret: %w", err)
		}
		return printJSON(e.stdout, map[string]string{"client_id": rest[0], "client_secret": secret})
	}
	return fmt.Errorf("clients: unknown subcommand %q", sub)
}

// withSecret is what `clients create` prints: the client plus its secret, shown here once and
// nowhere else.
func withSecret(c identity.Client, secret string) map[string]any {
	b, _ := json.Marshal(c)
	var out map[string]any
	json.Unmarshal(b, &out)
	if secret != "" {
		out["client_secret"] = secret
	}
	return out
}
