package pdq

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Chunks is the number of 32-bit chunks a hash is split into for blinded
// matching. Two hashes within Meta's match threshold of 31 bits differ,
// by the pigeonhole principle, in at most 3 bits of some chunk (8 chunks
// of 4 or more differing bits would make 32), so chunk distance ≤ 3 in at
// least one chunk is a necessary condition for a match.
const Chunks = 8

// MaxBallRadius is the largest radius Ball expands: |Ball(32, 2)| = 529
// values, while radius 3 would be 5,489 per chunk (43,912 OPRF
// evaluations per hash), too many to blind.
const MaxBallRadius = 2

// Chunk returns chunk i (0 ≤ i < Chunks) of h: DCT coefficient rows 2i and
// 2i+1, which are hash bits 32i to 32i+31. Bit b of the result (value
// 1<<b) is hash bit 32i+b, that is coefficient (2i + b/16, b%16); so the
// result is the big-endian uint32 of bytes h[28-4i : 32-4i]: in hex, it is
// h.String()[56-8i : 64-8i]. It panics if i is out of range.
func (h Hash) Chunk(i int) uint32 {
	if i < 0 || i >= Chunks {
		panic(fmt.Sprintf("pdq: chunk index %d out of range [0, %d)", i, Chunks))
	}
	return binary.BigEndian.Uint32(h[28-4*i : 32-4*i])
}

// Ball returns every 32-bit value within Hamming distance r of c, each
// once, in a fixed order: c first, then c with bit a flipped for a = 0..31
// (r ≥ 1), then c with bits a and b flipped for a < b in lexicographic
// order (r = 2). That is 1, 33 or 529 values.
//
// It panics unless 0 ≤ r ≤ MaxBallRadius: the radius is a protocol
// constant, not data, so a bad one is a programming error, and radius 3
// (5,489 values per chunk) is beyond what a client should blind.
func Ball(c uint32, r int) []uint32 {
	if r < 0 || r > MaxBallRadius {
		panic(fmt.Sprintf("pdq: ball radius %d out of range [0, %d]", r, MaxBallRadius))
	}
	n := 1
	if r >= 1 {
		n += 32
	}
	if r >= 2 {
		n += 32 * 31 / 2
	}
	out := make([]uint32, 0, n)
	out = append(out, c)
	if r >= 1 {
		for a := range 32 {
			out = append(out, c^1<<a)
		}
	}
	if r >= 2 {
		for a := range 32 {
			for b := a + 1; b < 32; b++ {
				out = append(out, c^1<<a^1<<b)
			}
		}
	}
	return out
}

// chunkPrefix is the domain-separation prefix of ChunkInput.
const chunkPrefix = "pdq-chunk/"

// ChunkInput returns the OPRF input for value c at chunk index i: the 10
// ASCII bytes "pdq-chunk/", then i as one byte, then c as 4 big-endian
// bytes (15 bytes in all). The fixed length makes the encoding injective,
// and the index keeps equal values at different chunk positions from
// yielding equal tokens. It panics if i is out of range.
func ChunkInput(i int, c uint32) []byte {
	if i < 0 || i >= Chunks {
		panic(fmt.Sprintf("pdq: chunk index %d out of range [0, %d)", i, Chunks))
	}
	b := make([]byte, 0, len(chunkPrefix)+1+4)
	b = append(b, chunkPrefix...)
	b = append(b, byte(i))
	return binary.BigEndian.AppendUint32(b, c)
}

// Candidates returns the number of chunk indices i at which a.Chunk(i) and
// b.Chunk(i) differ in at most radius bits. With the enrolling side
// blinding balls of radius rE and the querying side balls of radius rQ,
// the two balls at index i share a value exactly when the chunks are
// within rE+rQ, so Candidates(a, b, rE+rQ) is the number of chunk indices
// at which the hub sees equal tokens.
func Candidates(a, b Hash, radius int) int {
	n := 0
	for i := range Chunks {
		if bits.OnesCount32(a.Chunk(i)^b.Chunk(i)) <= radius {
			n++
		}
	}
	return n
}

// Values returns the values an agency blinds for h to match it as a
// near-duplicate: for each chunk index i, ChunkInput(i, v) for every v in
// Ball(h.Chunk(i), MaxBallRadius); token.PDQTokens values in all, chunk
// by chunk in Ball's order. The caller must not reveal that order with
// the tokens (the first of each chunk is the chunk itself).
func (h Hash) Values() [][]byte {
	out := make([][]byte, 0, Chunks*ballLen)
	for i := range Chunks {
		for _, v := range Ball(h.Chunk(i), MaxBallRadius) {
			out = append(out, ChunkInput(i, v))
		}
	}
	return out
}

// ballLen is |Ball(32, MaxBallRadius)|.
const ballLen = 1 + 32 + 32*31/2

// SharedTokens returns how many of the near-duplicate tokens of a and b
// (Values) are equal: at each chunk index, the values within
// MaxBallRadius of both chunks. The hub computes it by counting equal
// tokens; token.PDQNear decides on it.
func SharedTokens(a, b Hash) int {
	n := 0
	for i := range Chunks {
		n += ballsShared[bits.OnesCount32(a.Chunk(i)^b.Chunk(i))]
	}
	return n
}

// ballsShared[δ] is how many values Ball(x, MaxBallRadius) and
// Ball(y, MaxBallRadius) share when x and y are δ bits apart: the values
// that differ from x in i of the δ bits and in j others, hence from y in
// δ-i and j, with both within the radius.
var ballsShared = func() (n [33]int) {
	for delta := range n {
		for i := 0; i <= min(delta, MaxBallRadius); i++ {
			for j := 0; i+j <= MaxBallRadius && j <= 32-delta; j++ {
				if delta-i+j <= MaxBallRadius {
					n[delta] += binomial(delta, i) * binomial(32-delta, j)
				}
			}
		}
	}
	return n
}()

// binomial is n choose k for the small arguments of ballsShared.
func binomial(n, k int) int {
	c := 1
	for i := range k {
		c = c * (n - i) / (i + 1)
	}
	return c
}
