package pdq

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/image/draw"

	"github.com/veilmatch/veilmatch/client/pdq/hashlists"
	"github.com/veilmatch/veilmatch/crypto/token"
)

func TestChunkBitOrder(t *testing.T) {
	for k := range 256 {
		var h Hash
		h.setBit(k)
		for i := range Chunks {
			want := uint32(0)
			if i == k/32 {
				want = 1 << (k % 32)
			}
			if got := h.Chunk(i); got != want {
				t.Fatalf("bit %d: Chunk(%d) = %#x, want %#x", k, i, got, want)
			}
		}
	}
	h := mustParse(t, "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22")
	for i := range Chunks {
		if got, want := fmt.Sprintf("%08x", h.Chunk(i)), h.String()[56-8*i:64-8*i]; got != want {
			t.Errorf("Chunk(%d) = %s, want %s", i, got, want)
		}
	}
	for _, i := range []int{-1, Chunks} {
		if !panics(func() { h.Chunk(i) }) {
			t.Errorf("Chunk(%d) did not panic", i)
		}
	}
}

func TestBall(t *testing.T) {
	for _, c := range []uint32{0, 0xdeadbeef, math.MaxUint32} {
		for r, size := range []int{1, 33, 529} {
			ball := Ball(c, r)
			if len(ball) != size || ball[0] != c {
				t.Fatalf("Ball(%#x, %d): %d values starting %#x, want %d starting with c", c, r, len(ball), ball[0], size)
			}
			seen := map[uint32]bool{}
			for _, v := range ball {
				if d := bits.OnesCount32(v ^ c); d > r || seen[v] {
					t.Fatalf("Ball(%#x, %d): %#x at distance %d, repeated %v", c, r, v, d, seen[v])
				}
				seen[v] = true
			}
			if !slices.Equal(ball, Ball(c, r)) {
				t.Fatalf("Ball(%#x, %d) not deterministic", c, r)
			}
		}
	}
	if got := Ball(0, 2)[1:4]; !slices.Equal(got, []uint32{1, 2, 4}) {
		t.Errorf("Ball(0, 2)[1:4] = %v, want [1 2 4]", got)
	}
	if got := Ball(0, 2)[33:35]; !slices.Equal(got, []uint32{3, 5}) {
		t.Errorf("Ball(0, 2)[33:35] = %v, want [3 5]", got)
	}
	for _, r := range []int{-1, 3} {
		if !panics(func() { Ball(0, r) }) {
			t.Errorf("Ball(0, %d) did not panic", r)
		}
	}
}

func TestChunkInput(t *testing.T) {
	got := ChunkInput(3, 0x01020304)
	want := append([]byte("pdq-chunk/"), 3, 1, 2, 3, 4)
	if !bytes.Equal(got, want) {
		t.Fatalf("ChunkInput(3, 0x01020304) = %q, want %q", got, want)
	}
	if bytes.Equal(ChunkInput(0, 7), ChunkInput(1, 7)) {
		t.Error("ChunkInput does not separate chunk indices")
	}
	for _, i := range []int{-1, Chunks} {
		if !panics(func() { ChunkInput(i, 0) }) {
			t.Errorf("ChunkInput(%d, 0) did not panic", i)
		}
	}
}

// TestCandidatesBallIntersection: Candidates(a, b, rE+rQ) counts the
// chunk indices at which the enrolled balls of a and the query balls of b
// share a value, which is what the hub sees.
func TestCandidatesBallIntersection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		a := randomHash(rng)
		b := flipBits(rng, a, rng.IntN(40))
		for rE := range MaxBallRadius + 1 {
			for rQ := range MaxBallRadius + 1 {
				shared := 0
				for i := range Chunks {
					enrolled := map[string]bool{}
					for _, v := range Ball(a.Chunk(i), rE) {
						enrolled[string(ChunkInput(i, v))] = true
					}
					for _, v := range Ball(b.Chunk(i), rQ) {
						if enrolled[string(ChunkInput(i, v))] {
							shared++
							break
						}
					}
				}
				if got := Candidates(a, b, rE+rQ); got != shared {
					t.Fatalf("d=%d rE=%d rQ=%d: Candidates = %d, balls share values at %d chunks", Distance(a, b), rE, rQ, got, shared)
				}
			}
		}
	}
	a := randomHash(rng)
	if Candidates(a, a, 0) != Chunks {
		t.Error("Candidates(a, a, 0) != Chunks")
	}
}

// TestCandidatesPigeonhole: the guarantees the parameter choice rests
// on. Distance ≤ 31 leaves some chunk within 3 bits and two within 4;
// distance ≤ 16 leaves three chunks within 2 bits.
func TestCandidatesPigeonhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		a := randomHash(rng)
		d := rng.IntN(32)
		b := a
		if rng.IntN(2) == 0 {
			b = flipBits(rng, a, d)
		} else { // concentrate the flips on as many chunks as possible
			for i := 0; i < d; i++ {
				b.flip((i%Chunks)*32 + rng.IntN(32))
			}
		}
		d = Distance(a, b)
		if Candidates(a, b, 3) < 1 || Candidates(a, b, 4) < 2 || (d <= 16 && Candidates(a, b, 2) < 3) {
			t.Fatalf("d=%d: candidates at radius 2, 3, 4 = %d, %d, %d", d, Candidates(a, b, 2), Candidates(a, b, 3), Candidates(a, b, 4))
		}
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func (h *Hash) flip(k int) { h[31-(k>>3)] ^= 1 << (k & 7) }

// randomHash returns a uniformly random hash with exactly 128 bits set,
// as PDQ's median threshold gives.
func randomHash(rng *rand.Rand) Hash {
	var h Hash
	for _, k := range rng.Perm(256)[:128] {
		h.setBit(k)
	}
	return h
}

// flipBits returns h with n distinct random bits flipped.
func flipBits(rng *rand.Rand, h Hash, n int) Hash {
	for _, k := range rng.Perm(256)[:n] {
		h.flip(k)
	}
	return h
}

// The study below measures, on real images and real hash lists, how the
// chunk-ball matching of this file behaves: recall of matching pairs and
// false candidates among non-matching ones. By default it transforms 3
// small images (the hash lists of testdata/study, about 3.3M pairs, are
// always measured in full) and asserts loose bounds; PDQ_STUDY=1
// transforms every test image of quality ≥ 50 (about 40 s) and the tables
// are logged with -v:
//
//	PDQ_STUDY=1 go test ./client/pdq/ -run Study -v

// studyRadii and studyK are the table axes: radius rE+rQ, and the
// number of chunk indices required to match.
const (
	studyRadii = 5
	studyK     = 4
)

// pairStats accumulates chunk matches over hash pairs.
type pairStats struct {
	n   int
	hit [studyRadii][studyK + 1]int // [radius][k]: pairs with Candidates(radius) ≥ k
	// bound counts pairs by the distance bound the hub decodes from the
	// tokens they share (radius-2 balls on both sides).
	bound [8*5 + 1]int
}

func (s *pairStats) add(a, b *[Chunks]uint32) {
	s.n++
	var atMost [33]int // chunk indices at each chunk distance
	shared := 0
	for i := range Chunks {
		d := bits.OnesCount32(a[i] ^ b[i])
		atMost[d]++
		shared += ballsShared[d]
	}
	bound, ok := token.PDQDistanceBound(shared)
	if !ok {
		panic(fmt.Sprintf("%d shared values do not decode", shared))
	}
	s.bound[bound]++
	c := 0
	for r := range studyRadii {
		c += atMost[r]
		for k := 1; k <= studyK && k <= c; k++ {
			s.hit[r][k]++
		}
	}
}

// nearRate is the fraction of pairs whose decoded bound is at most t.
func (s *pairStats) nearRate(t int) float64 {
	return float64(s.nearCount(t)) / float64(s.n)
}

func (s *pairStats) nearCount(t int) int {
	n := 0
	for b := 0; b <= t; b++ {
		n += s.bound[b]
	}
	return n
}

func (s *pairStats) merge(o *pairStats) {
	s.n += o.n
	for b := range s.bound {
		s.bound[b] += o.bound[b]
	}
	for r := range s.hit {
		for k := range s.hit[r] {
			s.hit[r][k] += o.hit[r][k]
		}
	}
}

func (s *pairStats) rate(r, k int) float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return float64(s.hit[r][k]) / float64(s.n)
}

// table formats s as radius rows by k columns, as fractions (and counts
// when counts is set).
func (s *pairStats) table(title string, counts bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d pairs)\n  radius", title, s.n)
	for k := 1; k <= studyK; k++ {
		fmt.Fprintf(&b, " %20s", "k="+strconv.Itoa(k))
	}
	b.WriteString("\n")
	for r := range studyRadii {
		fmt.Fprintf(&b, "  %6d", r)
		for k := 1; k <= studyK; k++ {
			if counts {
				fmt.Fprintf(&b, " %10.3g (%7d)", s.rate(r, k), s.hit[r][k])
			} else {
				fmt.Fprintf(&b, " %20.4f", s.rate(r, k))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func chunksOf(h Hash) (c [Chunks]uint32) {
	for i := range c {
		c[i] = h.Chunk(i)
	}
	return c
}

// matchStats splits pairs by distance: d ≤ 16, 17..31 and d ≤ 31
// (matches) and d > 31 (false candidates when they share chunks), the
// last also as 32..63 and ≥ 64.
type matchStats struct {
	le16, mid, le31, gt31, near, far pairStats
	hist                             map[int]int // by distHistBin
}

var distHistBins = []int{0, 1, 5, 9, 13, 17, 25, 32, 48, 64, 96} // lower bounds

func distHistBin(d int) int {
	i, _ := slices.BinarySearch(distHistBins, d+1)
	return distHistBins[i-1]
}

func (m *matchStats) add(a, b Hash) {
	ca, cb := chunksOf(a), chunksOf(b)
	m.addChunks(Distance(a, b), &ca, &cb)
}

func (m *matchStats) addChunks(d int, a, b *[Chunks]uint32) {
	if m.hist == nil {
		m.hist = map[int]int{}
	}
	m.hist[distHistBin(d)]++
	switch {
	case d <= 31:
		if d <= 16 {
			m.le16.add(a, b)
		} else {
			m.mid.add(a, b)
		}
		m.le31.add(a, b)
	default:
		m.gt31.add(a, b)
		if d < 64 {
			m.near.add(a, b)
		} else {
			m.far.add(a, b)
		}
	}
}

func (m *matchStats) histogram() string {
	var b strings.Builder
	b.WriteString("distance histogram:")
	for i, lo := range distHistBins {
		hi := "+"
		if i+1 < len(distHistBins) {
			hi = "-" + strconv.Itoa(distHistBins[i+1]-1)
		}
		fmt.Fprintf(&b, " [%d%s]=%d", lo, hi, m.hist[lo])
	}
	return b.String()
}

// studyImage is a test image and its PDQ source group: images of the same
// scene (the bridge and all its variants) share a group.
type studyImage struct {
	path, group string
}

// studyImages lists the test images present whose expected quality is
// at least 50, each file once.
func studyImages(t *testing.T) []studyImage {
	var imgs []studyImage
	seen := map[[32]byte]bool{}
	for _, row := range readTable(t, "expected.txt") {
		q, err := strconv.Atoi(row[2])
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", row[0])
		data, err := os.ReadFile(path)
		if q < 50 || err != nil {
			continue // synthetic, not copied, or low quality
		}
		sum := sha256.Sum256(data)
		if seen[sum] {
			continue
		}
		seen[sum] = true
		group := row[0]
		if strings.Contains(row[0], "bridge") || strings.Contains(row[0], "modes/") {
			group = "bridge"
		}
		imgs = append(imgs, studyImage{path, group})
	}
	return imgs
}

// imageTransform is an edit a near-duplicate may have undergone.
type imageTransform struct {
	name  string
	apply func(image.Image) (image.Image, error)
}

func studyTransforms() []imageTransform {
	var ts []imageTransform
	for _, q := range []int{30, 50, 70, 90} {
		ts = append(ts, imageTransform{"jpeg-q" + strconv.Itoa(q), func(m image.Image) (image.Image, error) {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: q}); err != nil {
				return nil, err
			}
			return jpeg.Decode(&buf)
		}})
	}
	for _, pct := range []int{25, 50, 150, 200} {
		ts = append(ts, imageTransform{"resize-" + strconv.Itoa(pct) + "%", func(m image.Image) (image.Image, error) {
			b := m.Bounds()
			dst := image.NewRGBA(image.Rect(0, 0, max(1, b.Dx()*pct/100), max(1, b.Dy()*pct/100)))
			draw.CatmullRom.Scale(dst, dst.Bounds(), m, b, draw.Src, nil)
			return dst, nil
		}})
	}
	for _, pct := range []int{2, 5} {
		ts = append(ts, imageTransform{"crop-" + strconv.Itoa(pct) + "%", func(m image.Image) (image.Image, error) {
			b := m.Bounds()
			dx, dy := b.Dx()*pct/100, b.Dy()*pct/100
			r := image.Rect(b.Min.X+dx, b.Min.Y+dy, b.Max.X-dx, b.Max.Y-dy)
			dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
			draw.Draw(dst, dst.Bounds(), m, r.Min, draw.Src)
			return dst, nil
		}})
	}
	for _, f := range []float64{1.15, 0.85} {
		ts = append(ts, imageTransform{fmt.Sprintf("brightness-x%.2f", f), func(m image.Image) (image.Image, error) {
			return mapChannels(m, func(v float64) float64 { return v * f }), nil
		}})
		ts = append(ts, imageTransform{fmt.Sprintf("contrast-x%.2f", f), func(m image.Image) (image.Image, error) {
			return mapChannels(m, func(v float64) float64 { return (v-127.5)*f + 127.5 }), nil
		}})
	}
	ts = append(ts, imageTransform{"png", func(m image.Image) (image.Image, error) {
		var buf bytes.Buffer
		if err := png.Encode(&buf, m); err != nil {
			return nil, err
		}
		return png.Decode(&buf)
	}})
	return ts
}

// mapChannels returns m as NRGBA with f applied to R, G and B (0..255),
// rounded and clamped; alpha is kept.
func mapChannels(m image.Image, f func(float64) float64) image.Image {
	var lut [256]uint8
	for v := range lut {
		lut[v] = uint8(math.Round(min(255, max(0, f(float64(v))))))
	}
	b := m.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := color.NRGBAModel.Convert(m.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			dst.SetNRGBA(x, y, color.NRGBA{lut[c.R], lut[c.G], lut[c.B], c.A})
		}
	}
	return dst
}

// studyHash is the hash of one image or of one of its transforms.
type studyHash struct {
	image, transform, group string
	h                       Hash
	quality                 int
}

// hashTransforms hashes each image and each of its transforms, two at a
// time; the original has transform "".
func hashTransforms(t *testing.T, imgs []studyImage, ts []imageTransform) []studyHash {
	out := make([][]studyHash, len(imgs))
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 2 {
		wg.Go(func() {
			for i := range jobs {
				hs, err := hashImageTransforms(imgs[i], ts)
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
				out[i] = hs
			}
		})
	}
	for i := range imgs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return slices.Concat(out...)
}

func hashImageTransforms(img studyImage, ts []imageTransform) ([]studyHash, error) {
	m, err := decodeFile(img.path)
	if err != nil {
		return nil, err
	}
	h, q, err := FromImage(m)
	if err != nil {
		return nil, err
	}
	hs := []studyHash{{img.path, "", img.group, h, q}}
	for _, tr := range ts {
		tm, err := tr.apply(m)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", img.path, tr.name, err)
		}
		h, q, err := FromImage(tm)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", img.path, tr.name, err)
		}
		hs = append(hs, studyHash{img.path, tr.name, img.group, h, q})
	}
	return hs, nil
}

// studyLists returns the hashes of package hashlists: Meta's haystack
// and needles, and its video frames.
func studyLists(t *testing.T) (haystack, frames []Hash) {
	for _, l := range []struct {
		get func() ([][32]byte, error)
		out *[]Hash
	}{{hashlists.Haystack, &haystack}, {hashlists.Frames, &frames}} {
		hs, err := l.get()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			*l.out = append(*l.out, Hash(h))
		}
	}
	return haystack, frames
}

// allPairs measures every pair of distinct hashes in hs.
func allPairs(hs []Hash) *matchStats {
	cs := make([][Chunks]uint32, len(hs))
	for i, h := range hs {
		cs[i] = chunksOf(h)
	}
	var m matchStats
	for i := range hs {
		for j := i + 1; j < len(hs); j++ {
			m.addChunks(Distance(hs[i], hs[j]), &cs[i], &cs[j])
		}
	}
	return &m
}

// ballSize is |Ball(32, r)|.
func ballSize(r int) int { return len(Ball(0, r)) }

// uniformFalseRate is the probability that independent uniform chunks give
// at least k of Chunks chunk indices within radius: the ideal baseline.
func uniformFalseRate(radius, k int) float64 {
	n := 0.0
	binom := 1.0
	for j := 0; j <= radius; j++ {
		n += binom
		binom = binom * float64(32-j) / float64(j+1)
	}
	p := n / (1 << 32)
	tail := 0.0
	for j := k; j <= Chunks; j++ {
		tail += choose(Chunks, j) * math.Pow(p, float64(j)) * math.Pow(1-p, float64(Chunks-j))
	}
	return tail
}

func choose(n, k int) float64 {
	c := 1.0
	for i := range k {
		c = c * float64(n-i) / float64(i+1)
	}
	return c
}

// TestStudyChunkMatching measures recall and false candidates of
// chunk-ball matching (see the comment above studyRadii). Quick by
// default; PDQ_STUDY=1 for every image.
func TestStudyChunkMatching(t *testing.T) {
	full := os.Getenv("PDQ_STUDY") == "1"
	imgs := studyImages(t)
	if !full {
		quick := []string{"q1050.jpg", "q2821.jpg", "wee.jpg"}
		imgs = slices.DeleteFunc(imgs, func(im studyImage) bool {
			return !slices.Contains(quick, filepath.Base(im.path))
		})
		if len(imgs) != len(quick) {
			t.Fatalf("quick study images: found %d of %v", len(imgs), quick)
		}
	}
	ts := studyTransforms()
	hashes := hashTransforms(t, imgs, ts)

	// (a) Each original against each of its transforms.
	var all matchStats
	byTransform := map[string]*matchStats{}
	original := map[string]Hash{}
	for _, sh := range hashes {
		if sh.transform == "" {
			original[sh.image] = sh.h
		}
	}
	lowQuality := 0
	for _, sh := range hashes {
		if sh.transform == "" {
			continue
		}
		if sh.quality < 50 { // Meta discards such hashes
			lowQuality++
			continue
		}
		all.add(original[sh.image], sh.h)
		if byTransform[sh.transform] == nil {
			byTransform[sh.transform] = &matchStats{}
		}
		byTransform[sh.transform].add(original[sh.image], sh.h)
		assertPigeonhole(t, original[sh.image], sh.h, sh.image+" "+sh.transform)
	}
	t.Logf("(a) %d images x %d transforms, %d transforms of quality < 50 left out; %s", len(imgs), len(ts), lowQuality, all.histogram())
	t.Logf("per transform: pairs, mean and max distance, pairs over 31, recall at radius 2 k=1 and radius 3 k=2 of pairs at d <= 31")
	for _, tr := range ts {
		m := byTransform[tr.name]
		sum, mx := 0, 0
		for _, sh := range hashes {
			if sh.transform == tr.name && sh.quality >= 50 {
				d := Distance(original[sh.image], sh.h)
				sum += d
				mx = max(mx, d)
			}
		}
		n := m.le31.n + m.gt31.n
		t.Logf("  %-16s %3d  mean %5.1f  max %3d  >31: %2d  r2k1 %.3f  r3k2 %.3f", tr.name, n, float64(sum)/float64(n), mx, m.gt31.n, m.le31.rate(2, 1), m.le31.rate(3, 2))
	}
	t.Logf("recall, transform pairs at d <= 31:\n%s", all.le31.table("d <= 31", false))
	t.Logf("recall, transform pairs at d <= 16:\n%s", all.le16.table("d <= 16", false))
	t.Logf("recall, transform pairs at 17 <= d <= 31:\n%s", all.mid.table("17 <= d <= 31", false))

	// Meta's bridge-mods against the original.
	var mods matchStats
	orig, _, err := FromFile("testdata/bridge-mods/aaa-orig.jpg")
	if err != nil {
		t.Fatal(err)
	}
	var modLines []string
	for _, name := range []string{"blur-a-little", "blur-a-lot", "high-contrast", "high-saturation", "sharpen-a-little", "sharpen-a-lot", "shrink-a-little", "shrink-a-lot", "square-128x128", "square-256x256", "square-512x512"} {
		h, _, err := FromFile("testdata/bridge-mods/" + name + ".jpg")
		if err != nil {
			t.Fatal(err)
		}
		mods.add(orig, h)
		assertPigeonhole(t, orig, h, name)
		modLines = append(modLines, fmt.Sprintf("  %-17s d=%2d candidates r0..4: %d %d %d %d %d", name, Distance(orig, h),
			Candidates(orig, h, 0), Candidates(orig, h, 1), Candidates(orig, h, 2), Candidates(orig, h, 3), Candidates(orig, h, 4)))
	}
	t.Logf("bridge-mods vs aaa-orig.jpg:\n%s", strings.Join(modLines, "\n"))
	if mods.le31.n != 11 || mods.le31.rate(0, 1) != 1 || mods.le31.nearRate(token.PDQBound) != 1 {
		t.Errorf("bridge-mods: %d of 11 within 31, exact-chunk recall %.3f, paired by the hub's rule %.3f; want all",
			mods.le31.n, mods.le31.rate(0, 1), mods.le31.nearRate(token.PDQBound))
	}

	// (b)(i) Images and transforms of different source groups.
	var cross matchStats
	for i, a := range hashes {
		for _, b := range hashes[i+1:] {
			if a.group != b.group {
				cross.add(a.h, b.h)
			}
		}
	}
	t.Logf("(b)(i) test images and transforms, different sources; %s", cross.histogram())
	t.Logf("false candidates per pair:\n%s", cross.gt31.table("d > 31", true))

	// (b)(ii) Published hash lists and a uniform baseline.
	haystack, frames := studyLists(t)
	rng := rand.New(rand.NewPCG(5, 6))
	uniform := make([]Hash, 1450)
	for i := range uniform {
		uniform[i] = randomHash(rng)
	}
	sets := []struct {
		name string
		m    *matchStats
	}{
		{fmt.Sprintf("ThreatExchange haystack+needles (%d hashes)", len(haystack)), allPairs(haystack)},
		{fmt.Sprintf("vPDQ video frames, 4 videos (%d hashes)", len(frames)), allPairs(frames)},
		{fmt.Sprintf("uniform random, weight 128 (%d hashes)", len(uniform)), allPairs(uniform)},
	}
	for _, s := range sets {
		t.Logf("(b)(ii) %s; %s", s.name, s.m.histogram())
		t.Logf("recall of its matching pairs:\n%s%s", s.m.le31.table("d <= 31", false), s.m.mid.table("of which 17 <= d <= 31", false))
		t.Logf("false candidates per pair:\n%s%s%s", s.m.gt31.table("d > 31", true), s.m.near.table("of which 32 <= d <= 63", true), s.m.far.table("of which d >= 64", true))
	}
	var b strings.Builder
	for r := range studyRadii {
		fmt.Fprintf(&b, "  radius %d:", r)
		for k := 1; k <= studyK; k++ {
			fmt.Fprintf(&b, " k=%d %.3g", k, uniformFalseRate(r, k))
		}
		b.WriteString("\n")
	}
	t.Logf("independent uniform chunks (analytic):\n%s", b.String())

	// Parameter choice: rE, rQ ≤ 2 and k ≤ 4 with recall ≥ 0.95 at d ≤ 31
	// and 1 at d ≤ 16, and at most 1e-6 false candidates per unrelated
	// (d ≥ 64) pair of the real hash sets pooled; fewest OPRF evaluations
	// (enrolled + query), then fewest query evaluations.
	var unrelated, nonMatching, lists31, lists16, related pairStats
	for _, m := range []*matchStats{sets[0].m, sets[1].m, &cross} {
		unrelated.merge(&m.far)
		nonMatching.merge(&m.gt31)
		lists31.merge(&m.le31)
		lists16.merge(&m.le16)
		related.merge(&m.near)
	}
	b.Reset()
	type choice struct{ rE, rQ, k, cost int }
	var feasible []choice
	for rE := range MaxBallRadius + 1 {
		for rQ := range MaxBallRadius + 1 {
			for k := 1; k <= studyK; k++ {
				r := rE + rQ
				recallOK := min(all.le31.rate(r, k), lists31.rate(r, k)) >= 0.95 && min(all.le16.rate(r, k), lists16.rate(r, k)) == 1
				falseOK := unrelated.rate(r, k) <= 1e-6
				fmt.Fprintf(&b, "  rE=%d rQ=%d k=%d: enrolled %4d query %4d; recall d<=31 %.4f/%.4f d<=16 %.4f/%.4f; false/pair d>=64 %8.3g (%4d), d>31 %8.3g; ok %v/%v\n",
					rE, rQ, k, Chunks*ballSize(rE), Chunks*ballSize(rQ), all.le31.rate(r, k), lists31.rate(r, k), all.le16.rate(r, k), lists16.rate(r, k),
					unrelated.rate(r, k), unrelated.hit[r][k], nonMatching.rate(r, k), recallOK, falseOK)
				if recallOK && falseOK {
					feasible = append(feasible, choice{rE, rQ, k, Chunks * (ballSize(rE) + ballSize(rQ))})
				}
			}
		}
	}
	t.Logf("parameter choices (recall: transform pairs / hash-list pairs (%d at d <= 31); false candidates pooled over hash lists and test images: %d pairs at d >= 64, %d at d > 31; ok = recall/false targets met):\n%s",
		lists31.n, unrelated.n, nonMatching.n, b.String())
	if len(feasible) == 0 {
		t.Logf("no (rE, rQ, k) meets both the recall and the false-candidate targets")
	} else {
		best := slices.MinFunc(feasible, func(x, y choice) int {
			return cmp.Or(cmp.Compare(x.cost, y.cost), cmp.Compare(x.rQ, y.rQ))
		})
		r := best.rE + best.rQ
		t.Logf("cheapest choice meeting both: rE=%d rQ=%d k=%d (%d OPRF evaluations); recall %.4f/%.4f (d <= 31), %.4f/%.4f (d <= 16); false candidates per pair %.3g (d >= 64), %.3g (d > 31)",
			best.rE, best.rQ, best.k, best.cost, all.le31.rate(r, best.k), lists31.rate(r, best.k), all.le16.rate(r, best.k), lists16.rate(r, best.k),
			unrelated.rate(r, best.k), nonMatching.rate(r, best.k))
	}

	// The rule the hub applies (token.PDQNear): radius-2 balls on both
	// sides, the shared-token count decoded into a distance bound, pairs
	// with a bound of at most token.PDQBound matched.
	b.Reset()
	for bound := 23; bound <= 31; bound++ {
		fmt.Fprintf(&b, "  bound <= %d: recall d<=31 %.4f/%.4f d<=16 %.4f/%.4f; false/pair d>=64 %8.3g (%d of %d), d>31 %8.3g, 32<=d<=63 %8.3g\n", bound,
			all.le31.nearRate(bound), lists31.nearRate(bound), all.le16.nearRate(bound), lists16.nearRate(bound),
			unrelated.nearRate(bound), unrelated.nearCount(bound), unrelated.n, nonMatching.nearRate(bound), related.nearRate(bound))
	}
	t.Logf("decoded distance bound, radius-2 balls both sides (%d tokens per hash; the hub's rule is bound <= %d):\n%s", token.PDQTokens, token.PDQBound, b.String())
	if got := min(all.le31.nearRate(token.PDQBound), lists31.nearRate(token.PDQBound)); got < 0.95 {
		t.Errorf("recall of the hub's rule at d <= 31 = %.4f, want >= 0.95", got)
	}
	if got := min(all.le16.nearRate(token.PDQBound), lists16.nearRate(token.PDQBound)); got != 1 {
		t.Errorf("recall of the hub's rule at d <= 16 = %.4f, want 1", got)
	}
	if got := unrelated.nearRate(token.PDQBound); got > 1e-6 {
		t.Errorf("false matches of the hub's rule = %.3g per unrelated pair, want <= 1e-6", got)
	}
	if got := cross.gt31.nearCount(token.PDQBound); got != 0 {
		t.Errorf("the hub's rule matches %d pairs of unrelated test images, want none", got)
	}

	// Loose bounds, also on the quick subset.
	if got := all.le31.rate(2, 1); got < 0.9 {
		t.Errorf("recall at radius 2, k=1, d <= 31 = %.3f, want >= 0.9", got)
	}
	if got := lists31.rate(3, 2); got < 0.99 {
		t.Errorf("recall at radius 3, k=2, hash-list pairs at d <= 31 = %.4f, want >= 0.99", got)
	}
	if got := all.le16.rate(2, 3); got != 1 {
		t.Errorf("recall at radius 2, k=3, d <= 16 = %.3f, want 1", got)
	}
	if unrelated.n < 2000000 {
		t.Errorf("only %d unrelated pairs", unrelated.n)
	}
	if got := unrelated.rate(2, 3); got > 1e-5 {
		t.Errorf("false candidates at radius 2, k=3 = %.3g per unrelated pair, want <= 1e-5", got)
	}
	if got := nonMatching.rate(2, 3); got > 1e-3 {
		t.Errorf("false candidates at radius 2, k=3 = %.3g per non-matching pair, want <= 1e-3", got)
	}
}

// assertPigeonhole fails the test unless a and b, when within 31 bits,
// share a chunk within 3 bits and two within 4.
func assertPigeonhole(t *testing.T, a, b Hash, what string) {
	t.Helper()
	if d := Distance(a, b); d <= 31 && (Candidates(a, b, 3) < 1 || Candidates(a, b, 4) < 2) {
		t.Errorf("%s: d=%d but candidates at radius 3, 4 = %d, %d", what, d, Candidates(a, b, 3), Candidates(a, b, 4))
	}
}

// TestValues checks that a hash expands into the number of tokens the hub
// expects, all distinct, and that two hashes share as many values as the
// hub's decoding of the count assumes, for each chunk band.
func TestValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	a := randomHash(rng)
	va := a.Values()
	if len(va) != token.PDQTokens {
		t.Fatalf("%d values, want token.PDQTokens = %d", len(va), token.PDQTokens)
	}
	set := map[string]bool{}
	for _, v := range va {
		set[string(v)] = true
	}
	if len(set) != len(va) {
		t.Fatalf("%d distinct values of %d", len(set), len(va))
	}
	for d := 0; d <= 40; d++ {
		b := flipBits(rng, a, d)
		shared := 0
		for _, v := range b.Values() {
			if set[string(v)] {
				shared++
			}
		}
		if got := SharedTokens(a, b); got != shared {
			t.Errorf("distance %d: SharedTokens = %d, %d values equal", Distance(a, b), got, shared)
		}
		bound, ok := token.PDQDistanceBound(shared)
		if !ok || bound > Distance(a, b) {
			t.Errorf("distance %d: %d shared values decode to bound %d (%v), more than the distance", Distance(a, b), shared, bound, ok)
		}
		if Distance(a, b) <= 16 && !token.PDQNear(shared) {
			t.Errorf("distance %d: not near", Distance(a, b))
		}
	}
}
