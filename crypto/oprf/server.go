package oprf

import (
	"errors"
	"fmt"

	voprf "github.com/cloudflare/circl/oprf"
)

// ErrEmptyBatch reports a batch with no elements.
var ErrEmptyBatch = errors.New("oprf: empty batch")

// Evaluator evaluates the VOPRF for one private key. It is safe for
// concurrent use.
type Evaluator struct {
	key    *PrivateKey
	server voprf.VerifiableServer
}

// NewEvaluator returns an evaluator for k.
func NewEvaluator(k *PrivateKey) *Evaluator {
	return &Evaluator{key: k, server: voprf.NewVerifiableServer(suite, k.k)}
}

// KeyID returns the id of the evaluator's key.
func (e *Evaluator) KeyID() string { return e.key.id }

// PublicKey returns the evaluator's public key.
func (e *Evaluator) PublicKey() PublicKey { return e.key.Public() }

// BlindedBatch is a validated batch of blinded elements.
type BlindedBatch struct {
	elems []voprf.Blinded
}

// Len returns the number of elements.
func (b *BlindedBatch) Len() int { return len(b.elems) }

// DecodeBatch validates serialized blinded elements: each must be a
// canonical, non-identity ristretto255 element. A bad element yields an
// *ElementError naming its index.
func DecodeBatch(blinded [][]byte) (*BlindedBatch, error) {
	if len(blinded) == 0 {
		return nil, ErrEmptyBatch
	}
	elems, err := decodeElements(blinded)
	if err != nil {
		return nil, err
	}
	return &BlindedBatch{elems: elems}, nil
}

// Evaluate evaluates a validated batch and returns the serialized evaluated
// elements, in order, with one batched DLEQ proof.
func (e *Evaluator) Evaluate(b *BlindedBatch) (evaluated [][]byte, proof []byte, err error) {
	ev, err := e.server.Evaluate(&voprf.EvaluationRequest{Elements: b.elems})
	if err != nil {
		return nil, nil, fmt.Errorf("evaluate: %w", err)
	}
	evaluated, err = encodeElements(ev.Elements)
	if err != nil {
		return nil, nil, err
	}
	proof, err = ev.Proof.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("serialize proof: %w", err)
	}
	return evaluated, proof, nil
}
