// Package oprf is veilmatch's use of the RFC 9497 oblivious pseudorandom
// function: suite ristretto255-SHA512 in verifiable mode (VOPRF). It adds
// what the protocol leaves to the application: the kind-separated input
// encoding, key files and endorsements, validation of untrusted elements
// with errors that name the item at fault, and batch helpers that turn
// Finalize outputs into tokens.
//
// The protocol is computed here rather than by circl's oprf package, for
// speed: the batched proof's composites by multi-scalar multiplication on
// both sides, one batched inversion to unblind, and every element decoded
// and encoded once. Its outputs, evaluated elements and proofs are
// byte-identical to circl's for the same inputs and randomness (the RFC
// 9497 vectors and a differential test against circl hold it to that). No
// group or field arithmetic and no hash-to-curve is written here: group
// operations are github.com/gtank/ristretto255's, expand_message_xmd and
// the endorsements' proofs circl's (see group.go).
package oprf

import (
	"encoding/binary"
	"errors"
	"fmt"

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
