package pdq

import (
	"image"
	"image/color"
)

// preResizeDim is the reference CLI's DOWNSAMPLE_DIMS: an image wider or
// taller than this is first resized to exactly preResizeDim×preResizeDim
// (aspect ratio not kept) with CImg's nearest-neighbour resize, because the
// Jarosz filter is slow on large images.
const preResizeDim = 512

// The reference's luminance coefficients, C++ `const float` initialised
// from double literals: rounded to double first, then to float, which is
// what float32(float64(…)) does.
var (
	lumaR = float32(float64(0.299))
	lumaG = float32(float64(0.587))
	lumaB = float32(float64(0.114))
)

// lumaTables hold the products coefficient×value, each rounded to float32
// as the reference's `float * uint8_t` is, for every 8-bit value.
var lumaTabR, lumaTabG, lumaTabB [256]float32

func init() {
	for v := range 256 {
		lumaTabR[v] = lumaR * float32(v)
		lumaTabG[v] = lumaG * float32(v)
		lumaTabB[v] = lumaB * float32(v)
	}
}

// rgbFunc returns the 8-bit R, G, B of the pixel at (x, y), alpha ignored.
type rgbFunc func(x, y int) (r, g, b uint8)

// rgbOf returns how to read img's pixels as 8-bit RGB, and whether img is
// grey by its type (every pixel has R = G = B).
func rgbOf(img image.Image) (f rgbFunc, grey bool) {
	switch m := img.(type) {
	case *image.Gray:
		return func(x, y int) (r, g, b uint8) {
			v := m.Pix[m.PixOffset(x, y)]
			return v, v, v
		}, true
	case *image.Gray16:
		return func(x, y int) (r, g, b uint8) {
			v := m.Pix[m.PixOffset(x, y)] // high byte of the big-endian sample
			return v, v, v
		}, true
	case *image.YCbCr:
		return func(x, y int) (r, g, b uint8) {
			return color.YCbCrToRGB(m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)])
		}, false
	case *image.NYCbCrA:
		return func(x, y int) (r, g, b uint8) {
			return color.YCbCrToRGB(m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)])
		}, false
	case *image.NRGBA:
		return func(x, y int) (r, g, b uint8) {
			p := m.Pix[m.PixOffset(x, y):]
			return p[0], p[1], p[2]
		}, false
	case *image.RGBA:
		return func(x, y int) (r, g, b uint8) {
			p := m.Pix[m.PixOffset(x, y):]
			if p[3] == 0xff {
				return p[0], p[1], p[2]
			}
			c := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], p[3]}).(color.NRGBA)
			return c.R, c.G, c.B
		}, false
	case *image.CMYK:
		return func(x, y int) (r, g, b uint8) {
			p := m.Pix[m.PixOffset(x, y):]
			return color.CMYKToRGB(p[0], p[1], p[2], p[3])
		}, false
	case *image.Paletted:
		pal := make([][3]uint8, 256)
		for i, c := range m.Palette {
			if i == len(pal) {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]uint8{n.R, n.G, n.B}
		}
		// Indices beyond the palette (invalid, but possible in a
		// hand-built image) read as black.
		return func(x, y int) (r, g, b uint8) {
			c := pal[m.Pix[m.PixOffset(x, y)]]
			return c[0], c[1], c[2]
		}, false
	}
	return func(x, y int) (r, g, b uint8) {
		c := color.NRGBA64Model.Convert(img.At(x, y)).(color.NRGBA64)
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
	}, false
}

// allGrey reports whether every pixel of the rectangle has R = G = B.
func allGrey(f rgbFunc, b image.Rectangle) bool {
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl := f(x, y); r != g || g != bl {
				return false
			}
		}
	}
	return true
}

// fillLuma writes the luminance of img, pre-resized as the reference CLI
// does, into buf (row-major) and returns its dimensions. buf must hold
// min(h,512)×min(w,512) values.
//
// The pre-resize is CImg's resize(512, 512) with its default
// interpolation (nearest neighbour): output pixel (x, y) is input pixel
// (⌊x·w/512⌋, ⌊y·h/512⌋); it applies only when w or h exceeds 512, and
// then to both dimensions.
//
// Luminance is 0.299R + 0.587G + 0.114B in float32, products and sums in
// the reference's order, except that a grey image (R = G = B everywhere)
// takes its grey value unchanged: the reference CLI's decoder hands such an
// image to the hasher as a single channel, which the C++ copies as is, and
// the two differ in the last bit for some values (15, 30, 37, ...).
func fillLuma(img image.Image, buf []float32) (rows, cols int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	rows, cols = h, w
	if w > preResizeDim || h > preResizeDim {
		rows, cols = preResizeDim, preResizeDim
	}
	f, grey := rgbOf(img)
	if !grey {
		grey = allGrey(f, b)
	}
	xs := make([]int, cols)
	for c := range xs {
		xs[c] = b.Min.X + c*w/cols
	}
	for r := range rows {
		y := b.Min.Y + r*h/rows
		row := buf[r*cols : (r+1)*cols]
		if grey {
			for c, x := range xs {
				v, _, _ := f(x, y)
				row[c] = float32(v)
			}
			continue
		}
		for c, x := range xs {
			rr, gg, bb := f(x, y)
			// Explicit conversions round each sum, so no
			// architecture may fuse the operations differently.
			row[c] = float32(lumaTabR[rr]+lumaTabG[gg]) + lumaTabB[bb]
		}
	}
	return rows, cols
}
