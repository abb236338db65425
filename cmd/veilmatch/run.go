package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"google.golang.org/grpc/status"
)

const usageText = `veilmatch: find where agencies' watchlists overlap without sharing them.

Usage:
  veilmatch dev [--dir DIR]                 run a key server and a hub on loopback (development)
  veilmatch dev certs --out DIR             regenerate the development certificates
  veilmatch keyserver --key-file FILE ...   run the OPRF key server
  veilmatch keyserver init-key --out FILE   create a new OPRF key
  veilmatch hub --data DIR ...              run the hub
  veilmatch agency publish|overlaps|check|lists|delete|request-disclosure|requests|approve|refuse|disclosures ...
  veilmatch policy test|eval ...
  veilmatch audit decisions|verify|report ...
  veilmatch bench [--large]                 measure the pipeline against the crypto's limit
  veilmatch version

Example (two terminals):
  veilmatch dev
  veilmatch agency publish --as police-gb --list suspects --kind phone \
      --category suspect --region GB examples/trafficking-ring/police-gb.csv

Run 'veilmatch COMMAND -h' for a command's flags.
`

// usageError is a mistake in the command line: exit status 2, with a hint.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usagef(hint, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), hint: hint}
}

func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// hinted is an error with advice for the user.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, hint string) error { return &hinted{err, hint} }

// printError writes err as "veilmatch: error: …" plus any hint. A gRPC
// status inside err is shown as its code and message.
func printError(w io.Writer, err error) {
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	msg := err.Error()
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		msg = strings.Replace(msg, st.Err().Error(), st.Code().String()+": "+st.Message(), 1)
	}
	fmt.Fprintf(w, "veilmatch: error: %s\n", msg)
	var u *usageError
	var h *hinted
	switch {
	case errors.As(err, &u) && u.hint != "":
		fmt.Fprintf(w, "veilmatch: hint: %s\n", u.hint)
	case errors.As(err, &h):
		fmt.Fprintf(w, "veilmatch: hint: %s\n", h.hint)
	}
}

// env carries the process's streams to commands.
type env struct {
	stdout, stderr io.Writer
}

type command func(ctx context.Context, e env, args []string) error

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := env{stdout: stdout, stderr: stderr}
	setupLogging(stderr)
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usagef("", "no command given")
	}
	commands := map[string]command{
		"agency":    cmdAgency,
		"bench":     cmdBench,
		"audit":     cmdAudit,
		"dev":       cmdDev,
		"hub":       cmdHub,
		"policy":    cmdPolicy,
		"keyserver": cmdKeyserver,
		"version":   cmdVersion,
		"--version": cmdVersion,
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stderr, usageText)
		return usagef("run 'veilmatch help' for the list of commands", "unknown command %q", args[0])
	}
	return c(ctx, e, args[1:])
}

func cmdVersion(_ context.Context, e env, _ []string) error {
	fmt.Fprintln(e.stdout, "veilmatch", version())
	return nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v + " " + bi.GoVersion
}

// setupLogging installs the process's default logger: text on stderr at the
// level named by VEILMATCH_LOG_LEVEL (debug, info, warn, error; default info).
func setupLogging(w io.Writer) {
	level := slog.LevelInfo
	if s := os.Getenv("VEILMATCH_LOG_LEVEL"); s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints usage with an example.
func newFlagSet(e env, name, synopsis, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: veilmatch %s\n\n", synopsis)
		fs.PrintDefaults()
		if example != "" {
			fmt.Fprintf(e.stderr, "\nExample:\n  %s\n", example)
		}
	}
	return fs
}

// parse parses flags that may appear before or after positional arguments
// and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("run with -h for the flags", "%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// plural returns "1 entry" or "n entries".
func plural[N int | uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
