package client

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
)

// TestResultOneMatchPerEntry checks that an answer's matches, each of
// several entries, become one match per entry and counterparty, mapped to
// the rows, in entry order and, for one entry, flag before full and full
// by counterparty.
func TestResultOneMatchPerEntry(t *testing.T) {
	full := veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL
	flag := veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG
	ms := []*veilmatchv1.Match{
		{EntryRefs: []uint64{1, 3}, Level: full, Counterparty: &veilmatchv1.Counterparty{Agency: "police-us", List: "b"}},
		{EntryRefs: []uint64{3}, Level: full, Counterparty: &veilmatchv1.Counterparty{Agency: "police-th", List: "a", Contact: "desk@th.example"}},
		{EntryRefs: []uint64{3}, Level: flag, LiaisonContact: "liaison@gb.example", MatchRef: "mr-3"},
		{EntryRefs: []uint64{9}, Level: full, Counterparty: &veilmatchv1.Counterparty{Agency: "police-th", List: "a"}}, // no such row
	}
	rows := entrySlice{{Line: 2, Value: "v0"}, {Line: 3, Value: "v1"}, {Line: 4, Value: "v2"}, {Line: 5, Value: "v3"}}
	r := result("suspects", "d-1", ms, nil, rows)
	var got []string
	for _, m := range r.Matches {
		who := m.LiaisonContact
		if m.Counterparty != nil {
			who = m.Counterparty.Agency + "/" + m.Counterparty.List + "/" + m.Counterparty.Contact
		}
		got = append(got, fmt.Sprintf("%d line %d %s %s %s %s", m.EntryRef, m.Line, m.Value, m.Level, who, m.MatchRef))
	}
	want := []string{
		"1 line 3 v1 full police-us/b/ ",
		"3 line 5 v3 flag liaison@gb.example mr-3",
		"3 line 5 v3 full police-th/a/desk@th.example ",
		"3 line 5 v3 full police-us/b/ ",
		"9 line 0  full police-th/a/ ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("matches:\n%q\nwant\n%q", got, want)
	}
	if r.Matches == nil || r.Counts == nil {
		t.Errorf("empty lists must be [], not null, in JSON: %+v", r)
	}
}

// TestMerge checks the k-way merge against sorting every (entry, match)
// pair, on random matches of ascending entries.
func TestMerge(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		ms := make([]*veilmatchv1.Match, rnd.IntN(6))
		var want [][2]uint64
		for i := range ms {
			ms[i] = &veilmatchv1.Match{}
			for ref := uint64(0); ref < 40; ref++ {
				if rnd.IntN(3) == 0 {
					ms[i].EntryRefs = append(ms[i].EntryRefs, ref)
					want = append(want, [2]uint64{ref, uint64(i)})
				}
			}
		}
		slices.SortFunc(want, func(x, y [2]uint64) int { return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1])) })
		var got [][2]uint64
		merge(ms, func(ref uint64, i int) { got = append(got, [2]uint64{ref, uint64(i)}) })
		if !slices.Equal(got, want) {
			t.Fatalf("merge = %v, want %v", got, want)
		}
	}
}
