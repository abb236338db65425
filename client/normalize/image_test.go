package normalize

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pdqTestdata is where client/pdq keeps Meta's reference images.
const pdqTestdata = "../pdq/testdata"

// TestReadCSVImages reads a CSV of image paths relative to its directory:
// each image is hashed as client/pdq does, labelled with its path;
// undecodable files and images below the quality floor are rejected with
// the path and the reason.
func TestReadCSVImages(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.jpg"), []byte("not an image"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(pdqTestdata, "misc-images", "c.png"))
	if err != nil {
		t.Fatal(err)
	}
	csv := "photo\n" + abs + "\nnotes.jpg\nmissing.png\n" + abs + "\n"
	var rows []Row
	rep, err := ReadCSV(strings.NewReader(csv), "", Image, Options{BaseDir: dir}, func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const want = "e4cc89d91c623842f8d1f1d9a398e78c9f199a3bf87925f2b7e11e0bf061b064" // expected.txt
	if len(rows) != 2 || rows[0].Value != want || rows[0].Label != abs || rows[0].Line != 2 || rows[1].Warning != "same value as line 2" {
		t.Fatalf("rows = %+v; want c.png's hash on lines 2 and 5, labelled with its path", rows)
	}
	if len(rep.Rejected) != 2 || rep.Rejected[0].Line != 3 || !strings.Contains(rep.Rejected[0].Reason, "notes.jpg: decode") ||
		rep.Rejected[1].Line != 4 || !strings.Contains(rep.Rejected[1].Reason, "missing.png") {
		t.Errorf("rejected = %+v; want notes.jpg (not an image) and missing.png", rep.Rejected)
	}
	if ListKind := Image.ListKind(); ListKind != "pdq" {
		t.Errorf("Image.ListKind() = %q, want pdq", ListKind)
	}
}

// TestImageQualityFloor rejects an image below the configured floor,
// naming the quality, and accepts it under a lower one.
func TestImageQualityFloor(t *testing.T) {
	path := filepath.Join(pdqTestdata, "misc-images", "c.png") // quality 100
	if _, err := Normalize(Image, path, Options{MinQuality: 100}); err != nil {
		t.Errorf("quality 100 at floor 100: %v", err)
	}
	_, err := Normalize(Image, filepath.Join(pdqTestdata, "misc-images", "small.jpg"), Options{})
	if err == nil || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "below the floor of 50") {
		t.Errorf("small.jpg (quality 0) at the default floor: %v; want rejected for its quality", err)
	}
	if _, err := Normalize(Image, path, Options{MinQuality: 101}); !errors.Is(err, ErrBadQuality) {
		t.Errorf("floor 101: %v; want an options error", err)
	}
}

// identifierKinds are the kinds whose values are identifiers; an image's
// value is a path on the agency's own machine, hashed, which the tests of
// identifiers (never echoed, bounded length, …) do not describe.
var identifierKinds = slices.DeleteFunc(slices.Clone(kinds), func(k Kind) bool { return k == Image })
