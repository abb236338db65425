package oprf

// The fast path against circl's oprf package, the reference: same blinded
// elements, evaluated elements, proofs and outputs for the same inputs and
// randomness, and the same verdict on every answer, honest or tampered.

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/group"
	voprf "github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"
	r255 "github.com/gtank/ristretto255"
)

// blind is Blind with circl's blinds, for known-answer and differential
// tests.
func (c *Client) blind(inputs [][]byte, blinds []voprf.Blind) (*Batch, error) {
	s := make([]*r255.Scalar, len(blinds))
	for i, b := range blinds {
		enc, err := b.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if s[i], err = decodeScalar(enc); err != nil {
			return nil, err
		}
	}
	return blindWith(inputs, s)
}

// TestRFC9497Proofs checks that, given the RFC's proof nonce, the evaluator
// makes exactly the RFC's proof: the proof is byte-identical, not merely
// valid.
func TestRFC9497Proofs(t *testing.T) {
	var v struct {
		SkSm    string `json:"skSm"`
		Vectors []struct {
			BlindedElement string `json:"BlindedElement"`
			Proof          struct {
				Proof string `json:"proof"`
				R     string `json:"r"`
			} `json:"Proof"`
		} `json:"vectors"`
	}
	data, err := os.ReadFile(filepath.Join("testdata", "rfc9497-ristretto255-sha512-voprf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	key, err := NewPrivateKey("rfc9497", unhex(t, v.SkSm))
	if err != nil {
		t.Fatal(err)
	}
	eval := NewEvaluator(key)
	for i, vec := range v.Vectors {
		b, err := DecodeBatch(unhexList(t, vec.BlindedElement))
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeScalar(unhex(t, vec.Proof.R))
		if err != nil {
			t.Fatal(err)
		}
		if _, proof := eval.evaluate(b, r); !bytes.Equal(proof, unhex(t, vec.Proof.Proof)) {
			t.Errorf("vector %d: proof = %x, want %s", i, proof, vec.Proof.Proof)
		}
	}
}

// reference is circl's side of one batch: its verifiable client and server
// for the same key.
type reference struct {
	key    *PrivateKey
	client voprf.VerifiableClient
	server voprf.VerifiableServer
	pub    group.Element
}

func newReference(t testing.TB, key *PrivateKey) reference {
	t.Helper()
	pub := new(voprf.PublicKey)
	if err := pub.UnmarshalBinary(suite, key.pub); err != nil {
		t.Fatal(err)
	}
	pe, err := circlElement(key.pub)
	if err != nil {
		t.Fatal(err)
	}
	return reference{key: key, client: voprf.NewVerifiableClient(suite, pub), server: voprf.NewVerifiableServer(suite, key.k), pub: pe}
}

// prove is circl's batched proof with nonce r.
func (ref reference) prove(t testing.TB, blinded, evaluated []group.Element, r []byte) []byte {
	t.Helper()
	g := suite.Group()
	nonce := g.NewScalar()
	if err := nonce.UnmarshalBinary(r); err != nil {
		t.Fatal(err)
	}
	k := g.NewScalar()
	if err := k.UnmarshalBinary(mustMarshal(t, ref.key.k)); err != nil {
		t.Fatal(err)
	}
	params := dleq.Params{G: g, H: crypto.SHA512, DST: []byte(contextString)}
	p, err := dleq.Prover{Params: params}.ProveBatchWithRandomnessRFC9497(k, ref.pub, blinded, evaluated, nonce)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameAsCircl runs one batch through both implementations, with the same
// blinds and proof nonce, and fails on the first difference.
func sameAsCircl(t testing.TB, ref reference, inputs [][]byte, rnd *mrand.ChaCha8) {
	t.Helper()
	g := suite.Group()
	blinds := make([]voprf.Blind, len(inputs))
	for i := range blinds {
		blinds[i] = g.RandomScalar(rnd)
	}
	fin, req, err := ref.client.DeterministicBlind(inputs, blinds)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(ref.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.blind(inputs, blinds)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range req.Elements {
		if want := mustMarshal(t, e); !bytes.Equal(batch.Blinded[i], want) {
			t.Fatalf("blinded element %d differs from circl's", i)
		}
	}

	b, err := DecodeBatch(batch.Blinded)
	if err != nil {
		t.Fatal(err)
	}
	r := randomScalar().Encode(nil)
	nonce, _ := decodeScalar(r)
	evaluated, proof := NewEvaluator(ref.key).evaluate(b, nonce)
	ev, err := ref.server.Evaluate(req)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range ev.Elements {
		if !bytes.Equal(evaluated[i], mustMarshal(t, e)) {
			t.Fatalf("evaluated element %d differs from circl's", i)
		}
	}
	if want := ref.prove(t, req.Elements, ev.Elements, r); !bytes.Equal(proof, want) {
		t.Fatalf("proof differs from circl's for the same nonce")
	}

	// Outputs: ours from our proof, circl's from circl's (randomized)
	// proof, and each side accepts the other's proof.
	outs, err := c.finalize(batch, evaluated, proof)
	if err != nil {
		t.Fatalf("our client refuses our proof: %v", err)
	}
	want, err := ref.client.Finalize(fin, ev)
	if err != nil {
		t.Fatal(err)
	}
	circlProof := mustMarshal(t, ev.Proof)
	if _, err := c.finalize(batch, evaluated, circlProof); err != nil {
		t.Fatalf("our client refuses circl's proof: %v", err)
	}
	if _, err := ref.client.Finalize(fin, &voprf.Evaluation{Elements: ev.Elements, Proof: mustProof(t, proof)}); err != nil {
		t.Fatalf("circl refuses our proof: %v", err)
	}
	for i := range outs {
		if !bytes.Equal(outs[i], want[i]) {
			t.Fatalf("output %d differs from circl's", i)
		}
	}
	sameVerdicts(t, ref, c, fin, batch, evaluated, proof, rnd)
}

// sameVerdicts tampers with an honest answer in several ways; circl and the
// fast path must agree on each (and refuse every tampered one).
func sameVerdicts(t testing.TB, ref reference, c *Client, fin *voprf.FinalizeData, batch *Batch, evaluated [][]byte, proof []byte, rnd *mrand.ChaCha8) {
	t.Helper()
	other, err := GenerateKey("other")
	if err != nil {
		t.Fatal(err)
	}
	otherEval, otherProof := NewEvaluator(other).evaluate(mustDecodeBatch(t, batch.Blinded), randomScalar())
	flip := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[rnd.Uint64()%uint64(len(b))] ^= 1 << (rnd.Uint64() % 8)
		return b
	}
	swapped := bytes.Clone(proof)
	copy(swapped, proof[ElementSize:])
	copy(swapped[ElementSize:], proof[:ElementSize])
	nonCanonical := bytes.Clone(proof)
	copy(nonCanonical, bytes.Repeat([]byte{0xff}, ElementSize)) // c ≥ the group order
	cases := map[string]struct {
		evaluated [][]byte
		proof     []byte
	}{
		"flipped proof bit":        {evaluated, flip(proof)},
		"c and s swapped":          {evaluated, swapped},
		"non-canonical scalar":     {evaluated, nonCanonical},
		"another key, its proof":   {otherEval, otherProof},
		"another key's elements":   {otherEval, proof},
		"an element replaced":      {replaceOne(evaluated, otherEval, rnd), proof},
		"zero proof":               {evaluated, make([]byte, ProofSize)},
		"proof for other elements": {evaluated, otherProof},
	}
	if len(evaluated) > 1 {
		cases["two elements swapped"] = struct {
			evaluated [][]byte
			proof     []byte
		}{swapTwo(evaluated), proof}
	}
	for name, tc := range cases {
		_, ours := c.finalize(batch, tc.evaluated, tc.proof)
		theirs := circlFinalize(ref, fin, tc.evaluated, tc.proof)
		if (ours == nil) != (theirs == nil) {
			t.Fatalf("%s: we say %v, circl says %v", name, ours, theirs)
		}
		if ours == nil && !(name == "two elements swapped" && bytes.Equal(tc.evaluated[0], tc.evaluated[1])) {
			t.Fatalf("%s: accepted", name)
		}
	}
}

// circlFinalize is circl's verdict on serialized evaluated elements and
// proof, with circl's own decoding.
func circlFinalize(ref reference, fin *voprf.FinalizeData, evaluated [][]byte, proof []byte) error {
	g := suite.Group()
	ev := &voprf.Evaluation{Elements: make([]voprf.Evaluated, len(evaluated)), Proof: new(dleq.Proof)}
	for i, b := range evaluated {
		ev.Elements[i] = g.NewElement()
		if err := ev.Elements[i].UnmarshalBinary(b); err != nil {
			return err
		}
	}
	if err := ev.Proof.UnmarshalBinary(g, proof); err != nil {
		return err
	}
	_, err := ref.client.Finalize(fin, ev)
	return err
}

func replaceOne(evaluated, other [][]byte, rnd *mrand.ChaCha8) [][]byte {
	out := bytes.Clone(bytes.Join(evaluated, nil))
	i := int(rnd.Uint64() % uint64(len(evaluated)))
	copy(out[i*ElementSize:], other[i])
	return splitElements(out)
}

func swapTwo(evaluated [][]byte) [][]byte {
	out := splitElements(bytes.Clone(bytes.Join(evaluated, nil)))
	out[0], out[1] = out[1], out[0]
	return out
}

func splitElements(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		out = append(out, b[:ElementSize])
		b = b[ElementSize:]
	}
	return out
}

func mustDecodeBatch(t testing.TB, blinded [][]byte) *BlindedBatch {
	t.Helper()
	b, err := DecodeBatch(blinded)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustMarshal(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustProof(t testing.TB, b []byte) *dleq.Proof {
	t.Helper()
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(suite.Group(), b); err != nil {
		t.Fatal(err)
	}
	return p
}

// randomInputs returns n inputs of 0 to 200 random bytes.
func randomInputs(rnd *mrand.ChaCha8, n int) [][]byte {
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = make([]byte, rnd.Uint64()%201)
		_, _ = rnd.Read(inputs[i])
	}
	return inputs
}

// TestSameAsCircl compares the fast path with circl on random batches of
// several sizes, under random keys.
func TestSameAsCircl(t *testing.T) {
	seed := [32]byte{1}
	rnd := mrand.NewChaCha8(seed)
	for _, n := range []int{1, 2, 3, 17, 64, 257} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			key, err := GenerateKey("diff")
			if err != nil {
				t.Fatal(err)
			}
			sameAsCircl(t, newReference(t, key), randomInputs(rnd, n), rnd)
		})
	}
}

// TestDecodeSameAsCircl checks that the fast path's decoder accepts exactly
// what circl's accepts (and the identity, which both refuse for an
// evaluated element, only at a different step), on random, near-canonical
// and edge encodings.
func TestDecodeSameAsCircl(t *testing.T) {
	seed := [32]byte{2}
	rnd := mrand.NewChaCha8(seed)
	var cases [][]byte
	for range 2000 {
		b := make([]byte, ElementSize)
		_, _ = rnd.Read(b)
		cases = append(cases, b)
	}
	for i := range 64 {
		e := r255.NewElement().ScalarBaseMult(randomScalar()).Encode(nil)
		cases = append(cases, e)
		// p + e: the same residue, not canonical; and a flipped sign bit.
		alt := bytes.Clone(e)
		alt[0] ^= 1
		cases = append(cases, alt)
		alt = bytes.Clone(e)
		alt[31] |= 0x80
		cases = append(cases, alt)
		cases = append(cases, bytes.Repeat([]byte{byte(i)}, ElementSize))
	}
	cases = append(cases, make([]byte, ElementSize), bytes.Repeat([]byte{0xff}, ElementSize),
		// 2^255-19 (p) and p+2: non-canonical field elements.
		append([]byte{0xed}, append(bytes.Repeat([]byte{0xff}, 30), 0x7f)...),
		append([]byte{0xef}, append(bytes.Repeat([]byte{0xff}, 30), 0x7f)...))
	g := suite.Group()
	for i, b := range cases {
		_, ours := decodeElement(b)
		e := g.NewElement()
		theirs := e.UnmarshalBinary(b)
		if theirs == nil && e.IsIdentity() {
			theirs = fmt.Errorf("identity")
		}
		if (ours == nil) != (theirs == nil) {
			t.Fatalf("case %d (%x): we say %v, circl says %v", i, b, ours, theirs)
		}
	}
}

// FuzzSameAsCircl compares the fast path with circl on batches, blinds and
// nonces derived from the fuzzer's bytes.
func FuzzSameAsCircl(f *testing.F) {
	key, err := GenerateKey("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	ref := newReference(f, key)
	f.Add([]byte("+15555550100"), uint8(1))
	f.Add([]byte{}, uint8(3))
	f.Add(bytes.Repeat([]byte{0xff}, 300), uint8(9))
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		seed := sha512.Sum512_256(append([]byte{n}, data...))
		rnd := mrand.NewChaCha8(seed)
		size := int(n%16) + 1
		inputs := make([][]byte, size)
		for i := range inputs {
			inputs[i] = append([]byte{byte(i)}, data...)
		}
		sameAsCircl(t, ref, inputs, rnd)
	})
}
