// Package hashlists holds real PDQ hashes that Meta publishes with its
// reference implementations (BSD licence, see LICENSE and README.md), for
// measuring near-duplicate matching on real-looking hashes: the hashes
// Meta's own matching regression tests search, and per-frame hashes of
// four videos. It does not import client/pdq, so that package's tests can
// use it; a hash is returned as the 32 bytes of pdq.Hash.
package hashlists

import (
	"bufio"
	"embed"
	"fmt"
	"strconv"
	"strings"

	"encoding/hex"
)

//go:embed *.txt
var files embed.FS

// Haystack returns the distinct hashes of haystack.txt and needles.txt,
// in file order: photos, with clusters of near-duplicates.
func Haystack() ([][32]byte, error) {
	return read("haystack.txt", "needles.txt")
}

// Frames returns the distinct hashes of the four vPDQ frame lists, frames
// of quality below 50 left out: frames of one video are often
// near-duplicates of each other.
func Frames() ([][32]byte, error) {
	return read("chair-orig-22-hd-no-bar.txt", "chair-19-sd-bar.txt", "pattern-hd-no-bar.txt", "test-padded-dimensions.txt")
}

// read returns the distinct hashes of the named files: the first 64-hex
// field of each line ("hash" lines, or vPDQ's "frame,quality,hash,time"
// lines, whose frames of quality below 50 are skipped).
func read(names ...string) ([][32]byte, error) {
	seen := map[[32]byte]bool{}
	var out [][32]byte
	for _, name := range names {
		f, err := files.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			fields := strings.FieldsFunc(sc.Text(), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
			switch len(fields) {
			case 0:
				continue
			case 1:
			case 4:
				if q, err := strconv.Atoi(fields[1]); err != nil || q < 50 {
					continue
				}
				fields = fields[2:]
			default:
				f.Close()
				return nil, fmt.Errorf("hashlists: %s:%d: want a hash or frame,quality,hash,time", name, n)
			}
			var h [32]byte
			if len(fields[0]) != 64 {
				f.Close()
				return nil, fmt.Errorf("hashlists: %s:%d: %d hex digits, want 64", name, n, len(fields[0]))
			}
			if _, err := hex.Decode(h[:], []byte(fields[0])); err != nil {
				f.Close()
				return nil, fmt.Errorf("hashlists: %s:%d: %w", name, n, err)
			}
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hashlists: %s: %w", name, err)
		}
	}
	return out, nil
}
