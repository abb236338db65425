package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/veilmatch/veilmatch/client"
)

func cmdWatch(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "watch", "agency watch --as ID [--list NAME] --purpose TEXT --case REF [--once] [--format json]",
		"veilmatch agency watch --as police-gb --list suspects --purpose investigation --case GB-2026-0042 --format json", true)
	list := a.fs.String("list", "", "watch only your list `NAME` (default: all your lists)")
	purpose := a.fs.String("purpose", "", "why you ask: investigation, missing_person_search, victim_support, research")
	caseRef := a.fs.String("case", "", "case reference (required for law enforcement)")
	once := a.fs.Bool("once", false, "print the alerts pending since the last watch and exit (for a scheduled job)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if err := checkFormat(a.format); err != nil {
		return err
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	enc := json.NewEncoder(e.stdout)
	err = c.Watch(ctx, client.WatchOptions{List: *list, Query: client.Query{Purpose: *purpose, CaseRef: *caseRef}, Once: *once}, func(al client.Alert) error {
		if a.format == "json" {
			return enc.Encode(al)
		}
		_, err := fmt.Fprintln(e.stdout, alertLine(al))
		return err
	})
	return a.id.explain(err)
}

// alertLine is an alert in one line of text.
func alertLine(a client.Alert) string {
	switch a.Event {
	case client.AlertCount:
		return fmt.Sprintf("count %s: %d of your entries of list %s newly match lists of %s (decision %s)", a.Level, a.Matches, a.List, a.Class, a.DecisionID)
	case client.AlertRetraction:
		return fmt.Sprintf("retraction: list %s line %d %s no longer matches: the holder withdrew its entry (decision %s)", a.List, a.Line, a.Value, a.DecisionID)
	}
	return fmt.Sprintf("match %s: list %s line %d %s: %s (decision %s)", a.Level, a.List, a.Line, a.Value, holder(a.Counterparty, a.LiaisonContact), a.DecisionID)
}

// entryFlags name one entry of one of the agency's lists.
type entryFlags struct {
	list, value string
	line        int
}

func (f *entryFlags) register(a *agencyFlags) {
	a.fs.StringVar(&f.list, "list", "", "your list `NAME`")
	a.fs.IntVar(&f.line, "line", 0, "the entry at line `N` of the file you published")
	a.fs.StringVar(&f.value, "value", "", "the entry with this canonical `VALUE` (as overlaps prints it)")
}

func (f *entryFlags) entry() (client.Entry, error) {
	switch {
	case f.list == "":
		return client.Entry{}, usagef("", "--list is required")
	case (f.line == 0) == (f.value == ""):
		return client.Entry{}, usagef("", "give exactly one of --line and --value")
	}
	return client.Entry{List: f.list, Line: f.line, Value: f.value}, nil
}

func cmdRetract(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "retract", "agency retract --as ID --list NAME (--line N | --value V) --reason TEXT",
		"veilmatch agency retract --as police-gb --list suspects --line 4 --reason 'number reassigned to a new subscriber'", true)
	var ef entryFlags
	ef.register(a)
	reason := a.fs.String("reason", "", "why the entry is withdrawn (required; goes to the decision log)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	en, err := ef.entry()
	if err != nil {
		return err
	}
	if *reason == "" {
		return usagef("", "--reason is required")
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Retract(ctx, en, *reason)
	if err != nil {
		return a.id.explain(err)
	}
	if a.format == "json" {
		return writeJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "retracted list %s line %d %s (decision %s): it no longer matches; agencies alerted of it are told\n", r.List, r.Line, r.Value, r.DecisionID)
	return nil
}

func cmdUnretract(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "unretract", "agency unretract --as ID --list NAME (--line N | --value V)",
		"veilmatch agency unretract --as police-gb --list suspects --line 4", false)
	var ef entryFlags
	ef.register(a)
	if _, err := a.parse(args); err != nil {
		return err
	}
	en, err := ef.entry()
	if err != nil {
		return err
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	id, err := c.UndoRetraction(ctx, en)
	if err != nil {
		return a.id.explain(err)
	}
	what := fmt.Sprintf("line %d", en.Line)
	if en.Line == 0 {
		what = en.Value
	}
	fmt.Fprintf(e.stdout, "undid the retraction of list %s %s (decision %s): the entry matches again\n", en.List, what, id)
	return nil
}

func cmdRetractions(ctx context.Context, e env, args []string) error {
	a := newAgencyFlags(e, "retractions", "agency retractions --as ID [--format json]", "veilmatch agency retractions --as police-gb", true)
	if _, err := a.parse(args); err != nil {
		return err
	}
	c, err := a.id.client(e, false)
	if err != nil {
		return err
	}
	defer c.Close()
	rs, err := c.Retractions(ctx)
	if err != nil {
		return a.id.explain(err)
	}
	if a.format == "json" {
		return writeJSON(e.stdout, rs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tLINE\tVALUE\tWHEN\tREASON")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.List, r.Line, r.Value, r.Time.UTC().Format("2006-01-02T15:04:05Z"), r.Reason)
	}
	return tw.Flush()
}
