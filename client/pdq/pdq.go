// Package pdq computes Meta's PDQ perceptual hash of an image: 256 bits
// that change little when the image is re-encoded, resized, blurred or
// re-contrasted, with a quality score from 0 to 100. Agencies hash images
// on their own side; the hub never sees an image.
//
// The hash is bit-exact with Meta's C++ reference (pdq-photo-hasher of
// github.com/facebook/ThreatExchange, pdq/cpp) given the same decoded
// pixels: same pre-resize, luminance, Jarosz filter, DCT, median and
// quality, in float32 with the reference's order of operations. Decoders
// differ between languages (Go's JPEG decoder does not round like libjpeg
// or ImageMagick), so a file's hash may differ in a few bits from the one
// Meta's tools print for it; Meta's own tolerance for that is 10 bits for
// images of quality 80 or more.
//
// What the reference CLI does, and this package with it:
//
//   - An image wider or taller than 512 pixels is first resized to exactly
//     512×512, aspect ratio not kept, with CImg's default (nearest
//     neighbour) resize: output pixel (x, y) is input pixel
//     (⌊x·w/512⌋, ⌊y·h/512⌋). Smaller images are hashed at their size.
//   - Luminance is 0.299R + 0.587G + 0.114B, in float32.
//   - An image less than 5 pixels wide or tall hashes to all zeros with
//     quality 0.
//   - EXIF orientation is ignored: pixels are hashed as stored.
//
// Colour models: the reference CLI decodes through ImageMagick into 8-bit
// PPM (RGB) or, for an image whose pixels are all grey, PGM (one channel).
// Here:
//
//   - Grey (image.Gray, image.Gray16) and any image whose every pixel has
//     R = G = B (a greyscale PNG with alpha, a grey palette, ...) are hashed
//     from the grey value itself, as the reference does with a single
//     channel. This matters: 0.299v + 0.587v + 0.114v is not exactly v in
//     float32 for some v.
//   - YCbCr and NYCbCrA (JPEG, lossy WebP) become RGB by Go's
//     color.YCbCrToRGB; CMYK (Adobe JPEG) by color.CMYKToRGB, that is
//     R = 255·(1−C)(1−K), as ImageMagick converts (up to rounding).
//   - Palette images use their palette's colours.
//   - Alpha is ignored: the colour channels are taken as stored, not
//     premultiplied and not composited onto a background (ImageMagick's
//     PPM/PGM output drops the alpha channel). A premultiplied image.RGBA
//     is un-premultiplied first. The C++ CLI itself rejects 2- and
//     4-channel images, so this is our choice where the reference is
//     undefined.
//   - 16-bit samples keep their high byte (the reference CLI mishandles
//     16-bit PPMs, so this too is our choice). Other image types go
//     through color.NRGBA64Model.
package pdq

import (
	"errors"
	"fmt"
	"image"
	"math"
	"sync"
)

// minHashableDim is the reference's MIN_HASHABLE_DIM: smaller images hash
// to zero with quality 0.
const minHashableDim = 5

// maxDim bounds an image's width and height: beyond it an image is not a
// decoded picture (image.Uniform has a side of 2×10⁹).
const maxDim = 1 << 20

// jaroszPasses is the reference's PDQ_NUM_JAROSZ_XY_PASSES: two box-filter
// passes along each axis make a tent filter.
const jaroszPasses = 2

// dctMatrix is the 16×64 DCT-II basis (rows 1..16 of the 64-point DCT),
// row-major, computed as the reference does: float scale times a double
// cosine, rounded to float.
var dctMatrix = func() (d [16 * 64]float32) {
	scale := float32(math.Sqrt(2.0 / 64.0))
	for i := range 16 {
		for j := range 64 {
			d[i*64+j] = float32(float64(scale) * math.Cos((math.Pi/2.0/64.0)*float64(i+1)*float64(2*j+1)))
		}
	}
	return d
}()

// workspace holds the full-size luminance buffers of one hash, reused.
type workspace struct {
	luma, tmp, sums []float32
}

var workspaces = sync.Pool{New: func() any {
	const n = preResizeDim * preResizeDim
	return &workspace{luma: make([]float32, n), tmp: make([]float32, n), sums: make([]float32, preResizeDim)}
}}

// FromImage returns the PDQ hash and quality (0 to 100) of decoded pixels,
// as Meta's pdq-photo-hasher computes them after its image load (see the
// package documentation for the pre-resize and the colour models). Quality
// below 50 means the image has too little detail for the hash to be
// trusted (Meta discards such hashes); images smaller than 5×5 hash to
// zero with quality 0.
func FromImage(img image.Image) (h Hash, quality int, err error) {
	if img == nil {
		return Hash{}, 0, errors.New("pdq: hash image: nil image")
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return Hash{}, 0, nil
	}
	if b.Dx() > maxDim || b.Dy() > maxDim {
		return Hash{}, 0, fmt.Errorf("pdq: hash image: %dx%d pixels is too large (at most %d per side)", b.Dx(), b.Dy(), maxDim)
	}
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	rows, cols := fillLuma(img, ws.luma)
	h, quality = hashLuma(ws, rows, cols)
	return h, quality, nil
}

// hashLuma is the reference's pdqHash256FromFloatLuma on ws.luma,
// rows×cols row-major; it overwrites ws.luma and ws.tmp.
func hashLuma(ws *workspace, rows, cols int) (Hash, int) {
	if rows < minHashableDim || cols < minHashableDim {
		return Hash{}, 0
	}
	var a [64][64]float32
	luma := ws.luma[:rows*cols]
	if rows == 64 && cols == 64 {
		// The reference skips the filter for input already 64×64.
		for i := range 64 {
			copy(a[i][:], luma[i*64:(i+1)*64])
		}
	} else {
		jarosz(luma, ws.tmp[:rows*cols], ws.sums[:cols], rows, cols, jaroszWindow(cols), jaroszWindow(rows))
		decimate(luma, rows, cols, &a)
	}
	quality := imageQuality(&a)
	var t [16][64]float32
	var d [256]float32
	dct64To16(&a, &t, &d)
	return bitsAboveMedian(&d), quality
}

// jaroszWindow is the reference's computeJaroszFilterWindowSize for a
// 64-sample output: ⌈old/128⌉.
func jaroszWindow(old int) int {
	return (old + 2*64 - 1) / (2 * 64)
}

// jarosz applies the reference's jaroszFilterFloat: box filters along
// rows (into tmp) then along columns (back into buf), jaroszPasses times.
func jarosz(buf, tmp, sums []float32, rows, cols, windowAlongRows, windowAlongCols int) {
	for range jaroszPasses {
		for i := range rows {
			box1D(buf[i*cols:(i+1)*cols], tmp[i*cols:(i+1)*cols], windowAlongRows)
		}
		boxColumns(tmp, buf, sums, rows, cols, windowAlongCols)
	}
}

// box1D is the reference's box1DFloat with stride 1: a running-sum box
// filter of width window, centred, narrower at the edges.
func box1D(in, out []float32, window int) {
	half := (window + 2) / 2 // 7->4, 8->5
	n := len(in)
	phase1 := half - 1
	phase2 := window - half + 1
	phase3 := n - window
	phase4 := half - 1
	li, ri, oi := 0, 0, 0
	var sum float32
	size := 0
	for range phase1 {
		sum += in[ri]
		size++
		ri++
	}
	for range phase2 {
		sum += in[ri]
		size++
		out[oi] = sum / float32(size)
		ri++
		oi++
	}
	div := float32(size)
	for range phase3 {
		sum += in[ri]
		sum -= in[li]
		out[oi] = sum / div
		li++
		ri++
		oi++
	}
	for range phase4 {
		sum -= in[li]
		size--
		out[oi] = sum / float32(size)
		li++
		oi++
	}
}

// boxColumns is the reference's boxAlongColsFloat, computed a row at a
// time for all columns at once (one running sum per column) so memory is
// read in order. Each column sees the same float32 operations in the same
// order as box1DFloat with a column stride.
func boxColumns(in, out, sums []float32, rows, cols, window int) {
	half := (window + 2) / 2
	phase1 := half - 1
	phase2 := window - half + 1
	phase3 := rows - window
	phase4 := half - 1
	clear(sums)
	li, ri, oi := 0, 0, 0
	size := 0
	for range phase1 {
		addRow(sums, in[ri*cols:(ri+1)*cols])
		size++
		ri++
	}
	for range phase2 {
		addRow(sums, in[ri*cols:(ri+1)*cols])
		size++
		divRow(out[oi*cols:(oi+1)*cols], sums, float32(size))
		ri++
		oi++
	}
	div := float32(size)
	for range phase3 {
		addRow(sums, in[ri*cols:(ri+1)*cols])
		subRow(sums, in[li*cols:(li+1)*cols])
		divRow(out[oi*cols:(oi+1)*cols], sums, div)
		li++
		ri++
		oi++
	}
	for range phase4 {
		subRow(sums, in[li*cols:(li+1)*cols])
		size--
		divRow(out[oi*cols:(oi+1)*cols], sums, float32(size))
		li++
		oi++
	}
}

func addRow(sums, row []float32) {
	row = row[:len(sums)]
	for j := range sums {
		sums[j] += row[j]
	}
}

func subRow(sums, row []float32) {
	row = row[:len(sums)]
	for j := range sums {
		sums[j] -= row[j]
	}
}

func divRow(out, sums []float32, d float32) {
	out = out[:len(sums)]
	for j := range sums {
		out[j] = sums[j] / d
	}
}

// decimate is the reference's decimateFloat to 64×64: the sample nearest
// the centre of each output cell.
func decimate(in []float32, rows, cols int, out *[64][64]float32) {
	var js [64]int
	for j := range js {
		js[j] = int(((float64(j) + 0.5) * float64(cols)) / 64)
	}
	for i := range 64 {
		ii := int(((float64(i) + 0.5) * float64(rows)) / 64)
		row := in[ii*cols : (ii+1)*cols]
		for j, jj := range js {
			out[i][j] = row[jj]
		}
	}
}

// imageQuality is the reference's pdqImageDomainQualityMetric: the sum of
// quantised vertical and horizontal gradients of the 64×64 downsample,
// scaled to 0..100.
func imageQuality(a *[64][64]float32) int {
	sum := 0
	for i := range 63 {
		for j := range 64 {
			sum += absInt(gradientStep(a[i][j], a[i+1][j]))
		}
	}
	for i := range 64 {
		for j := range 63 {
			sum += absInt(gradientStep(a[i][j], a[i][j+1]))
		}
	}
	q := sum / 90
	return min(q, 100)
}

// gradientStep is the reference's `int d = ((u - v) * 100) / 255` in float,
// truncated toward zero.
func gradientStep(u, v float32) int {
	return int(float32(float32(u-v)*100) / 255)
}

func absInt(d int) int {
	if d < 0 {
		return -d
	}
	return d
}

// dct64To16 is the reference's dct64To16: B = D·A·Dᵀ with D the 16×64
// DCT basis, keeping frequencies 1..16 of each axis; B is row-major. Every sum runs over
// k = 0..63 in order in float32, as in the C++; the loops are only
// reordered so that they read rows.
func dct64To16(a *[64][64]float32, t *[16][64]float32, b *[256]float32) {
	d := &dctMatrix
	// T = D·A, accumulating over k in order for every (i, j).
	for i := range 16 {
		ti := &t[i]
		*ti = [64]float32{}
		for k := range 64 {
			dik := d[i*64+k]
			ak := &a[k]
			for j := range 64 {
				ti[j] += float32(dik * ak[j])
			}
		}
	}
	// B = T·Dᵀ.
	for i := range 16 {
		ti := &t[i]
		for j := range 16 {
			dj := (*[64]float32)(d[j*64 : (j+1)*64])
			var sum float32
			for k := range 64 {
				sum += float32(ti[k] * dj[k])
			}
			b[i*16+j] = sum
		}
	}
}

// bitsAboveMedian is the reference's pdqBuffer16x16ToBits: bit i*16+j is
// set when coefficient (i, j), at b[i*16+j], exceeds the median.
func bitsAboveMedian(b *[256]float32) Hash {
	median := torben(b[:])
	var h Hash
	for k, v := range b {
		if v > median {
			h.setBit(k)
		}
	}
	return h
}

// torben is Torben Mogensen's median without sorting (the reference's
// torben.cpp, public domain, after N. Devillard), in float32.
func torben(m []float32) float32 {
	n := len(m)
	lo, hi := m[0], m[0]
	for _, v := range m[1:] {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	var less, greater, equal int
	var guess, maxLess, minGreater float32
	for {
		guess = (lo + hi) / 2
		less, greater, equal = 0, 0, 0
		maxLess, minGreater = lo, hi
		for _, v := range m {
			switch {
			case v < guess:
				less++
				if v > maxLess {
					maxLess = v
				}
			case v > guess:
				greater++
				if v < minGreater {
					minGreater = v
				}
			default:
				equal++
			}
		}
		if less <= (n+1)/2 && greater <= (n+1)/2 {
			break
		}
		if less > greater {
			hi = maxLess
		} else {
			lo = minGreater
		}
	}
	switch {
	case less >= (n+1)/2:
		return maxLess
	case less+equal >= (n+1)/2:
		return guess
	}
	return minGreater
}
