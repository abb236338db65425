package bench

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	voprf "github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/zk/dleq"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// circlWorker is a worker on circl's oprf package, the reference: the same
// protocol from and to the same bytes, each element decoded, validated and
// serialized as crypto/oprf does.
type circlWorker struct {
	client    voprf.VerifiableClient
	server    voprf.VerifiableServer
	inputs    [][]byte
	fin       *voprf.FinalizeData
	blinded   [][]byte
	evaluated [][]byte
	proof     []byte
}

var circlSuite = voprf.SuiteRistretto255

func newCirclWorker(key *oprf.PrivateKey, inputs [][]byte) (worker, error) {
	sk, err := circlKey(key)
	if err != nil {
		return nil, err
	}
	pub := sk.Public()
	w := &circlWorker{client: voprf.NewVerifiableClient(circlSuite, pub), server: voprf.NewVerifiableServer(circlSuite, sk), inputs: inputs}
	fin, req, err := w.client.Blind(inputs)
	if err != nil {
		return nil, err
	}
	w.fin = fin
	if w.blinded, err = marshalAll(req.Elements); err != nil {
		return nil, err
	}
	if err := w.evaluate(); err != nil {
		return nil, err
	}
	return w, w.finalize()
}

// circlKey is key as circl's private key.
func circlKey(key *oprf.PrivateKey) (*voprf.PrivateKey, error) {
	data, err := oprf.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	s, err := hex.DecodeString(f.PrivateKey)
	if err != nil {
		return nil, err
	}
	sk := new(voprf.PrivateKey)
	if err := sk.UnmarshalBinary(circlSuite, s); err != nil {
		return nil, fmt.Errorf("circl private key: %w", err)
	}
	return sk, nil
}

func (w *circlWorker) len() int { return len(w.inputs) }

func (w *circlWorker) blind() error {
	_, req, err := w.client.Blind(w.inputs)
	if err != nil {
		return err
	}
	_, err = marshalAll(req.Elements)
	return err
}

func (w *circlWorker) evaluate() error {
	elems, err := unmarshalAll(w.blinded)
	if err != nil {
		return err
	}
	ev, err := w.server.Evaluate(&voprf.EvaluationRequest{Elements: elems})
	if err != nil {
		return err
	}
	if w.evaluated, err = marshalAll(ev.Elements); err != nil {
		return err
	}
	w.proof, err = ev.Proof.MarshalBinary()
	return err
}

func (w *circlWorker) finalize() error {
	elems, err := unmarshalAll(w.evaluated)
	if err != nil {
		return err
	}
	p := new(dleq.Proof)
	if err := p.UnmarshalBinary(circlSuite.Group(), w.proof); err != nil {
		return err
	}
	_, err = w.client.Finalize(w.fin, &voprf.Evaluation{Elements: elems, Proof: p})
	return err
}

func marshalAll(elems []group.Element) ([][]byte, error) {
	out := make([][]byte, len(elems))
	for i, e := range elems {
		var err error
		if out[i], err = e.MarshalBinaryCompress(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func unmarshalAll(items [][]byte) ([]group.Element, error) {
	out := make([]group.Element, len(items))
	for i, b := range items {
		out[i] = circlSuite.Group().NewElement()
		if err := out[i].UnmarshalBinary(b); err != nil {
			return nil, err
		}
		if out[i].IsIdentity() {
			return nil, errors.New("identity element")
		}
	}
	return out, nil
}
