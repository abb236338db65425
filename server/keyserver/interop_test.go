package keyserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	voprf "github.com/cloudflare/circl/oprf"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/voprfts"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// interopKey returns a fresh key and its RFC 9497 scalar serialization,
// which the independent implementation needs to act as a key server.
func interopKey(t *testing.T, id string) (*oprf.PrivateKey, []byte) {
	t.Helper()
	k, err := voprf.GenerateKey(voprf.SuiteRistretto255, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	key, err := oprf.NewPrivateKey(id, scalar)
	if err != nil {
		t.Fatal(err)
	}
	return key, scalar
}

// interopInputs are encoded identifiers of every kind, as agencies send them.
func interopInputs(t *testing.T, n int) [][]byte {
	t.Helper()
	var inputs [][]byte
	for i := range n {
		kind, value := "phone", fmt.Sprintf("+4477009%05d", i)
		if i%3 == 1 {
			kind, value = "email", fmt.Sprintf("person%d@example.org", i)
		}
		in, err := oprf.Input(kind, value)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}
	return inputs
}

// TestIndependentClientInterop has voprf-ts (Node.js, @noble/curves), an
// RFC 9497 implementation sharing no code with veilmatch, blind a batch,
// send it to the real key server over gRPC and mTLS, and finalize the
// answer: it must accept the proof and reach exactly the tokens the
// agency client gets for the same identifiers.
func TestIndependentClientInterop(t *testing.T) {
	peer := voprfts.Start(t)
	key, _ := interopKey(t, "interop")
	kc := client(t, start(t, key, generous), "police-gb")
	ctx := context.Background()
	inputs := interopInputs(t, 100)

	blinded, err := peer.Blind(key.Public().Bytes, inputs)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: key.KeyID(), BlindedElements: blinded})
	if err != nil {
		t.Fatal(err)
	}
	outputs, err := peer.Finalize(resp.EvaluatedElements, resp.Proof)
	if err != nil {
		t.Fatalf("voprf-ts refuses the key server's answer: %v", err)
	}

	c, err := oprf.NewClient(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	own, err := kc.Evaluate(ctx, &veilmatchv1.EvaluateRequest{KeyId: key.KeyID(), BlindedElements: batch.Blinded})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := c.Finalize(batch, own.EvaluatedElements, own.Proof)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inputs {
		if !bytes.Equal(toks[i][:], outputs[i][:32]) {
			t.Fatalf("input %d: veilmatch's token differs from voprf-ts's output", i)
		}
	}

	// A proof the key server did not make is refused by voprf-ts too.
	if _, err := peer.Blind(key.Public().Bytes, inputs[:3]); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(resp.Proof)
	bad[5] ^= 1
	if _, err := peer.Finalize(resp.EvaluatedElements[:3], bad); err == nil {
		t.Fatal("voprf-ts accepted a tampered proof")
	}
}

// TestIndependentEvaluatorInterop has voprf-ts act as the key server: the
// agency client must accept its proofs and get the tokens veilmatch's own
// evaluator gives, and refuse the proofs of a key it did not pin.
func TestIndependentEvaluatorInterop(t *testing.T) {
	peer := voprfts.Start(t)
	key, scalar := interopKey(t, "interop")
	_, otherScalar := interopKey(t, "other")
	c, err := oprf.NewClient(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	inputs := interopInputs(t, 64)
	batch, err := c.Blind(inputs)
	if err != nil {
		t.Fatal(err)
	}
	evaluated, proof, err := peer.Evaluate(scalar, batch.Blinded)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := c.Finalize(batch, evaluated, proof)
	if err != nil {
		t.Fatalf("the agency client refuses voprf-ts's proof: %v", err)
	}
	b, err := oprf.DecodeBatch(batch.Blinded)
	if err != nil {
		t.Fatal(err)
	}
	ownEval, ownProof, err := oprf.NewEvaluator(key).Evaluate(b)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := c.Finalize(batch, ownEval, ownProof)
	if err != nil {
		t.Fatal(err)
	}
	for i := range inputs {
		if !bytes.Equal(evaluated[i], ownEval[i]) || theirs[i] != ours[i] {
			t.Fatalf("input %d: voprf-ts and veilmatch evaluate differently", i)
		}
	}

	otherEval, otherProof, err := peer.Evaluate(otherScalar, batch.Blinded)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finalize(batch, otherEval, otherProof); err == nil {
		t.Fatal("the agency client accepted an evaluation under a key it did not pin")
	}
}
