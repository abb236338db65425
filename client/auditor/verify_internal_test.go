package auditor

import (
	"slices"
	"testing"
)

func TestProofSample(t *testing.T) {
	for _, n := range []int{0, 1, 8, sampleProofs, sampleProofs + 1, 1000, 1 << 20} {
		got := proofSample(n)
		slices.Sort(got)
		if len(got) != min(n, sampleProofs) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("proofSample(%d) has %d indices, %d distinct; want %d distinct", n, len(got), len(slices.Compact(slices.Clone(got))), min(n, sampleProofs))
		}
		if n > 0 && (got[0] != 0 || got[len(got)-1] != n-1) {
			t.Fatalf("proofSample(%d) spans %d..%d, want the first and the last", n, got[0], got[len(got)-1])
		}
	}
}
