// Package oprf is veilmatch's use of the RFC 9497 oblivious pseudorandom
// function: suite ristretto255-SHA512 in verifiable mode (VOPRF), from
// github.com/cloudflare/circl/oprf. It adds what the protocol leaves to the
// application: the kind-separated input encoding, key files, validation of
// untrusted elements with errors that name the item at fault, and batch
// helpers that turn Finalize outputs into tokens.
//
// No group arithmetic or hash-to-curve is written here; every cryptographic
// operation is circl's.
package oprf

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	voprf "github.com/cloudflare/circl/oprf"
)

// SuiteID is the RFC 9497 identifier of the only suite veilmatch speaks.
const SuiteID = "ristretto255-SHA512"

// ElementSize is the length of a serialized ristretto255 element, and
// ProofSize the length of a serialized batched DLEQ proof (c || s).
const (
	ElementSize = 32
	ProofSize   = 64
)

// inputPrefix domain-separates veilmatch inputs from any other use of the
// same key.
const inputPrefix = "veilmatch/v1"

var suite = voprf.SuiteRistretto255

// Errors returned by this package. Callers branch on them with errors.Is.
var (
	// ErrInvalidElement reports an element that does not decode to a valid,
	// canonically encoded, non-identity group element.
	ErrInvalidElement = errors.New("oprf: invalid element")
	// ErrInvalidProof reports a DLEQ proof that does not verify against the
	// pinned public key.
	ErrInvalidProof = errors.New("oprf: proof verification failed")
	// ErrInvalidInput reports an input that cannot be encoded.
	ErrInvalidInput = errors.New("oprf: invalid input")
	// ErrInvalidKey reports a malformed key or key file.
	ErrInvalidKey = errors.New("oprf: invalid key")
)

// Input encodes one canonical identifier of the given kind as an OPRF input:
//
//	"veilmatch/v1" || len16(kind) || kind || len16(value) || value
//
// with big-endian 16-bit lengths, so no two (kind, value) pairs share an
// encoding: a phone number never collides with an e-mail address of the same
// characters.
func Input(kind, value string) ([]byte, error) {
	if kind == "" || len(kind) > 0xffff {
		return nil, fmt.Errorf("%w: kind length %d", ErrInvalidInput, len(kind))
	}
	if len(value) > 0xffff {
		return nil, fmt.Errorf("%w: value length %d exceeds 65535", ErrInvalidInput, len(value))
	}
	b := make([]byte, 0, len(inputPrefix)+4+len(kind)+len(value))
	b = append(b, inputPrefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(kind)))
	b = append(b, kind...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	b = append(b, value...)
	return b, nil
}

// ElementError names the element of a batch that failed validation.
type ElementError struct {
	Index int
	Err   error
}

// Error implements error. It names the index and the reason, never the bytes.
func (e *ElementError) Error() string { return fmt.Sprintf("element %d: %v", e.Index, e.Err) }

// Unwrap returns the reason.
func (e *ElementError) Unwrap() error { return e.Err }

// decodeElement decodes a serialized element, rejecting wrong lengths,
// non-canonical encodings and the identity element, as RFC 9497 section
// 3.3 requires of the party that receives it.
func decodeElement(b []byte) (group.Element, error) {
	if len(b) != ElementSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidElement, len(b), ElementSize)
	}
	e := suite.Group().NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: not a canonical ristretto255 encoding", ErrInvalidElement)
	}
	if e.IsIdentity() {
		return nil, fmt.Errorf("%w: identity element", ErrInvalidElement)
	}
	return e, nil
}

// decodeElements decodes serialized elements with decodeElement; a bad one
// yields an *ElementError naming its index.
func decodeElements(items [][]byte) ([]voprf.Blinded, error) {
	out := make([]voprf.Blinded, len(items))
	for i, b := range items {
		e, err := decodeElement(b)
		if err != nil {
			return nil, &ElementError{i, err}
		}
		out[i] = e
	}
	return out, nil
}

// encodeElements serializes group elements with RFC 9497 SerializeElement.
func encodeElements(elems []voprf.Evaluated) ([][]byte, error) {
	out := make([][]byte, len(elems))
	for i, e := range elems {
		b, err := e.MarshalBinaryCompress()
		if err != nil {
			return nil, fmt.Errorf("serialize element %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}
