package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/portaria/portaria/identity"
)

// cmdAdmin is `portaria admin create --email E --name N --password-stdin`: a platform
// administrator. The password is read from standard input so that it never appears in the
// process list or the shell history.
func cmdAdmin(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("admin: want create --email E --name N --password-stdin")
	}
	var email, name string
	var passwordStdin bool
	cfg, rest, err := loadConfig(e, "admin create", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the administrator's e-mail")
		fs.StringVar(&name, "name", "", "the administrator's name")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("admin create: unexpected argument %q", rest[0])
	}
	if !passwordStdin {
		return errors.New("admin create: --password-stdin is required (the password is never taken as an argument)")
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("admin create: no password on standard input")
	}
	password := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	a, err := openApp(ctx, cfg, newLogger(cfg, e.stderr), true)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.identity.CreateUser(ctx, identity.NewUser{
		Email: email, Name: name, Password: password, Active: true, EmailVerified: true,
		Permissions: []string{identity.PermPlatformAdmin},
	})
	if err != nil {
		return fmt.Errorf("admin create: %w", err)
	}
	return printJSON(e.stdout, u)
}
