package oprf

import (
	"crypto/sha512"
	"encoding/binary"

	r255 "github.com/gtank/ristretto255"
)

// The batched DLEQ proof of RFC 9497 section 2.2, with the fixed generator
// G: the key server proves that it evaluated every element of a batch
// under the key whose public key the client pinned. The composites M and Z
// fold a batch into one statement; both sides compute them by
// multi-scalar multiplication over public values (the elements on the
// wire and weights hashed from them), so variable time is safe there.

// compositeWeights returns the weights d_i of RFC 9497's ComputeComposites
// for a batch: HashToScalar(seed, i, C_i, D_i), where the seed binds the
// public key. blinded and evaluated are the serialized elements C_i, D_i.
func compositeWeights(pk []byte, blinded, evaluated [][]byte) []*r255.Scalar {
	h := sha512.New()
	h.Write(appendLen16(nil, pk))
	h.Write(appendLen16(nil, seedDST))
	seed := h.Sum(nil)

	d := make([]*r255.Scalar, len(blinded))
	buf := make([]byte, 0, 2+len(seed)+2+2+ElementSize+2+ElementSize+len(labelComposite))
	for i := range blinded {
		buf = appendLen16(buf[:0], seed)
		buf = binary.BigEndian.AppendUint16(buf, uint16(i)) // i < MaxBatch
		buf = appendLen16(buf, blinded[i])
		buf = appendLen16(buf, evaluated[i])
		buf = append(buf, labelComposite...)
		d[i] = hashToScalar(buf)
	}
	return d
}

// challenge is RFC 9497's proof challenge: HashToScalar over the public key,
// the composites M and Z and the commitments t2 and t3.
func challenge(pk []byte, m, z, t2, t3 *r255.Element) *r255.Scalar {
	buf := make([]byte, 0, 5*(2+ElementSize)+len(labelChallenge))
	buf = appendLen16(buf, pk)
	var enc [ElementSize]byte
	for _, e := range []*r255.Element{m, z, t2, t3} {
		buf = appendLen16(buf, e.Encode(enc[:0]))
	}
	return hashToScalar(append(buf, labelChallenge...))
}

// prove returns the proof c || s that evaluated[i] = k·blinded[i] for every
// i, under nonce r (RFC 9497 GenerateProof with ComputeCompositesFast).
// blindedEnc and evaluatedEnc are the elements' serializations, pk k's
// public key.
func prove(k *r255.Scalar, pk []byte, blinded []*r255.Element, blindedEnc, evaluatedEnc [][]byte, r *r255.Scalar) []byte {
	d := compositeWeights(pk, blindedEnc, evaluatedEnc)
	m := r255.NewElement().VarTimeMultiScalarMult(d, blinded) // public weights and elements
	z := r255.NewElement().ScalarMult(k, m)                   // k is secret: constant time
	t2 := r255.NewElement().ScalarBaseMult(r)                 // r is secret: constant time
	t3 := r255.NewElement().ScalarMult(r, m)
	c := challenge(pk, m, z, t2, t3)
	s := r255.NewScalar().Subtract(r, r255.NewScalar().Multiply(c, k))
	out := c.Encode(make([]byte, 0, ProofSize))
	return s.Encode(out)
}

// verifyProof reports whether proof shows that evaluated[i] = k·blinded[i]
// for every i, where pk = k·G (RFC 9497 VerifyProof). Every value it
// touches is public.
func verifyProof(pk *r255.Element, pkEnc []byte, blinded, evaluated []*r255.Element, blindedEnc, evaluatedEnc [][]byte, proof []byte) bool {
	if len(proof) != ProofSize {
		return false
	}
	c, errC := decodeScalar(proof[:ElementSize])
	s, errS := decodeScalar(proof[ElementSize:])
	if errC != nil || errS != nil {
		return false
	}
	d := compositeWeights(pkEnc, blindedEnc, evaluatedEnc)
	m := r255.NewElement().VarTimeMultiScalarMult(d, blinded)
	z := r255.NewElement().VarTimeMultiScalarMult(d, evaluated)
	t2 := r255.NewElement().VarTimeDoubleScalarBaseMult(c, pk, s) // c·pk + s·G
	t3 := r255.NewElement().VarTimeMultiScalarMult([]*r255.Scalar{s, c}, []*r255.Element{m, z})
	return challenge(pkEnc, m, z, t2, t3).Equal(c) == 1
}
