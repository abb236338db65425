package policy

import (
	"fmt"
	"testing"
)

// BenchmarkDisclose compares asking about an answer's counterparty lists
// in one evaluation, as the hub does, with one evaluation per list: the
// request is judged (authz) once per evaluation.
func BenchmarkDisclose(b *testing.B) {
	e, err := New(b.Context(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	all := []Counterparty{
		{Agency: policeUS, List: list(policeUS, "suspect")},
		{Agency: policeTH, List: list(policeTH, "suspect")},
		{Agency: shelter, List: list(shelter, "victim")},
		{Agency: policeGB, List: list(policeGB, "ad_contact")},
	}
	b.Run("authorize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Authorize(b.Context(), r); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{1, 4} {
		cps := all[:n]
		b.Run(fmt.Sprintf("lists=%d/one evaluation", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Disclose(b.Context(), r, cps); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("lists=%d/one per list", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range cps {
					if _, err := e.Disclose(b.Context(), r, []Counterparty{c}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
