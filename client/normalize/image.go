package normalize

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/veilmatch/veilmatch/client/pdq"
)

// hashImage returns the PDQ hash of the image at path (relative to the
// base directory), labelled with the path, or the reason it is refused:
// it cannot be read or decoded, or its quality is below the floor. The
// reason names the path, which is the agency's own file, not an
// identifier.
func (n *normalizer) hashImage(path string) (Value, error) {
	path = strings.TrimSpace(path)
	full := path
	if n.baseDir != "" && !filepath.IsAbs(path) {
		full = filepath.Join(n.baseDir, path)
	}
	h, q, err := pdq.FromFile(full)
	if err != nil {
		return Value{}, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "pdq: "))
	}
	if q < n.minQuality {
		return Value{}, fmt.Errorf("%s: PDQ quality %d is below the floor of %d (a flat or tiny image would match unrelated ones)", path, q, n.minQuality)
	}
	return Value{Canonical: h.String(), Label: path}, nil
}

// ImageDirCSV returns a CSV with a header "path" and one row per image in
// dir and its subdirectories (by extension, see pdq.IsImageName), in
// lexical order, with its path relative to dir: the input of kind Image
// for a directory, read with Options.BaseDir = dir, so that reports name
// each image by its line and path.
func ImageDirCSV(dir string) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"path"})
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !pdq.IsImageName(p) {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return w.Write([]string{rel})
	})
	if err != nil {
		return nil, fmt.Errorf("normalize: read directory %s: %w", dir, err)
	}
	w.Flush()
	return b.Bytes(), w.Error()
}
