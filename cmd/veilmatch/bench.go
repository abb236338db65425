package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/veilmatch/veilmatch/cmd/veilmatch/internal/bench"
)

func cmdBench(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "bench", "bench [--agencies N] [--entries N] [--query N] [--overlap F] [--background N] [--images N] [--large] [--store DSN] [--format json] [--data DIR]",
		"veilmatch bench --agencies 4 --entries 20000 --query 50000 --overlap 0.1")
	def, big := bench.DefaultOptions(), bench.LargeOptions()
	var (
		agencies   = fs.Int("agencies", def.Agencies, fmt.Sprintf("synthetic agencies publishing at once (--large: %d)", big.Agencies))
		entries    = fs.Int("entries", def.Entries, fmt.Sprintf("rows per agency list (--large: %d)", big.Entries))
		query      = fs.Int("query", def.Query, fmt.Sprintf("rows of the query list joined by overlaps (--large: %d)", big.Query))
		overlap    = fs.Float64("overlap", def.Overlap, "fraction of every list shared with the other lists, 0 to 1")
		background = fs.Int("background", def.Background, fmt.Sprintf("random tokens written directly into the hub before it starts (--large: %d)", big.Background))
		images     = fs.Int("images", def.Images, fmt.Sprintf("PDQ hashes (4,232 OPRF evaluations each) the images phase publishes (--large: %d)", big.Images))
		large      = fs.Bool("large", false, "large profile: 1M identifiers through the pipeline against a 10M-token hub (takes minutes)")
		storeURL   = fs.String("store", "", "also run the phases that depend on the hub's store on PostgreSQL at this `DSN` (postgres://…), beside SQLite, in a new schema dropped afterwards")
		format     = fs.String("format", "text", "output format: text or json")
		dir        = fs.String("data", "", "keep the run's key, hub data and agency state in data `DIR` (new or empty; default: a temporary directory, removed)")
	)
	renamed(fs, "dir", "data")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("run 'veilmatch bench -h' for the flags", "bench takes no arguments, got %q", pos[0])
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	o := def
	if *large {
		o = big
	}
	// Flags given explicitly override the profile's values.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "agencies":
			o.Agencies = *agencies
		case "entries":
			o.Entries = *entries
		case "query":
			o.Query = *query
		case "overlap":
			o.Overlap = *overlap
		case "background":
			o.Background = *background
		case "images":
			o.Images = *images
		}
	})
	o.Dir, o.Store = *dir, *storeURL
	if err := o.Validate(); err != nil {
		return usagef("run 'veilmatch bench -h' for the flags", "%v", err)
	}
	rep, err := bench.Run(ctx, o, e.stderr)
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(e.stdout, rep)
	}
	return rep.WriteTable(e.stdout)
}
