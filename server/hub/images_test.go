package hub_test

import (
	"bytes"
	"context"
	"database/sql"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/draw"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/server/hub"
)

// pdqImages is client/pdq's copy of Meta's reference images.
const pdqImages = "../../client/pdq/testdata/"

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// transform writes src re-encoded as JPEG at quality q, or, with scale
// not 1, resized by scale as PNG.
func transform(t *testing.T, src, dst string, q int, scale float64) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if scale != 1 {
		b := img.Bounds()
		m := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*scale), int(float64(b.Dy())*scale)))
		draw.CatmullRom.Scale(m, m.Bounds(), img, b, draw.Src, nil)
		err = png.Encode(out, m)
	} else {
		err = jpeg.Encode(out, img, &jpeg.Options{Quality: q})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestImagesNearDuplicates: a police unit publishes a directory of advert
// photos (--kind image); another checks re-encoded, resized and modified
// copies, and publishes them. Each copy finds its original, by the
// checker's own path, at the policy's level, in check and in overlaps on
// both sides; unrelated images find nothing; an image below the quality
// floor is rejected with its reason; no image or hash is sent.
func TestImagesNearDuplicates(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	adverts, seized := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(adverts, "2026"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bridge-mods/aaa-orig.jpg", "misc-images/c.png", "misc-images/wee.jpg", "reg-test-input/labelme-subset/q1050.jpg"} {
		copyFile(t, pdqImages+name, filepath.Join(adverts, "2026", filepath.Base(name)))
	}
	copyFile(t, pdqImages+"misc-images/small.jpg", filepath.Join(adverts, "small.jpg")) // quality 0
	if err := os.WriteFile(filepath.Join(adverts, "notes.txt"), []byte("not an image"), 0o600); err != nil {
		t.Fatal(err)
	}
	us := e.client(t, "police-us")
	res, err := us.Publish(ctx, imageCSV(t, adverts), client.PublishOptions{List: "adverts", Kind: normalize.Image, Category: "suspect",
		Normalize: normalize.Options{BaseDir: adverts}})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if res.List.GetKind() != "pdq" || res.List.GetEntries() != 4 || res.Report.Accepted != 4 || len(res.Report.Rejected) != 1 ||
		!strings.Contains(res.Report.Rejected[0].Reason, "small.jpg: PDQ quality 0 is below the floor of 50") {
		t.Fatalf("publish = %+v, report %+v; want 4 hashes of kind pdq and small.jpg rejected for its quality", res.List, res.Report)
	}

	// The copies: Meta's blurred bridge, c.png as JPEG at quality 30,
	// wee.jpg at 60 %, and two images the police never saw.
	copyFile(t, pdqImages+"bridge-mods/blur-a-lot.jpg", filepath.Join(seized, "a-blurred.jpg"))
	transform(t, pdqImages+"misc-images/c.png", filepath.Join(seized, "b-recompressed.jpg"), 30, 1)
	transform(t, pdqImages+"misc-images/wee.jpg", filepath.Join(seized, "c-smaller.png"), 0, 0.6)
	copyFile(t, pdqImages+"reg-test-input/pen-and-coaster.png", filepath.Join(seized, "d-unrelated.png"))
	copyFile(t, pdqImages+"reg-test-input/labelme-subset/q0746.jpg", filepath.Join(seized, "e-unrelated.jpg"))
	near := []string{"a-blurred.jpg", "b-recompressed.jpg", "c-smaller.png"}

	// Two images per request: the check of five goes in three, each a
	// decision.
	gb := e.client(t, "police-gb", func(c *client.Config) { c.CheckTokens = 2 * token.PDQTokens })
	chk, err := gb.Check(ctx, imageCSV(t, seized), client.CheckOptions{Kind: normalize.Image, Normalize: normalize.Options{BaseDir: seized}}, investigation)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if got := matchedValues(chk); !slices.Equal(got, near) {
		t.Errorf("check matched %v; want %v", got, near)
	}
	for _, m := range chk.Matches {
		if m.Level != "full" || m.Counterparty == nil || m.Counterparty.List != "adverts" || m.EntryRef != uint64(m.Line-2) {
			t.Errorf("check match %+v; want level full against police-us's adverts, entry_ref the row's", m)
		}
	}
	if ids := strings.Split(chk.DecisionID, ","); len(ids) != 3 {
		t.Errorf("check decisions %q; want 3 (five images, two per request)", chk.DecisionID)
	}

	pub, err := gb.Publish(ctx, imageCSV(t, seized), client.PublishOptions{List: "seized", Kind: normalize.Image, Category: "suspect",
		Normalize: normalize.Options{BaseDir: seized}})
	if err != nil || pub.List.GetEntries() != 5 {
		t.Fatalf("publish seized = %+v, %v", pub.List, err)
	}
	ov, err := gb.Overlaps(ctx, "seized", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if got := matchedValues(ov); !slices.Equal(got, near) {
		t.Errorf("overlaps of seized matched %v; want %v", got, near)
	}
	ov, err = us.Overlaps(ctx, "adverts", investigation)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := matchedValues(ov), []string{"2026/aaa-orig.jpg", "2026/c.png", "2026/wee.jpg"}; !slices.Equal(got, want) {
		t.Errorf("overlaps of adverts matched %v; want %v", got, want)
	}
	assertHashTokensSorted(t, filepath.Join(e.dataDir, hub.DBFile))
	if n, err := us.Delete(ctx, "adverts"); err != nil || n != 4 {
		t.Errorf("delete adverts = %d, %v; want its 4 images", n, err)
	}
}

// imageCSV is the CSV of the images in dir, as the CLI makes it for a
// directory.
func imageCSV(t *testing.T, dir string) *bytes.Reader {
	t.Helper()
	b, err := normalize.ImageDirCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// matchedValues are the values of r's matches, sorted.
func matchedValues(r client.Result) []string {
	var vs []string
	for _, m := range r.Matches {
		vs = append(vs, m.Value)
	}
	slices.Sort(vs)
	return vs
}

// assertHashTokensSorted reads the hub's tokens in the order they were
// uploaded: each hash's 4,232 tokens are distinct and sorted, so their
// order at the hub says nothing of which is the hash's own chunk value
// (SECURITY.md).
func assertHashTokensSorted(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id >> 32, ref, token FROM tokens ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type hash struct{ list, ref int64 }
	counts := map[hash]int{}
	last := map[hash][]byte{}
	for rows.Next() {
		var h hash
		var tok []byte
		if err := rows.Scan(&h.list, &h.ref, &tok); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[h]; ok && bytes.Compare(prev, tok) >= 0 {
			t.Fatalf("list version %d, hash %d: token %d is not above the one before it", h.list, h.ref, counts[h])
		}
		last[h] = tok
		counts[h]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for h, n := range counts {
		if n != token.PDQTokens {
			t.Errorf("list version %d, hash %d: %d tokens, want %d", h.list, h.ref, n, token.PDQTokens)
		}
	}
	if len(counts) != 9 {
		t.Errorf("%d hashes at the hub, want 9 (4 adverts, 5 seized)", len(counts))
	}
}
