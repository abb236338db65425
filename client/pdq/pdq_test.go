package pdq

import (
	"bufio"
	"encoding/binary"
	"hash/fnv"
	"image"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// imageRoot is where the reference images are: testdata, which holds all
// 44 of Meta's, or another copy of them at $PDQ_IMAGES.
func imageRoot() string {
	if d := os.Getenv("PDQ_IMAGES"); d != "" {
		return d
	}
	return "testdata"
}

// readTable reads a testdata table: one "path field field" line per
// image, # comments.
func readTable(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("%s: bad line %q", name, line)
		}
		rows = append(rows, fields)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func mustParse(t *testing.T, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMatchesCReference: every image hashes bit for bit as Meta's C++
// pdq-photo-hasher hashes the same decoded pixels (testdata/expected.txt).
func TestMatchesCReference(t *testing.T) {
	root := imageRoot()
	pinned := map[string]bool{}
	checked := 0
	for _, row := range readTable(t, "expected.txt") {
		path, want, wantQ := row[0], mustParse(t, row[1]), row[2]
		pinned[path] = true
		var (
			h   Hash
			q   int
			err error
		)
		if name, ok := strings.CutPrefix(path, "synthetic/"); ok {
			h, q, err = FromImage(synthetic(name))
		} else {
			h, q, err = FromFile(filepath.Join(root, filepath.FromSlash(path)))
		}
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		checked++
		if h != want || strconv.Itoa(q) != wantQ {
			t.Errorf("%s: got %s quality %d, C++ reference %s quality %s (%d bits apart)", path, h, q, want, wantQ, Distance(h, want))
		}
	}
	t.Logf("%d images bit-exact with the C++ reference", checked)
	if files := len(pinned) - synthetics(pinned); files != 44 {
		t.Errorf("expected.txt pins %d of Meta's reference images, want all 44", files)
	}
	// Every image in testdata is pinned.
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !IsImageName(p) {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		if !pinned[filepath.ToSlash(rel)] {
			t.Errorf("%s has no line in testdata/expected.txt", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// synthetics counts the generated images among paths.
func synthetics(paths map[string]bool) int {
	n := 0
	for p := range paths {
		if strings.HasPrefix(p, "synthetic/") {
			n++
		}
	}
	return n
}

// decoderOutliers are images whose only published C++ hash (the old
// pdq/cpp/bin/README.md list) is more than 10 bits from ours: 12 each. The
// pixels Go decodes hash bit-exactly in the C++ (TestMatchesCReference);
// the difference is the JPEG decoder, which the 512×512 nearest-neighbour
// pre-resize does not average out. The same list is 10 bits from Meta's own
// newer C++ hash (pdq/wasm) of the byte-identical bridge-1-original.jpg,
// which ours equals. They are held to 16 bits, the tolerance of Meta's
// Python tests for these images.
var decoderOutliers = map[string]bool{
	"reg-test-input/dih/bridge-2-rotate-90.jpg": true,
	"reg-test-input/dih/bridge-6-flipy.jpg":     true,
}

// TestMetaPublished applies Meta's conformance rule to the hashes Meta
// published for these images: within 10 bits where quality is 80 or more.
func TestMetaPublished(t *testing.T) {
	root := imageRoot()
	checked, exact := 0, 0
	for _, row := range readTable(t, "meta_expected.txt") {
		path, want := row[0], mustParse(t, row[1])
		file := filepath.Join(root, filepath.FromSlash(path))
		if _, err := os.Stat(file); err != nil {
			t.Logf("%s: not present, skipped", path)
			continue
		}
		h, q, err := FromFile(file)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		checked++
		d := Distance(h, want)
		if d == 0 {
			exact++
		}
		t.Logf("%-45s quality %3d, %2d bits from Meta's (%s)", path, q, d, row[2])
		if q >= 80 && d > 10 && decoderOutliers[path] && d <= 16 {
			t.Logf("%s: %d bits: over Meta's 10, a known decoder difference (see decoderOutliers)", path, d)
			continue
		}
		if q >= 80 && d > 10 {
			t.Errorf("%s: %d bits from Meta's published %s (quality %d; the tolerance is 10)", path, d, want, q)
		}
	}
	t.Logf("%d of %d equal to Meta's published hash", exact, checked)
	if checked == 0 {
		t.Error("no image checked")
	}
}

func TestDCTMatrixMatchesC(t *testing.T) {
	// FNV-1a 64 of the little-endian float bits of the C++ dct_matrix_64
	// (g++, glibc cos), printed by a copy of its initialiser.
	const want = 0x4d9a13ea83b0b0c5
	f := fnv.New64a()
	for _, v := range dctMatrix {
		f.Write(binary.LittleEndian.AppendUint32(nil, mathFloat32bits(v)))
	}
	if got := f.Sum64(); got != want {
		t.Errorf("DCT matrix checksum %x, C++ %x", got, uint64(want))
	}
}

func TestHashStringRoundTrip(t *testing.T) {
	const s = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"
	h := mustParse(t, s)
	if h.String() != s {
		t.Errorf("String() = %s, want %s", h, s)
	}
	if h[0] != 0xd8 || h[31] != 0x22 {
		t.Errorf("byte order: %x %x", h[0], h[31])
	}
	if u := mustParse(t, strings.ToUpper(s)); u != h {
		t.Error("upper-case hex parses differently")
	}
	// Bit k is 1<<k of the 256-bit number the hex spells, as in Meta's
	// Hash256 (word k/16, bit k%16, words printed 15 to 0).
	var one Hash
	one.setBit(0)
	if one.String() != strings.Repeat("0", 63)+"1" {
		t.Errorf("bit 0: %s", one)
	}
	var top Hash
	top.setBit(255)
	if top.String() != "8"+strings.Repeat("0", 63) {
		t.Errorf("bit 255: %s", top)
	}
	var b17 Hash
	b17.setBit(17)
	if b17.String() != strings.Repeat("0", 59)+"20000" {
		t.Errorf("bit 17: %s", b17)
	}
}

func TestParseHashErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"d8f8",
		strings.Repeat("0", 63),
		strings.Repeat("0", 65),
		strings.Repeat("0", 63) + "g",
		strings.Repeat("0", 62) + " 1",
		"0x" + strings.Repeat("0", 62),
	} {
		if h, err := ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q) = %s, want an error", s, h)
		} else if !strings.Contains(err.Error(), "pdq: parse hash") {
			t.Errorf("ParseHash(%q): error %q lacks context", s, err)
		}
	}
}

func TestDistance(t *testing.T) {
	var zero, ones Hash
	for i := range ones {
		ones[i] = 0xff
	}
	a := mustParse(t, "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22")
	b := mustParse(t, "d8f8f0cee0f4a84f0637022a038f67f0b36e2ed596631e1d33e6339c4e9c9b22")
	for _, c := range []struct {
		a, b Hash
		want int
	}{
		{zero, zero, 0}, {zero, ones, 256}, {ones, zero, 256}, {a, a, 0}, {a, b, 2}, {b, a, 2},
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestNearDuplicates: edited copies of a photo are within Meta's match
// threshold of 31 bits; unrelated photos are far from each other.
func TestNearDuplicates(t *testing.T) {
	orig, _, err := FromFile("testdata/bridge-mods/aaa-orig.jpg")
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := filepath.Glob("testdata/bridge-mods/*.jpg")
	if len(mods) < 10 {
		t.Fatalf("only %d bridge-mods images", len(mods))
	}
	for _, m := range mods {
		h, _, err := FromFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if d := Distance(orig, h); d > 31 {
			t.Errorf("%s: %d bits from aaa-orig.jpg, want <= 31", m, d)
		}
	}
	photos, _ := filepath.Glob("testdata/reg-test-input/labelme-subset/*.jpg")
	var hashes []Hash
	for _, p := range photos {
		h, _, err := FromFile(p)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	pairs, total := 0, 0
	for i := range hashes {
		if d := Distance(orig, hashes[i]); d <= 64 {
			t.Errorf("%s: %d bits from the bridge, want > 64", photos[i], d)
		}
		for j := i + 1; j < len(hashes); j++ {
			d := Distance(hashes[i], hashes[j])
			if d <= 64 {
				t.Errorf("%s and %s: %d bits apart, want > 64", photos[i], photos[j], d)
			}
			pairs++
			total += d
		}
	}
	if pairs < 20 {
		t.Fatalf("only %d pairs", pairs)
	}
	t.Logf("unrelated photos: mean distance %.1f bits over %d pairs", float64(total)/float64(pairs), pairs)
}

func TestFlatImageLowQuality(t *testing.T) {
	for _, img := range []image.Image{
		fill(image.NewGray(image.Rect(0, 0, 300, 200)), color.Gray{128}),
		fill(image.NewNRGBA(image.Rect(0, 0, 1000, 700)), color.NRGBA{200, 30, 30, 255}),
		fill(image.NewRGBA(image.Rect(0, 0, 64, 64)), color.White),
	} {
		_, q, err := FromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		if q >= 50 {
			t.Errorf("flat %T %v: quality %d, want < 50", img, img.Bounds(), q)
		}
	}
	// A textured image has full quality.
	if _, q, _ := FromImage(synthetic("rgb-64x64")); q < 80 {
		t.Errorf("textured image: quality %d", q)
	}
}

func fill[M interface {
	image.Image
	Set(x, y int, c color.Color)
}](m M, c color.Color) M {
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			m.Set(x, y, c)
		}
	}
	return m
}

func TestTinyAndNil(t *testing.T) {
	h, q, err := FromImage(image.NewRGBA(image.Rect(0, 0, 4, 100)))
	if err != nil || h != (Hash{}) || q != 0 {
		t.Errorf("4×100: %s %d %v, want zero hash, quality 0", h, q, err)
	}
	if _, _, err := FromImage(nil); err == nil {
		t.Error("nil image: no error")
	}
	if _, _, err := FromImage(image.NewUniform(color.White)); err == nil {
		t.Error("unbounded image: no error")
	}
}

// TestColourModels: alpha is ignored, premultiplied or not; an RGB image
// whose pixels are all grey hashes like the grey image; sub-images hash
// like a copy at the origin.
func TestColourModels(t *testing.T) {
	src := synthetic("rgb-700x300").(*image.NRGBA) // alpha varies
	want, wantQ, _ := FromImage(src)

	opaque := image.NewNRGBA(src.Bounds())
	rgba := image.NewRGBA(src.Bounds())
	for i := 0; i < len(src.Pix); i += 4 {
		copy(opaque.Pix[i:], src.Pix[i:i+3])
		opaque.Pix[i+3] = 0xff
		copy(rgba.Pix[i:], src.Pix[i:i+3])
		rgba.Pix[i+3] = 0xff
	}
	for _, img := range []image.Image{opaque, rgba} {
		if h, q, _ := FromImage(img); h != want || q != wantQ {
			t.Errorf("%T: %s %d, want %s %d", img, h, q, want, wantQ)
		}
	}

	grey := synthetic("grey-6x900").(*image.Gray)
	wantGrey, _, _ := FromImage(grey)
	asRGB := image.NewNRGBA(grey.Bounds())
	for i, v := range grey.Pix {
		asRGB.Pix[4*i], asRGB.Pix[4*i+1], asRGB.Pix[4*i+2], asRGB.Pix[4*i+3] = v, v, v, 0x80
	}
	if h, _, _ := FromImage(asRGB); h != wantGrey {
		t.Errorf("grey as NRGBA: %s, want %s", h, wantGrey)
	}

	sub := opaque.SubImage(image.Rect(50, 40, 650, 290))
	moved := image.NewNRGBA(image.Rect(0, 0, 600, 250))
	for y := range 250 {
		for x := range 600 {
			moved.Set(x, y, sub.At(x+50, y+40))
		}
	}
	h1, q1, _ := FromImage(sub)
	h2, q2, _ := FromImage(moved)
	if h1 != h2 || q1 != q2 {
		t.Errorf("sub-image %s %d, copy %s %d", h1, q1, h2, q2)
	}
}

func TestFromFileErrors(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.jpg")
	if err := os.WriteFile(notImage, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.jpg")
	data, err := os.ReadFile("testdata/reg-test-input/labelme-subset/q0003.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "missing.png"), notImage, truncated} {
		if _, _, err := FromFile(p); err == nil {
			t.Errorf("%s: no error", p)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", p, err)
		}
	}
}

var (
	benchFile = "testdata/bridge-mods/aaa-orig.jpg" // 1600×1004 JPEG, 361 KB
	sinkHash  Hash
)

func BenchmarkDecode(b *testing.B) {
	for b.Loop() {
		if _, err := decodeFile(benchFile); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	img, err := decodeFile(benchFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		sinkHash, _, _ = FromImage(img)
	}
}

func BenchmarkFromFile(b *testing.B) {
	for b.Loop() {
		var err error
		if sinkHash, _, err = FromFile(benchFile); err != nil {
			b.Fatal(err)
		}
	}
}

func mathFloat32bits(f float32) uint32 { return math.Float32bits(f) }
