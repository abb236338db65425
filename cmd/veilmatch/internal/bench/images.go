package bench

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"time"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/client/pdq"
	"github.com/veilmatch/veilmatch/client/pdq/hashlists"
	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/server/quota"
)

// Images is the cost of near-duplicate image matching (kind pdq): what
// one image costs to hash, blind and store, how fast a list of images
// publishes through the whole pipeline, and what a check of near copies
// finds.
type Images struct {
	// Published is the images of the list published; TokensPerImage the
	// OPRF evaluations (and tokens stored) each costs.
	Published      int `json:"published"`
	TokensPerImage int `json:"tokens_per_image"`
	// HashMillis is PDQ on one decoded 1024×768 image, on 1 core.
	HashMillis float64 `json:"hash_millis"`
	// Seconds and ImagesPerSec are the publish, end to end.
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_sec"`
	// HubBytesPerImage is TokensPerImage at the hub's measured bytes per
	// token at rest (Storage).
	HubBytesPerImage float64 `json:"hub_bytes_per_image"`
	// QuotaImagesPerDay is how many images the key server's default daily
	// quota lets an agency blind.
	QuotaImagesPerDay int `json:"quota_images_per_day"`
	// Checked near copies (10 bits flipped) and unrelated hashes, and
	// what the check found of each.
	Copies         int `json:"copies"`
	CopiesFound    int `json:"copies_found"`
	Unrelated      int `json:"unrelated"`
	UnrelatedFound int `json:"unrelated_found"`
	// CheckMillisPerImage is the check, end to end, per image checked.
	CheckMillisPerImage float64 `json:"check_millis_per_image"`
	// Lists is the hub's rule applied to every pair of Meta's published
	// hashes (package hashlists).
	Lists ListPairs `json:"lists"`
}

// ListPairs counts the pairs of Meta's hash lists the hub's rule
// (token.PDQNear on pdq.SharedTokens) pairs: of those within Meta's
// threshold (distance ≤ 31, of which ≤ 16) and of the unrelated ones
// (distance ≥ 64).
type ListPairs struct {
	Within31        int `json:"within_31"`
	Within31Paired  int `json:"within_31_paired"`
	Within16        int `json:"within_16"`
	Within16Paired  int `json:"within_16_paired"`
	Unrelated       int `json:"unrelated"`
	UnrelatedPaired int `json:"unrelated_paired"`
}

// measureListPairs applies the hub's rule to every pair of hashes within
// each of Meta's lists.
func measureListPairs() (ListPairs, error) {
	var r ListPairs
	for _, get := range []func() ([][32]byte, error){hashlists.Haystack, hashlists.Frames} {
		hs, err := get()
		if err != nil {
			return r, err
		}
		for i := range hs {
			for j := i + 1; j < len(hs); j++ {
				a, b := pdq.Hash(hs[i]), pdq.Hash(hs[j])
				d := pdq.Distance(a, b)
				if d > 31 && d < 64 {
					continue
				}
				near := token.PDQNear(pdq.SharedTokens(a, b))
				switch {
				case d >= 64:
					r.Unrelated++
					r.UnrelatedPaired += b2i(near)
				case d <= 16:
					r.Within16++
					r.Within16Paired += b2i(near)
					fallthrough
				default:
					r.Within31++
					r.Within31Paired += b2i(near)
				}
			}
		}
	}
	return r, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// maxImagesChecked bounds the near copies (and unrelated hashes) checked
// in one check: at most client.MaxCheckEntries/token.PDQTokens images.
const maxImagesChecked = 10

// measureImages publishes a list of random PDQ hashes (weight 128, as real
// hashes have) as police-us, then checks, as the query owner, near copies
// of some (10 bits flipped) and as many unrelated hashes.
func measureImages(ctx context.Context, e *servers, o Options, p *progressWriter) (Images, error) {
	checkedN := min(maxImagesChecked, o.Images)
	r := Images{Published: o.Images, TokensPerImage: token.PDQTokens, Copies: checkedN, Unrelated: checkedN}
	r.QuotaImagesPerDay = quota.DefaultLimits().Daily / token.PDQTokens
	r.HashMillis = hashMillis()
	p.printf("images: the hub's rule on every pair of Meta's published hash lists")
	var err error
	if r.Lists, err = measureListPairs(); err != nil {
		return r, fmt.Errorf("hash lists: %w", err)
	}

	rng := rand.New(rand.NewPCG(14, 16))
	hashes := make([]pdq.Hash, o.Images)
	for i := range hashes {
		hashes[i] = randomHash(rng)
	}
	pub := list{owner: units[0], name: "bench-images"}
	c, err := e.newClient(pub, o)
	if err != nil {
		return r, err
	}
	defer c.Close()
	p.printf("images: publish %d PDQ hashes (%d OPRF evaluations each)", o.Images, token.PDQTokens)
	start := time.Now()
	res, err := c.Publish(ctx, bytes.NewReader(hashCSV(hashes)), client.PublishOptions{List: pub.name, Kind: normalize.PDQ, Category: "suspect"})
	if err != nil {
		return r, fmt.Errorf("publish images: %w", err)
	}
	r.Seconds = time.Since(start).Seconds()
	r.ImagesPerSec = float64(o.Images) / r.Seconds
	if got := res.List.GetEntries(); got != uint64(o.Images) {
		return r, fmt.Errorf("publish images: the hub committed %d images, want %d", got, o.Images)
	}

	checked := make([]pdq.Hash, 0, 2*checkedN)
	for i := range checkedN {
		checked = append(checked, flip(rng, hashes[i], 10))
	}
	for range checkedN {
		checked = append(checked, randomHash(rng))
	}
	q, err := e.newClient(list{owner: queryOwner, name: "bench-images-check"}, o)
	if err != nil {
		return r, err
	}
	defer q.Close()
	p.printf("images: check %d near copies and %d unrelated hashes", checkedN, checkedN)
	start = time.Now()
	chk, err := q.Check(ctx, bytes.NewReader(hashCSV(checked)), client.CheckOptions{Kind: normalize.PDQ}, benchQuery)
	if err != nil {
		return r, fmt.Errorf("check images: %w", err)
	}
	r.CheckMillisPerImage = float64(time.Since(start).Milliseconds()) / float64(len(checked))
	for _, m := range chk.Matches {
		if m.Line-2 < checkedN {
			r.CopiesFound++
		} else {
			r.UnrelatedFound++
		}
	}
	return r, nil
}

// hashCSV is a CSV of hashes under a header.
func hashCSV(hs []pdq.Hash) []byte {
	var b bytes.Buffer
	b.WriteString("pdq\n")
	for _, h := range hs {
		b.WriteString(h.String() + "\n")
	}
	return b.Bytes()
}

// randomHash is a uniformly random hash of weight 128.
func randomHash(rng *rand.Rand) pdq.Hash {
	var h pdq.Hash
	for _, k := range rng.Perm(256)[:128] {
		h[31-k/8] |= 1 << (k % 8)
	}
	return h
}

// flip returns h with n distinct random bits flipped.
func flip(rng *rand.Rand, h pdq.Hash, n int) pdq.Hash {
	for _, k := range rng.Perm(256)[:n] {
		h[31-k/8] ^= 1 << (k % 8)
	}
	return h
}

// hashMillis times PDQ on a decoded 1024×768 image of smooth random
// shapes, the best of 5 runs.
func hashMillis() float64 {
	img := image.NewRGBA(image.Rect(0, 0, 1024, 768))
	for y := range 768 {
		for x := range 1024 {
			v := 128 + 60*math.Sin(float64(x)/37) + 60*math.Cos(float64(y)/23+float64(x)/91)
			img.Set(x, y, color.RGBA{uint8(v), uint8(255 - v), uint8(v / 2), 255})
		}
	}
	best := math.Inf(1)
	for range 5 {
		start := time.Now()
		if _, _, err := pdq.FromImage(img); err != nil {
			return math.NaN()
		}
		best = min(best, float64(time.Since(start).Microseconds())/1e3)
	}
	return best
}
