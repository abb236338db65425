package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/veilmatch/veilmatch/client/pdq"
)

// pdqCommands are the image-hashing commands: an agency hashes its images
// itself; only hashes ever leave its machine.
var pdqCommands = &group{
	name: "pdq",
	cmds: []subcommand{
		{"hash", cmdPDQHash, "[--format json] FILE|DIR...\tprint the PDQ hash and quality of images (JPEG, PNG, GIF, WebP)"},
	},
}

// pdqResult is one line of `pdq hash --format json`.
type pdqResult struct {
	Path    string `json:"path"`
	PDQ     string `json:"pdq"`
	Quality int    `json:"quality"`
}

func cmdPDQHash(ctx context.Context, e env, args []string) error {
	flags := newFlagSet(e, "pdq hash", "pdq hash [--format json] FILE|DIR...",
		"veilmatch pdq hash --format json photos/")
	format := flags.String("format", "text", "output format: text (HASH QUALITY PATH) or json (one object per line)")
	paths, err := parse(flags, args)
	if err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	if len(paths) == 0 {
		return usagef("run 'veilmatch pdq hash -h' for the usage", "pdq hash: no FILE or DIR given")
	}
	enc := json.NewEncoder(e.stdout)
	hashed, failed := 0, 0
	fail := func(err error) {
		failed++
		fmt.Fprintf(e.stderr, "veilmatch: error: %v\n", err)
	}
	hash := func(path string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, q, err := pdq.FromFile(path)
		if err != nil {
			fail(err)
			return nil
		}
		hashed++
		if *format == "json" {
			return enc.Encode(pdqResult{Path: path, PDQ: h.String(), Quality: q})
		}
		_, err = fmt.Fprintf(e.stdout, "%s %d %s\n", h, q, path)
		return err
	}
	for _, root := range paths {
		// Files named on the command line are hashed whatever their
		// name; in directories, only image extensions, in lexical order.
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fail(err)
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if path != root && !pdq.IsImageName(path) {
				return nil
			}
			return hash(path)
		})
		if err != nil {
			return err
		}
	}
	switch {
	case failed > 0 && hashed == 0:
		return fmt.Errorf("pdq hash: no image could be hashed (%s failed, named above)", plural(failed, "file", "files"))
	case failed > 0:
		return pdqPartial(fmt.Sprintf("pdq hash: %s of %d could not be hashed, named above", plural(failed, "file", "files"), failed+hashed))
	}
	return nil
}

// pdqPartial is the error of a `pdq hash` that hashed some images but not
// all: exit status 3, like rejected rows.
type pdqPartial string

func (p pdqPartial) Error() string        { return string(p) }
func (p pdqPartial) Is(target error) bool { return target == errPartial }
