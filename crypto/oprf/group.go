package oprf

import (
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/cloudflare/circl/expander"
	"github.com/cloudflare/circl/group"
	r255 "github.com/gtank/ristretto255"
)

// The suite's group operations. Group and field arithmetic is
// github.com/gtank/ristretto255's (RFC 9496, on Henry de Valence's and
// Filippo Valsorda's edwards25519), which offers the multi-scalar
// multiplication circl's group interface lacks; expand_message_xmd is
// circl's. Nothing here computes on coordinates.
//
// Constant time: every operation on a secret (the key, a blind, the proof
// nonce) uses a constant-time call — ScalarMult, ScalarBaseMult,
// MultiScalarMult, Scalar Multiply and Invert. Variable-time calls (VarTimeMultiScalarMult,
// VarTimeDoubleScalarBaseMult) only ever see public values: elements that
// travel on the wire, the public key, and scalars derived from them by
// hashing or sent in the proof.

// contextString is RFC 9497's contextString for ristretto255-SHA512 in
// verifiable mode: "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
const contextString = "OPRFV1-\x01-" + SuiteID

// Domain separation tags and labels of RFC 9497.
var (
	dstHashToGroup  = []byte("HashToGroup-" + contextString)
	dstHashToScalar = []byte("HashToScalar-" + contextString)
	seedDST         = []byte("Seed-" + contextString)
)

const (
	labelComposite = "Composite"
	labelChallenge = "Challenge"
	labelFinalize  = "Finalize"
)

// MaxBatch is the most elements one batch may hold: RFC 9497 numbers a
// batch's elements with two bytes.
const MaxBatch = 1 << 16

// hashToGroup is RFC 9380's hash_to_ristretto255 with the suite's DST:
// expand_message_xmd(SHA-512) to 64 bytes, then RFC 9496's element
// derivation (gtank's FromUniformBytes).
func hashToGroup(input []byte) *r255.Element {
	u := expander.NewExpanderMD(crypto.SHA512, dstHashToGroup).Expand(input, 64)
	return r255.NewElement().FromUniformBytes(u)
}

// hashToScalar is the suite's HashToScalar: expand_message_xmd(SHA-512) to
// 64 bytes, reduced modulo the group order as a little-endian integer.
func hashToScalar(msg []byte) *r255.Scalar {
	u := expander.NewExpanderMD(crypto.SHA512, dstHashToScalar).Expand(msg, 64)
	return r255.NewScalar().FromUniformBytes(u)
}

// randomScalar returns a uniformly random non-zero scalar.
func randomScalar() *r255.Scalar {
	var b [64]byte
	zero := r255.NewScalar()
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails.
		s := r255.NewScalar().FromUniformBytes(b[:])
		if s.Equal(zero) == 0 {
			clear(b[:])
			return s
		}
	}
}

// isIdentity reports whether e is the identity element.
func isIdentity(e *r255.Element) bool { return e.Equal(r255.NewElement()) == 1 }

// decodeElement decodes a serialized element, rejecting wrong lengths,
// non-canonical encodings and the identity element, as RFC 9497 section
// 3.3 requires of the party that receives it.
func decodeElement(b []byte) (*r255.Element, error) {
	if len(b) != ElementSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidElement, len(b), ElementSize)
	}
	e := r255.NewElement()
	if err := e.Decode(b); err != nil {
		return nil, fmt.Errorf("%w: not a canonical ristretto255 encoding", ErrInvalidElement)
	}
	if isIdentity(e) {
		return nil, fmt.Errorf("%w: identity element", ErrInvalidElement)
	}
	return e, nil
}

// decodeElements decodes serialized elements with decodeElement; a bad one
// yields an *ElementError naming its index.
func decodeElements(items [][]byte) ([]*r255.Element, error) {
	out := make([]*r255.Element, len(items))
	for i, b := range items {
		e, err := decodeElement(b)
		if err != nil {
			return nil, &ElementError{i, err}
		}
		out[i] = e
	}
	return out, nil
}

// circlElement decodes b, validated as decodeElement does, into circl's
// group, for the proofs that circl's zk packages make (see Endorse).
func circlElement(b []byte) (group.Element, error) {
	if _, err := decodeElement(b); err != nil {
		return nil, err
	}
	e := group.Ristretto255.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: not a canonical ristretto255 encoding", ErrInvalidElement)
	}
	return e, nil
}

// decodeScalar decodes a canonical 32-byte scalar.
func decodeScalar(b []byte) (*r255.Scalar, error) {
	s := r255.NewScalar()
	if len(b) != ElementSize {
		return nil, fmt.Errorf("scalar has %d bytes, want %d", len(b), ElementSize)
	}
	if err := s.Decode(b); err != nil {
		return nil, fmt.Errorf("not a canonical scalar")
	}
	return s, nil
}

// appendLen16 appends len(b) as a big-endian uint16, then b: RFC 9497's
// I2OSP(len(b), 2) || b. Every b passed here is short by construction.
func appendLen16(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// invertAll returns the inverses of non-zero scalars by Montgomery's trick:
// one inversion and three multiplications per scalar instead of one
// inversion each. Every call is constant time; the blinds it inverts are
// secret.
func invertAll(s []*r255.Scalar) []*r255.Scalar {
	out := make([]*r255.Scalar, len(s))
	if len(s) == 0 {
		return out
	}
	// prefix[i] = s[0]·…·s[i]
	prefix := make([]r255.Scalar, len(s))
	prefix[0] = *s[0]
	for i := 1; i < len(s); i++ {
		prefix[i].Multiply(&prefix[i-1], s[i])
	}
	inv := r255.NewScalar().Invert(&prefix[len(s)-1]) // 1/(s[0]·…·s[i]), i from n-1 down
	for i := len(s) - 1; i > 0; i-- {
		out[i] = r255.NewScalar().Multiply(inv, &prefix[i-1])
		inv = r255.NewScalar().Multiply(inv, s[i])
	}
	out[0] = inv
	return out
}
