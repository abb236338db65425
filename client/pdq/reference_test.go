package pdq

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteReferencePNM writes every image under $PDQ_PNM_SRC (default
// testdata) as Go decodes it, full size, to $PDQ_PNM_OUT (default a
// temporary directory) as binary PGM (P5) when all its pixels are grey and
// PPM (P6) otherwise, keeping the relative paths (name.jpg becomes
// name.jpg.pnm), and checks that each file hashes as its image does: the
// reference hashed exactly what Go hashes. It is how testdata/expected.txt
// was made: Meta's pdq-photo-hasher, built from pdq/cpp, hashes such PNM
// files with CImg's own PNM loader and then runs exactly its path for
// decoded images (CImg resize to 512×512, loadFloatLumaFromCImg,
// pdqHash256FromFloatLuma). See testdata/README.md.
//
//	PDQ_PNM_OUT=/tmp/pnm go test ./client/pdq -run TestWriteReferencePNM
func TestWriteReferencePNM(t *testing.T) {
	out := os.Getenv("PDQ_PNM_OUT")
	if out == "" {
		out = t.TempDir()
	}
	same := func(dst string, img image.Image) {
		t.Helper()
		back, err := readPNM(dst)
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		h1, q1, err1 := FromImage(img)
		h2, q2, err2 := FromImage(back)
		if err1 != nil || err2 != nil || h1 != h2 || q1 != q2 {
			t.Errorf("%s hashes to %s %d (%v), its image to %s %d (%v)", dst, h2, q2, err2, h1, q1, err1)
		}
	}
	src := os.Getenv("PDQ_PNM_SRC")
	if src == "" {
		src = "testdata"
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !IsImageName(path) {
			return err
		}
		img, err := decodeFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(out, rel+".pnm")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := writePNM(dst, img); err != nil {
			return err
		}
		same(dst, img)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range syntheticNames {
		dst := filepath.Join(out, "synthetic", name+".pnm")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writePNM(dst, synthetic(name)); err != nil {
			t.Fatal(err)
		}
		same(dst, synthetic(name))
	}
}

// syntheticNames are generated test images that exercise corners of the
// reference: the 64×64 path without filter, the pre-resize upscaling one
// dimension, a thin image, one below the minimum size, odd bounds.
var syntheticNames = []string{"rgb-64x64", "rgb-700x300", "grey-6x900", "rgb-4x40", "ycbcr-513x517", "paletted-129x65"}

// synthetic returns the generated image called name: a deterministic mix
// of gradients and pseudo-random texture.
func synthetic(name string) image.Image {
	var w, h int
	kind, size, _ := strings.Cut(name, "-")
	if _, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil {
		panic(err)
	}
	px := func(x, y, c int) uint8 {
		n := uint32(x*73856093^y*19349663^c*83492791) * 2654435761
		return uint8((x*255/w+y*255/h)/2 + int(n>>28) - 8 + c*20)
	}
	r := image.Rect(3, 5, 3+w, 5+h) // bounds not at the origin
	switch kind {
	case "grey":
		m := image.NewGray(r)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.SetGray(x, y, color.Gray{px(x, y, 0)})
			}
		}
		return m
	case "ycbcr":
		m := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.Y[m.YOffset(x, y)] = px(x, y, 0)
				m.Cb[m.COffset(x, y)] = px(x, y, 1)
				m.Cr[m.COffset(x, y)] = px(x, y, 2)
			}
		}
		return m
	case "paletted":
		pal := make(color.Palette, 64)
		for i := range pal {
			pal[i] = color.NRGBA{uint8(i * 4), uint8(255 - i*4), uint8(i * i), uint8(i * 4)}
		}
		m := image.NewPaletted(r, pal)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.SetColorIndex(x, y, px(x, y, 0)%64)
			}
		}
		return m
	}
	m := image.NewNRGBA(r)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			m.SetNRGBA(x, y, color.NRGBA{px(x, y, 0), px(x, y, 1), px(x, y, 2), uint8(x * y)})
		}
	}
	return m
}

// writePNM writes img's 8-bit pixels, as this package reads them, as
// PGM when grey and PPM otherwise.
func writePNM(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	b := img.Bounds()
	rgb, grey := rgbOf(img)
	if !grey {
		grey = allGrey(rgb, b)
	}
	w := bufio.NewWriter(f)
	magic := "P6"
	if grey {
		magic = "P5"
	}
	fmt.Fprintf(w, "%s\n%d %d\n255\n", magic, b.Dx(), b.Dy())
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl := rgb(x, y)
			if grey {
				w.WriteByte(r)
			} else {
				w.Write([]byte{r, g, bl})
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readPNM reads a binary PGM or PPM of 8-bit samples as writePNM writes
// them.
func readPNM(path string) (image.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var magic string
	var w, h, max int
	n, err := fmt.Sscanf(string(data), "%s\n%d %d\n%d\n", &magic, &w, &h, &max)
	if err != nil || n != 4 || max != 255 {
		return nil, fmt.Errorf("bad PNM header (%v)", err)
	}
	head := len(fmt.Sprintf("%s\n%d %d\n%d\n", magic, w, h, max))
	px := data[head:]
	switch {
	case magic == "P5" && len(px) == w*h:
		return &image.Gray{Pix: px, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	case magic == "P6" && len(px) == 3*w*h:
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range w * h {
			m.Pix[4*i], m.Pix[4*i+1], m.Pix[4*i+2], m.Pix[4*i+3] = px[3*i], px[3*i+1], px[3*i+2], 255
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s of %d×%d with %d bytes of pixels", magic, w, h, len(px))
}
