package oprf

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// BenchmarkVOPRF measures blind, evaluate and finalize per element, for
// this package and for circl's oprf package (the reference) in the same
// run, at several batch sizes. Compare the ns/element of the two.
func BenchmarkVOPRF(b *testing.B) {
	key, err := GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	ref := newReference(b, key)
	c, err := NewClient(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	eval := NewEvaluator(key)
	for _, n := range []int{1, 64, 1024} {
		inputs := randomInputs(mrand.NewChaCha8([32]byte{3}), n)
		batch, err := c.Blind(inputs)
		if err != nil {
			b.Fatal(err)
		}
		evaluated, proof, err := eval.Evaluate(mustDecodeBatch(b, batch.Blinded))
		if err != nil {
			b.Fatal(err)
		}
		fin, req, err := ref.client.Blind(inputs)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := ref.server.Evaluate(req)
		if err != nil {
			b.Fatal(err)
		}
		ops := []struct {
			name string
			f    func() error
		}{
			{"veilmatch/blind", func() error { _, err := c.Blind(inputs); return err }},
			{"circl/blind", func() error { _, _, err := ref.client.Blind(inputs); return err }},
			{"veilmatch/evaluate", func() error {
				_, _, err := eval.Evaluate(mustDecodeBatch(b, batch.Blinded))
				return err
			}},
			{"circl/evaluate", func() error { _, err := ref.server.Evaluate(req); return err }},
			{"veilmatch/finalize", func() error { _, err := c.Finalize(batch, evaluated, proof); return err }},
			{"circl/finalize", func() error { _, err := ref.client.Finalize(fin, ev); return err }},
		}
		for _, op := range ops {
			b.Run(fmt.Sprintf("%s/batch=%d", op.name, n), func(b *testing.B) {
				for b.Loop() {
					if err := op.f(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
			})
		}
	}
}

// BenchmarkThresholdFinalize measures the client's work on t share
// servers' answers per element — t proof verifications and the
// combination — beside the whole key's finalize, at batch 1024.
func BenchmarkThresholdFinalize(b *testing.B) {
	key, err := GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	inputs := randomInputs(mrand.NewChaCha8([32]byte{5}), 1024)
	for _, tn := range [][2]int{{1, 1}, {2, 3}, {3, 5}} {
		shares, err := Split(key, tn[1], tn[0])
		if err != nil {
			b.Fatal(err)
		}
		_, set, _ := shares[0].Share()
		tc, err := NewThresholdClient(set)
		if err != nil {
			b.Fatal(err)
		}
		batch, err := tc.Blind(inputs)
		if err != nil {
			b.Fatal(err)
		}
		type answer struct {
			evaluated [][]byte
			proof     []byte
		}
		answers := make([]answer, tn[0])
		for i := range answers {
			answers[i].evaluated, answers[i].proof, err = NewEvaluator(shares[i]).Evaluate(mustDecodeBatch(b, batch.Blinded))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("%d-of-%d", tn[0], tn[1]), func(b *testing.B) {
			for b.Loop() {
				evs := make([]*ShareEvaluation, len(answers))
				for i, a := range answers {
					if evs[i], err = tc.VerifyShare(batch, i+1, a.evaluated, a.proof); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := tc.Combine(batch, evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(inputs)), "ns/element")
		})
	}
}
