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

// Evaluate validates and evaluates a batch of serialized blinded elements
// and returns the serialized evaluated elements, in order, with one batched
// DLEQ proof. A bad element yields an *ElementError naming its index.
func (e *Evaluator) Evaluate(blinded [][]byte) (evaluated [][]byte, proof []byte, err error) {
	if len(blinded) == 0 {
		return nil, nil, ErrEmptyBatch
	}
	elems, err := decodeElements(blinded)
	if err != nil {
		return nil, nil, err
	}
	ev, err := e.server.Evaluate(&voprf.EvaluationRequest{Elements: elems})
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
