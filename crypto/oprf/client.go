package oprf

import (
	"crypto/sha512"
	"fmt"

	r255 "github.com/gtank/ristretto255"

	"github.com/veilmatch/veilmatch/crypto/token"
)

// Client blinds inputs and verifies and finalizes evaluations against one
// pinned public key. It is safe for concurrent use.
type Client struct {
	keyID string
	pk    *r255.Element
	pkEnc []byte
}

// NewClient pins pub: every evaluation must carry a proof for this key.
func NewClient(pub PublicKey) (*Client, error) {
	if !ValidKeyID(pub.KeyID) {
		return nil, fmt.Errorf("%w: key id %q", ErrInvalidKey, pub.KeyID)
	}
	if len(pub.Bytes) != ElementSize {
		return nil, fmt.Errorf("%w: public key has %d bytes, want %d", ErrInvalidKey, len(pub.Bytes), ElementSize)
	}
	pk, err := decodeElement(pub.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not a valid non-identity element", ErrInvalidKey)
	}
	return &Client{keyID: pub.KeyID, pk: pk, pkEnc: append([]byte(nil), pub.Bytes...)}, nil
}

// KeyID returns the id of the pinned key.
func (c *Client) KeyID() string { return c.keyID }

// Batch is the client's state for one batch between Blind and Finalize. It
// holds the blinds: keep it in memory only.
type Batch struct {
	inputs  [][]byte
	blinds  []*r255.Scalar
	blinded []*r255.Element
	// Blinded holds the serialized blinded elements to send to the key server.
	Blinded [][]byte
}

// Len returns the number of inputs in the batch.
func (b *Batch) Len() int { return len(b.Blinded) }

// Blind blinds a batch of encoded inputs (see Input) with fresh random blinds.
func (c *Client) Blind(inputs [][]byte) (*Batch, error) { return blind(inputs) }

// blind blinds inputs with fresh random blinds.
func blind(inputs [][]byte) (*Batch, error) {
	blinds := make([]*r255.Scalar, len(inputs))
	for i := range blinds {
		blinds[i] = randomScalar()
	}
	return blindWith(inputs, blinds)
}

// blindWith blinds inputs[i] with the non-zero scalar blinds[i] (RFC 9497
// Blind): blinds[i]·HashToGroup(inputs[i]).
func blindWith(inputs [][]byte, blinds []*r255.Scalar) (*Batch, error) {
	if err := checkBatchLen(len(inputs)); err != nil {
		return nil, err
	}
	if len(blinds) != len(inputs) {
		return nil, fmt.Errorf("blind: %w: %d blinds for %d inputs", ErrInvalidInput, len(blinds), len(inputs))
	}
	b := &Batch{
		inputs:  inputs,
		blinds:  blinds,
		blinded: make([]*r255.Element, len(inputs)),
		Blinded: make([][]byte, len(inputs)),
	}
	enc := make([]byte, 0, len(inputs)*ElementSize)
	for i, in := range inputs {
		if len(in) > 0xffff {
			return nil, fmt.Errorf("blind: %w: input %d has %d bytes, more than 65535", ErrInvalidInput, i, len(in))
		}
		p := hashToGroup(in)
		if isIdentity(p) {
			return nil, fmt.Errorf("blind: %w: input %d hashes to the identity", ErrInvalidInput, i)
		}
		b.blinded[i] = r255.NewElement().ScalarMult(blinds[i], p) // the blind is secret: constant time
		start := len(enc)
		enc = b.blinded[i].Encode(enc)
		b.Blinded[i] = enc[start:len(enc):len(enc)]
	}
	return b, nil
}

// checkBatchLen refuses an empty batch and one RFC 9497 cannot number.
func checkBatchLen(n int) error {
	switch {
	case n == 0:
		return ErrEmptyBatch
	case n > MaxBatch:
		return fmt.Errorf("%w: %d elements, at most %d", ErrBatchTooLarge, n, MaxBatch)
	}
	return nil
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
	return tokens(outs)
}

// finalize returns the full 64-byte RFC 9497 outputs.
func (c *Client) finalize(b *Batch, evaluated [][]byte, proof []byte) ([][]byte, error) {
	elems, err := checkAnswer(b, evaluated, proof, c.pk, c.pkEnc)
	if err != nil {
		return nil, err
	}
	return unblind(b, elems), nil
}

// checkAnswer decodes a key server's answer for batch b and verifies its
// proof against the public key pk (serialized pkEnc).
func checkAnswer(b *Batch, evaluated [][]byte, proof []byte, pk *r255.Element, pkEnc []byte) ([]*r255.Element, error) {
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
	if !verifyProof(pk, pkEnc, b.blinded, elems, b.Blinded, evaluated, proof) {
		return nil, ErrInvalidProof
	}
	return elems, nil
}

// unblind returns the RFC 9497 outputs of b from the elements k·B_j:
// Hash(input, blind⁻¹·k·B_j, "Finalize").
func unblind(b *Batch, elems []*r255.Element) [][]byte {
	return outputs(b, func(j int, inv *r255.Scalar) *r255.Element {
		return r255.NewElement().ScalarMult(inv, elems[j]) // the blind is secret: constant time
	})
}

// outputs returns the RFC 9497 outputs of b, Hash(input, N_j, "Finalize"),
// where unblinded(j, 1/blind_j) computes the unblinded element N_j.
func outputs(b *Batch, unblinded func(j int, inv *r255.Scalar) *r255.Element) [][]byte {
	inv := invertAll(b.blinds)
	outs := make([][]byte, len(b.inputs))
	h := sha512.New()
	var buf []byte
	var enc [ElementSize]byte
	for j := range outs {
		buf = appendLen16(buf[:0], b.inputs[j])
		buf = appendLen16(buf, unblinded(j, inv[j]).Encode(enc[:0]))
		buf = append(buf, labelFinalize...)
		h.Reset()
		h.Write(buf)
		outs[j] = h.Sum(nil)
	}
	return outs
}

// tokens turns RFC 9497 outputs into tokens.
func tokens(outs [][]byte) ([]token.Token, error) {
	toks := make([]token.Token, len(outs))
	for i, o := range outs {
		var err error
		if toks[i], err = token.FromOutput(o); err != nil {
			return nil, fmt.Errorf("finalize element %d: %w", i, err)
		}
	}
	return toks, nil
}
