package token

import "fmt"

// Near-duplicate PDQ matching. An agency turns a 256-bit PDQ hash into
// PDQTokens tokens: for each of its 8 chunks of 32 bits, one token per
// value within Hamming distance 2 of the chunk (1 + 32 + 496 = 529), the
// chunk's index inside the OPRF input (see client/pdq). Two hashes whose
// chunks i are δ bits apart share, at chunk i, the values within 2 of both
// chunks: 529 tokens if δ = 0, 64 if δ is 1 or 2, 6 if δ is 3 or 4, none
// beyond. The hub counts the tokens two entries share; the count decodes
// uniquely into how many chunks fall in each band (6·8 < 64 and 64·8 <
// 529), hence into a lower bound on the distance of the two hashes: 0, 1
// or 3 bits per band, 5 per chunk without a shared token. PDQNear accepts
// the pair when that bound is at most PDQBound.
const (
	// PDQKind is the list kind whose entries match as near-duplicates.
	PDQKind = "pdq"
	// PDQTokens is the number of tokens of one PDQ hash.
	PDQTokens = 8 * 529
	// PDQBound is the largest accepted lower bound on the distance. Pairs
	// within Meta's match threshold (31) have a bound of at most their
	// distance; 27, not 31, leaves out the pairs whose only shared chunks
	// are one or two at distance 3–4 (a bound of 29–31), which is where
	// unrelated images meet (see docs/images.md for the measurements).
	PDQBound = 27
)

// pdqBand are the shared-token counts of one chunk, by band, and the
// distance bound each contributes; a chunk without shared tokens
// contributes pdqNone.
var pdqBand = [3]struct{ shared, bound int }{{529, 0}, {64, 1}, {6, 3}}

const pdqNone = 5

// PDQDistanceBound returns the lower bound on the Hamming distance of two
// PDQ hashes whose token sets share shared tokens, or false if no pair of
// hashes shares that many (the tokens were not made as described above).
func PDQDistanceBound(shared int) (int, bool) {
	chunks, bound := 0, 0
	for _, b := range pdqBand {
		n := shared / b.shared
		shared -= n * b.shared
		chunks += n
		bound += n * b.bound
	}
	if shared != 0 || chunks > 8 {
		return 0, false
	}
	return bound + (8-chunks)*pdqNone, true
}

// PDQNear reports whether two PDQ entries sharing shared tokens match.
func PDQNear(shared int) bool {
	b, ok := PDQDistanceBound(shared)
	return ok && b <= PDQBound
}

// PDQNearSQL is PDQNear as a SQL condition on the integer expression n
// (the shared-token count), for SQLite and PostgreSQL alike: integer
// division and remainder decode the bands as PDQDistanceBound does.
func PDQNearSQL(n string) string {
	a := fmt.Sprintf("((%s) / %d)", n, pdqBand[0].shared)
	r := fmt.Sprintf("((%s) %% %d)", n, pdqBand[0].shared)
	b := fmt.Sprintf("(%s / %d)", r, pdqBand[1].shared)
	r2 := fmt.Sprintf("(%s %% %d)", r, pdqBand[1].shared)
	c := fmt.Sprintf("(%s / %d)", r2, pdqBand[2].shared)
	return fmt.Sprintf("(%s %% %d = 0 AND %s + %s + %s <= 8 AND %d*(8 - %s - %s - %s) + %d*%s + %d*%s + %d*%s <= %d)",
		r2, pdqBand[2].shared, a, b, c,
		pdqNone, a, b, c, pdqBand[0].bound, a, pdqBand[1].bound, b, pdqBand[2].bound, c, PDQBound)
}
