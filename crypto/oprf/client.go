package oprf

import (
	"fmt"

	voprf "github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"

	"github.com/veilmatch/veilmatch/crypto/token"
)

// Client blinds inputs and verifies and finalizes evaluations against one
// pinned public key. It is safe for concurrent use.
type Client struct {
	keyID  string
	client voprf.VerifiableClient
}

// NewClient pins pub: every evaluation must carry a proof for this key.
func NewClient(pub PublicKey) (*Client, error) {
	if !ValidKeyID(pub.KeyID) {
		return nil, fmt.Errorf("%w: key id %q", ErrInvalidKey, pub.KeyID)
	}
	if len(pub.Bytes) != ElementSize {
		return nil, fmt.Errorf("%w: public key has %d bytes, want %d", ErrInvalidKey, len(pub.Bytes), ElementSize)
	}
	pk := new(voprf.PublicKey)
	if err := pk.UnmarshalBinary(suite, pub.Bytes); err != nil {
		return nil, fmt.Errorf("%w: public key is not a valid non-identity element", ErrInvalidKey)
	}
	return &Client{keyID: pub.KeyID, client: voprf.NewVerifiableClient(suite, pk)}, nil
}

// KeyID returns the id of the pinned key.
func (c *Client) KeyID() string { return c.keyID }

// Batch is the client's state for one batch between Blind and Finalize. It
// holds the blinds: keep it in memory only.
type Batch struct {
	fin *voprf.FinalizeData
	req *voprf.EvaluationRequest
	// Blinded holds the serialized blinded elements to send to the key server.
	Blinded [][]byte
}

// Len returns the number of inputs in the batch.
func (b *Batch) Len() int { return len(b.Blinded) }

// Blind blinds a batch of encoded inputs (see Input) with fresh random blinds.
func (c *Client) Blind(inputs [][]byte) (*Batch, error) {
	if len(inputs) == 0 {
		return nil, ErrEmptyBatch
	}
	fin, req, err := c.client.Blind(inputs)
	return newBatch(fin, req, err)
}

// blind is Blind with caller-chosen blinds, for known-answer tests.
func (c *Client) blind(inputs [][]byte, blinds []voprf.Blind) (*Batch, error) {
	fin, req, err := c.client.DeterministicBlind(inputs, blinds)
	return newBatch(fin, req, err)
}

func newBatch(fin *voprf.FinalizeData, req *voprf.EvaluationRequest, err error) (*Batch, error) {
	if err != nil {
		return nil, fmt.Errorf("blind: %w", err)
	}
	blinded, err := encodeElements(req.Elements)
	if err != nil {
		return nil, err
	}
	return &Batch{fin: fin, req: req, Blinded: blinded}, nil
}

// Finalize verifies the key server's batched proof against the pinned key,
// unblinds and finalizes every element, and returns one token per input in
// order. A key server that evaluated under another key (for example to tag
// one agency) fails with ErrInvalidProof.
func (c *Client) Finalize(b *Batch, evaluated [][]byte, proof []byte) ([]token.Token, error) {
	outs, err := c.finalize(b, evaluated, proof)
	if err != nil {
		return nil, err
	}
	toks := make([]token.Token, len(outs))
	for i, o := range outs {
		if toks[i], err = token.FromOutput(o); err != nil {
			return nil, fmt.Errorf("finalize element %d: %w", i, err)
		}
	}
	return toks, nil
}

// finalize returns the full 64-byte RFC 9497 outputs.
func (c *Client) finalize(b *Batch, evaluated [][]byte, proof []byte) ([][]byte, error) {
	if len(evaluated) != b.Len() {
		return nil, fmt.Errorf("%w: %d evaluated elements for %d blinded", ErrInvalidElement, len(evaluated), b.Len())
	}
	elems, err := decodeElements(evaluated)
	if err != nil {
		return nil, err
	}
	if len(proof) != ProofSize {
		return nil, fmt.Errorf("%w: proof has %d bytes, want %d", ErrInvalidProof, len(proof), ProofSize)
	}
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(suite.Group(), proof); err != nil {
		return nil, fmt.Errorf("%w: proof does not decode", ErrInvalidProof)
	}
	outs, err := c.client.Finalize(b.fin, &voprf.Evaluation{Elements: elems, Proof: p})
	if err != nil {
		if err == voprf.ErrInvalidProof {
			return nil, ErrInvalidProof
		}
		return nil, fmt.Errorf("finalize: %w", err)
	}
	return outs, nil
}
