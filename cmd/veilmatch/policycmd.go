package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/veilmatch/veilmatch/policy"
)

// policyCommands are the commands that test and try the disclosure policy.
var policyCommands = &group{
	name: "policy",
	cmds: []subcommand{
		{"test", cmdPolicyTest, "\trun the policy bundle's Rego tests (built-in bundle, or --policy-dir DIR)"},
		{"eval", cmdPolicyEval, "\tdry-run one decision: print the level or verdict and the rules that fired"},
	},
}

func cmdPolicyTest(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "policy test", "policy test [--policy-dir DIR] [-v]", "veilmatch policy test --policy-dir ./policy")
	dir := fs.String("policy-dir", "", "policy bundle `DIR` (default: the built-in bundle)")
	renamed(fs, "dir", "policy-dir")
	verbose := fs.Bool("v", false, "print every test, not only failures")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	rep, err := policy.RunTests(ctx, *dir)
	if err != nil {
		return err
	}
	for _, r := range rep.Results {
		switch {
		case !r.Pass && !r.Skip:
			fmt.Fprintf(e.stdout, "FAIL %s (%s)\n", r.Name, r.Location)
			if r.Err != "" {
				fmt.Fprintf(e.stdout, "     %s\n", r.Err)
			}
			if r.Output != "" {
				fmt.Fprintf(e.stdout, "     %s\n", strings.ReplaceAll(strings.TrimSpace(r.Output), "\n", "\n     "))
			}
		case *verbose:
			fmt.Fprintf(e.stdout, "PASS %s (%s)\n", r.Name, r.Duration)
		}
	}
	fmt.Fprintf(e.stdout, "policy revision %s: %d passed, %d failed, %d skipped\n", rep.Revision, rep.Passed, rep.Failed, rep.Skipped)
	if !rep.OK() {
		return errors.New("policy tests failed")
	}
	return nil
}

func cmdPolicyEval(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "policy eval", "policy eval --input FILE [--policy-dir DIR] [--query Q] [--format json]",
		"veilmatch policy eval --input decision.json")
	input := fs.String("input", "", "input document `FILE` (JSON); with a counterparty it is a disclosure decision, without one an authorization")
	dir := fs.String("policy-dir", "", "policy bundle `DIR` (default: the built-in bundle)")
	renamed(fs, "dir", "policy-dir")
	query := fs.String("query", "", "Rego query (default: data.veilmatch.disclosure.decision or data.veilmatch.authz.decision)")
	format := fs.String("format", "text", "output format: text or json")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *input == "" {
		return usagef("see policy/README.md for the input shapes", "--input is required")
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	in, err := os.ReadFile(*input)
	if err != nil {
		return err
	}
	eng, err := policy.New(ctx, policy.Options{Dir: *dir})
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	res, err := eng.DryRun(ctx, *query, in)
	if err != nil {
		return fmt.Errorf("input %s: %w", *input, err)
	}
	if *format == "json" {
		return writeJSON(e.stdout, map[string]any{"query": res.Query, "revision": res.Revision, "result": res.Value})
	}
	printDryRun(e.stdout, res)
	return nil
}

// printDryRun writes a policy decision as the hub would take it.
func printDryRun(w io.Writer, res policy.DryRunResult) {
	defer fmt.Fprintf(w, "policy revision %s\n", res.Revision)
	switch a, d := res.Authorization, res.Disclosure; {
	case !res.Defined:
		fmt.Fprintln(w, "undefined: the hub would deny (fail closed)")
	case res.Malformed != nil:
		fmt.Fprintf(w, "%s\nmalformed: %v; the hub would deny (fail closed)\n", res.Value, res.Malformed)
	case d != nil:
		fmt.Fprintf(w, "level: %s\n", d.Level)
		for _, kv := range [][2]string{{"class", d.Class}, {"liaison_contact", d.LiaisonContact}, {"contact", d.Contact}} {
			if kv[1] != "" {
				fmt.Fprintf(w, "%s: %s\n", kv[0], kv[1])
			}
		}
		fmt.Fprintf(w, "rules: %s\n", strings.Join(d.Rules, ", "))
	case a != nil:
		fmt.Fprintf(w, "allow: %t\nmax_level: %s\n", a.Allow, a.MaxLevel)
		for _, r := range a.Reasons {
			fmt.Fprintf(w, "reason: %s\n", r)
		}
		fmt.Fprintf(w, "rules: %s\n", strings.Join(a.Rules, ", "))
	default:
		fmt.Fprintf(w, "%s\n", res.Value)
	}
}
