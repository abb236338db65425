package pdq

import (
	"fmt"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

func shared(delta, rE, rQ int) int {
	n := 0
	for i := 0; i <= delta; i++ {
		for j := 0; j <= 32-delta; j++ {
			if i+j <= rQ && delta-i+j <= rE {
				n += int(choose(delta, i) * choose(32-delta, j))
			}
		}
	}
	return n
}

func TestStudyBands(t *testing.T) {
	if os.Getenv("PDQ_BANDS") == "" {
		t.Skip("exploration")
	}
	rE, rQ := 2, 2
	var sig func(a, b Hash) string
	sig = func(a, b Hash) string {
		var cs []int
		for i := range Chunks {
			d := bits.OnesCount32(a.Chunk(i) ^ b.Chunk(i))
			if c := shared(d, rE, rQ); c > 0 {
				cs = append(cs, c)
			}
		}
		slices.Sort(cs)
		slices.Reverse(cs)
		return fmt.Sprint(cs)
	}
	for d := 0; d <= rE+rQ+1; d++ {
		t.Logf("delta %d shared %d", d, shared(d, rE, rQ))
	}
	imgs := studyImages(t)
	hashes := hashTransforms(t, imgs, studyTransforms())
	original := map[string]Hash{}
	for _, sh := range hashes {
		if sh.transform == "" {
			original[sh.image] = sh.h
		}
	}
	type cnt struct{ tr, li, un int }
	m := map[string]*cnt{}
	get := func(s string) *cnt {
		if m[s] == nil {
			m[s] = &cnt{}
		}
		return m[s]
	}
	ntr, nli, nun := 0, 0, 0
	for _, sh := range hashes {
		if sh.transform == "" || sh.quality < 50 {
			continue
		}
		if Distance(original[sh.image], sh.h) <= 31 {
			get(sig(original[sh.image], sh.h)).tr++
			ntr++
		}
	}
	haystack := dedupe(slices.Concat(readHashList(t, "haystack.txt"), readHashList(t, "needles.txt")))
	var frames []Hash
	for _, name := range []string{"chair-orig-22-hd-no-bar.txt", "chair-19-sd-bar.txt", "pattern-hd-no-bar.txt", "test-padded-dimensions.txt"} {
		frames = append(frames, readHashList(t, name)...)
	}
	frames = dedupe(frames)
	for _, hs := range [][]Hash{haystack, frames} {
		for i := range hs {
			for j := i + 1; j < len(hs); j++ {
				d := Distance(hs[i], hs[j])
				if d <= 31 {
					get(sig(hs[i], hs[j])).li++
					nli++
				} else if d >= 64 {
					c := Candidates(hs[i], hs[j], rE+rQ)
					if c > 0 {
						get(sig(hs[i], hs[j])).un++
					}
					nun++
				}
			}
		}
	}
	for i, a := range hashes {
		for _, b := range hashes[i+1:] {
			if a.group != b.group && Distance(a.h, b.h) >= 64 {
				if Candidates(a.h, b.h, rE+rQ) > 0 {
					get(sig(a.h, b.h)).un++
				}
				nun++
			}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "transforms %d lists %d unrelated %d\n", ntr, nli, nun)
	for _, k := range keys {
		c := m[k]
		fmt.Fprintf(&b, "%-30s tr %5d li %5d un %7d\n", k, c.tr, c.li, c.un)
	}
	t.Log(b.String())
}
