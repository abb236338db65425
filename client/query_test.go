package client

import (
	"fmt"
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
