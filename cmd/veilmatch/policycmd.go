package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/veilmatch/veilmatch/policy"
)

// policyCommands are the commands that test and try the disclosure policy.
var policyCommands = &group{
	name: "policy",
	cmds: []subcommand{
		{"test", cmdPolicyTest, "\trun the policy bundle's Rego tests (built-in bundle, or --dir DIR)"},
		{"eval", cmdPolicyEval, "\tdry-run one decision: print the level or verdict and the rules that fired"},
	},
}

func cmdPolicyTest(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "policy test", "policy test [--dir DIR] [-v]", "veilmatch policy test --dir ./policy")
	dir := fs.String("dir", "", "policy bundle `DIR` (default: the built-in bundle)")
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
	fs := newFlagSet(e, "policy eval", "policy eval --input FILE [--dir DIR] [--query Q] [--format json]",
		"veilmatch policy eval --input decision.json")
	input := fs.String("input", "", "input document `FILE` (JSON); with a counterparty it is a disclosure decision, without one an authorization")
	dir := fs.String("dir", "", "policy bundle `DIR` (default: the built-in bundle)")
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
	var probe struct {
		Counterparty json.RawMessage `json:"counterparty"`
	}
	if err := json.Unmarshal(in, &probe); err != nil {
		return fmt.Errorf("input %s: %w", *input, err)
	}
	if *query == "" {
		*query = "data.veilmatch.authz.decision"
		if probe.Counterparty != nil {
			*query = "data.veilmatch.disclosure.decision"
		}
	}
	eng, err := policy.New(ctx, policy.Options{Dir: *dir})
	if err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	res, err := eng.Eval(ctx, *query, in)
	if err != nil {
		return err
	}
	var rs []struct {
		Expressions []struct {
			Value json.RawMessage `json:"value"`
		} `json:"expressions"`
	}
	if err := json.Unmarshal(res.Results, &rs); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		fmt.Fprintf(e.stdout, "undefined: the hub would deny (fail closed)\npolicy revision %s\n", res.Revision)
		return nil
	}
	value := rs[0].Expressions[0].Value
	if *format == "json" {
		return writeJSON(e.stdout, map[string]any{"query": *query, "revision": res.Revision, "result": value})
	}
	var d struct {
		Level          *string  `json:"level"`
		Allow          *bool    `json:"allow"`
		Rules          []string `json:"rules"`
		Reasons        []string `json:"reasons"`
		MaxLevel       string   `json:"max_level"`
		Class          string   `json:"class"`
		LiaisonContact string   `json:"liaison_contact"`
		Contact        string   `json:"contact"`
	}
	if err := json.Unmarshal(value, &d); err != nil || (d.Level == nil && d.Allow == nil) {
		fmt.Fprintf(e.stdout, "%s\npolicy revision %s\n", value, res.Revision)
		return nil
	}
	if d.Level != nil {
		fmt.Fprintf(e.stdout, "level: %s\n", *d.Level)
		for _, kv := range [][2]string{{"class", d.Class}, {"liaison_contact", d.LiaisonContact}, {"contact", d.Contact}} {
			if kv[1] != "" {
				fmt.Fprintf(e.stdout, "%s: %s\n", kv[0], kv[1])
			}
		}
	} else {
		fmt.Fprintf(e.stdout, "allow: %t\n", *d.Allow)
		if d.MaxLevel != "" {
			fmt.Fprintf(e.stdout, "max_level: %s\n", d.MaxLevel)
		}
		for _, r := range d.Reasons {
			fmt.Fprintf(e.stdout, "reason: %s\n", r)
		}
	}
	fmt.Fprintf(e.stdout, "rules: %s\npolicy revision %s\n", strings.Join(d.Rules, ", "), res.Revision)
	return nil
}
