package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"google.golang.org/grpc/status"
)

// The command line's rules, which every command follows:
//
//   - Results go to stdout: text, or JSON with --format json. Everything
//     else goes to stderr: progress, row reports, logs and messages.
//   - Messages are "veilmatch: error: …" (what failed, naming the input or
//     service at fault), "veilmatch: hint: …" (what to do about it) and
//     "veilmatch: warning: …" (the work went on, but look).
//   - Exit status: 0 done (help asked for included); 1 failed; 2 the command
//     line is wrong, and nothing was done; 3 done, but some input rows were
//     rejected, each named with its line.
//   - A flag means one thing everywhere: --data a data directory, --listen
//     the address to listen on, --dev-certs the development certificate
//     folder, --policy-dir a policy bundle, --as and --config who you are,
//     --format text or json. A renamed flag's old name works for one
//     release, with a warning (renamed).
//   - Every command and group prints its usage with -h, --help or help,
//     from the command tables below, on stdout, and exits 0.

// commands is veilmatch's command table; its usage lists every command.
var commands = &group{
	header: `veilmatch: find where agencies' watchlists overlap without sharing them.

Usage:
`,
	cmds: []subcommand{
		{"dev", cmdDev, "[--data DIR]\trun a key server and a hub on loopback (development)\ncerts --out DIR\tregenerate the development certificates"},
		{"keyserver", cmdKeyserver, "--oprf-key FILE ...\trun the OPRF key server\ninit-key --out FILE [--endorse-with OLD]\tcreate a new OPRF key (endorsed by the one it replaces)\npublic-key --oprf-key FILE\tprint a key's ID=HEX public key, to pin or trust it\nsplit-key --oprf-key FILE --shares N --threshold T --out DIR\tsplit a key into shares for T-of-N key servers (tokens unchanged)\ndkg init|deal|complain|reveal|finish ...\tmake a T-of-N key no machine ever holds whole (a key ceremony)\nreshare propose|init|deal|complain|reveal|finish ...\tmove a threshold key to new holders (tokens unchanged)"},
		{"hub", cmdHub, "--data DIR ...\trun the hub\nbackup --data DIR --out FILE\ta consistent copy of a running hub's SQLite store\nrestore --from FILE --data DIR\tput a backup in place (the hub stopped)\nmigrate --from DIR --to DSN\tcopy a SQLite hub into PostgreSQL (same decision log root)"},
		{"certs", certsCommands.run, certsCommands.names() + " ..."},
		{"agency", agencyCommands.run, agencyCommands.names() + " ..."},
		{"policy", policyCommands.run, policyCommands.names() + " ..."},
		{"audit", auditCommands.run, auditCommands.names() + " ..."},
		{"bench", cmdBench, "[--large]\tmeasure the pipeline against the crypto's limit"},
		{"pdq", pdqCommands.run, pdqCommands.names() + " ..."},
		{"version", cmdVersion, ""},
	},
	footer: `
Global flags, before the command:
  --log-format text|json   log format on stderr (default $VEILMATCH_LOG_FORMAT, else text)
The log level is VEILMATCH_LOG_LEVEL: debug, info (default), warn or error.

Example (two terminals):
  veilmatch dev
  veilmatch agency publish --as police-gb --list suspects --kind phone \
      --category suspect --region GB examples/trafficking-ring/police-gb.csv

Run 'veilmatch COMMAND -h' for a command's flags.
`,
}

// group is a command with subcommands, dispatched by name. Its usage lists
// them from the table, so help cannot drift from the commands.
type group struct {
	// name is the group's command ("agency"); empty for veilmatch itself,
	// whose usage lists full command lines.
	name string
	// header and footer frame the list of commands; header defaults to
	// "Usage: veilmatch NAME COMMAND [flags]".
	header, footer string
	cmds           []subcommand
}

// subcommand is one command of a group.
type subcommand struct {
	name string
	run  command
	// usage is how the group's usage lists the command: one line per
	// form, "ARGS\tWHAT IT DOES", ARGS following the name. A later line
	// without a tab continues the description above it.
	usage string
}

// run runs the command args name. "help", -h and --help print the usage on
// stdout ("help COMMAND" runs COMMAND -h); no command or an unknown one is
// a usage error, with the usage on stderr.
func (g *group) run(ctx context.Context, e env, args []string) error {
	prefix, path := "", "veilmatch"
	if g.name != "" {
		prefix, path = g.name+": ", path+" "+g.name
	}
	if len(args) == 0 {
		g.usage(e.stderr)
		return usagef("", "%sno command given", prefix)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return g.run(ctx, e, []string{args[1], "-h"})
		}
		g.usage(e.stdout)
		return nil
	}
	for _, c := range g.cmds {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	g.usage(e.stderr)
	return usagef("run '"+path+" help' for the list of commands", "%sunknown command %q", prefix, args[0])
}

// names returns the commands as "a|b|c".
func (g *group) names() string {
	names := make([]string, len(g.cmds))
	for i, c := range g.cmds {
		names[i] = c.name
	}
	return strings.Join(names, "|")
}

// usage writes the header, every command with what it does, aligned, and
// the footer.
func (g *group) usage(w io.Writer) {
	header := g.header
	if header == "" {
		header = fmt.Sprintf("Usage: veilmatch %s COMMAND [flags]\n\nCommands:\n", g.name)
	}
	type row struct{ left, does string }
	var rows []row
	width := 0
	for _, c := range g.cmds {
		name := c.name
		if g.name == "" {
			name = "veilmatch " + name
		}
		for i, line := range strings.Split(c.usage, "\n") {
			args, does, ok := strings.Cut(line, "\t")
			r := row{left: strings.TrimSpace(name + " " + args), does: does}
			if !ok && i > 0 {
				r = row{does: line}
			}
			if r.does != "" {
				width = max(width, len(r.left))
			}
			rows = append(rows, r)
		}
	}
	fmt.Fprint(w, header)
	for _, r := range rows {
		if r.does == "" {
			fmt.Fprintf(w, "  %s\n", r.left)
		} else {
			fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.does)
		}
	}
	fmt.Fprint(w, g.footer)
}

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

// run parses the global flags, sets up logging and runs the command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("veilmatch", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the usage and errors are printed below
	logFormat := fs.String("log-format", cmp.Or(os.Getenv("VEILMATCH_LOG_FORMAT"), "text"), "")
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commands.usage(stdout)
			return nil
		}
		commands.usage(stderr)
		return usagef("only --log-format goes before the command; run 'veilmatch help' for the usage", "%v", err)
	}
	if err := setupLogging(stderr, *logFormat); err != nil {
		return err
	}
	if *showVersion {
		return cmdVersion(ctx, e, nil)
	}
	return commands.run(ctx, e, fs.Args())
}

// buildVersion is the release version, stamped at build time with
// -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion string

func cmdVersion(_ context.Context, e env, _ []string) error {
	fmt.Fprintln(e.stdout, "veilmatch", version())
	return nil
}

// version returns the stamped version, else the module version or, when
// the build has none, the VCS revision; then the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return cmp.Or(buildVersion, "(unknown)")
	}
	v := buildVersion
	if v == "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev string
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			rev = s.Value
		}
	}
	switch {
	case v == "":
		v = cmp.Or(rev, "(devel)")
	case rev != "":
		v += " " + rev
	}
	return v + " " + bi.GoVersion
}

// logLevels are the values VEILMATCH_LOG_LEVEL may take.
var logLevels = []string{"debug", "info", "warn", "error"}

// setupLogging installs the process's default logger on w: text or json,
// at the level VEILMATCH_LOG_LEVEL names (default info).
func setupLogging(w io.Writer, format string) error {
	level := slog.LevelInfo
	if s := os.Getenv("VEILMATCH_LOG_LEVEL"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return usagef("", "VEILMATCH_LOG_LEVEL must be %s, got %q", orList(logLevels), s)
		}
	}
	if err := checkOneOf("the log format (--log-format, VEILMATCH_LOG_FORMAT)", format, "text", "json"); err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: level}
	h := slog.Handler(slog.NewTextHandler(w, opts))
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	slog.SetDefault(slog.New(h))
	return nil
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

// renamed registers old as the deprecated name of flag name on fs: it sets
// the same value and warns on fs's output. Renamed flags keep working for
// one release.
func renamed(fs *flag.FlagSet, old, name string) {
	fs.Var(deprecatedFlag{fs.Lookup(name).Value, func() {
		fmt.Fprintf(fs.Output(), "veilmatch: warning: --%s is deprecated; use --%s\n", old, name)
	}}, old, "deprecated: use --"+name)
}

// deprecatedFlag is the value of a renamed flag's old name.
type deprecatedFlag struct {
	flag.Value
	warn func()
}

func (d deprecatedFlag) Set(s string) error {
	d.warn()
	return d.Value.Set(s)
}

// String implements flag.Value; the flag package also calls it on a zero
// deprecatedFlag, to find the default, which must not panic.
func (d deprecatedFlag) String() string {
	if d.Value == nil {
		return ""
	}
	return d.Value.String()
}

// IsBoolFlag keeps a renamed boolean flag usable without a value.
func (d deprecatedFlag) IsBoolFlag() bool {
	b, ok := d.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
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

// checkOneOf returns a usage error naming the valid values unless v is one
// of them or empty (not given).
func checkOneOf(what, v string, valid ...string) error {
	if v == "" || slices.Contains(valid, v) {
		return nil
	}
	return usagef("", "%s must be %s, got %q", what, orList(valid), v)
}

// orList returns "a, b or c".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

// plural returns "1 entry" or "n entries".
func plural[N int | uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
