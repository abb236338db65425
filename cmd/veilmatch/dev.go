package main

import (
	"context"
	"fmt"

	"github.com/veilmatch/veilmatch/certs"
)

func cmdDev(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "certs" {
		return cmdDevCerts(e, args[1:])
	}
	return usagef("", "dev: not yet")
}

func cmdDevCerts(e env, args []string) error {
	fs := newFlagSet(e, "dev certs", "dev certs --out DIR", "veilmatch dev certs --out certs/dev")
	out := fs.String("out", "", "`DIR` to write the development CA and certificates to")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("", "--out is required")
	}
	if err := certs.Generate(*out, certs.Options{}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote development CA and certificates to %s (DEV ONLY)\n", *out)
	return nil
}
