package pdq

import (
	"encoding/hex"
	"fmt"
	"math/bits"
)

// Hash is a 256-bit PDQ hash. Its bytes are in the order of Meta's
// hexadecimal form: Hash[0] holds bits 255..248 of the hash and Hash[31]
// bits 7..0, where bit i*16+j is set when DCT coefficient (i, j) lies
// above the median of the 16×16 coefficients.
type Hash [32]byte

// String returns the hash as 64 lower-case hexadecimal digits, exactly as
// Meta's pdq-photo-hasher prints it.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// ParseHash parses 64 hexadecimal digits (either case), as String writes
// them and Meta's tools print them.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("pdq: parse hash %q: want %d hex digits, got %d", s, 2*len(h), len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("pdq: parse hash %q: %w", s, err)
	}
	return h, nil
}

// Distance returns the Hamming distance between a and b: the number of
// bits in which they differ, 0 to 256. Meta considers hashes within 31
// bits of each other a match.
func Distance(a, b Hash) int {
	n := 0
	for i := range a {
		n += bits.OnesCount8(a[i] ^ b[i])
	}
	return n
}

// setBit sets bit k (0..255) in Meta's numbering.
func (h *Hash) setBit(k int) {
	h[31-(k>>3)] |= 1 << (k & 7)
}
