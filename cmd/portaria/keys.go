package main

import (
	"context"
	"errors"
	"fmt"
)

func cmdKeys(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return errors.New("keys: want list or rotate")
	}
	sub, args := args[0], args[1:]
	cfg, rest, err := loadConfig(e, "keys "+sub, args, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("keys %s: unexpected argument %q", sub, rest[0])
	}
	a, err := openApp(ctx, cfg, newLogger(cfg, e.stderr), true)
	if err != nil {
		return err
	}
	defer a.Close()
	switch sub {
	case "list":
		ks, err := a.ring.List(ctx)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		return printJSON(e.stdout, ks)
	case "rotate":
		// On a new database the first key is created (active at once) before the next is scheduled.
		if err := a.ring.Maintain(ctx); err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		k, err := a.ring.Rotate(ctx)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		return printJSON(e.stdout, k)
	}
	return fmt.Errorf("keys: unknown subcommand %q", sub)
}
