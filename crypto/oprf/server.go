package oprf

import (
	"errors"

	r255 "github.com/gtank/ristretto255"
)

// Errors about a batch's size.
var (
	// ErrEmptyBatch reports a batch with no elements.
	ErrEmptyBatch = errors.New("oprf: empty batch")
	// ErrBatchTooLarge reports a batch of more than MaxBatch elements.
	ErrBatchTooLarge = errors.New("oprf: batch too large")
)

// Evaluator evaluates the VOPRF for one private key. It is safe for
// concurrent use.
type Evaluator struct {
	key *PrivateKey
}

// NewEvaluator returns an evaluator for k.
func NewEvaluator(k *PrivateKey) *Evaluator { return &Evaluator{key: k} }

// KeyID returns the id of the evaluator's key.
func (e *Evaluator) KeyID() string { return e.key.id }

// PublicKey returns the evaluator's public key.
func (e *Evaluator) PublicKey() PublicKey { return e.key.Public() }

// BlindedBatch is a validated batch of blinded elements.
type BlindedBatch struct {
	elems []*r255.Element
	// enc holds the elements as received; decoding accepts only canonical
	// encodings, so these are their serializations.
	enc [][]byte
}

// Len returns the number of elements.
func (b *BlindedBatch) Len() int { return len(b.elems) }

// DecodeBatch validates serialized blinded elements: each must be a
// canonical, non-identity ristretto255 element. A bad element yields an
// *ElementError naming its index.
func DecodeBatch(blinded [][]byte) (*BlindedBatch, error) {
	if err := checkBatchLen(len(blinded)); err != nil {
		return nil, err
	}
	elems, err := decodeElements(blinded)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, len(blinded)*ElementSize)
	enc := make([][]byte, len(blinded))
	for i, b := range blinded {
		start := len(buf)
		buf = append(buf, b...)
		enc[i] = buf[start:len(buf):len(buf)]
	}
	return &BlindedBatch{elems: elems, enc: enc}, nil
}

// Evaluate evaluates a validated batch and returns the serialized evaluated
// elements, in order, with one batched DLEQ proof.
func (e *Evaluator) Evaluate(b *BlindedBatch) (evaluated [][]byte, proof []byte, err error) {
	evaluated, proof = e.evaluate(b, randomScalar())
	return evaluated, proof, nil
}

// evaluate is RFC 9497 BlindEvaluate with proof nonce r.
func (e *Evaluator) evaluate(b *BlindedBatch, r *r255.Scalar) (evaluated [][]byte, proof []byte) {
	k := e.key.scalar
	evaluated = make([][]byte, len(b.elems))
	buf := make([]byte, 0, len(b.elems)*ElementSize)
	for i, be := range b.elems {
		z := r255.NewElement().ScalarMult(k, be) // the key is secret: constant time
		start := len(buf)
		buf = z.Encode(buf)
		evaluated[i] = buf[start:len(buf):len(buf)]
	}
	return evaluated, prove(k, e.key.pub, b.elems, b.enc, evaluated, r)
}
