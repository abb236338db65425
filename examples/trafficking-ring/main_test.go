package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/client"
)

// summary renders a result as sorted "line value level counterparty" rows,
// independent of decision ids.
func summary(r client.Result) []string {
	var out []string
	for _, m := range r.Matches {
		who := "liaison=" + m.LiaisonContact
		if cp := m.Counterparty; cp != nil {
			who = fmt.Sprintf("%s/%s(%s,%s)", cp.Agency, cp.List, cp.Category, cp.Jurisdiction)
		}
		out = append(out, fmt.Sprintf("%d %s %s %s", m.Line, m.Value, m.Level, who))
	}
	for _, c := range r.Counts {
		out = append(out, fmt.Sprintf("count %s=%d", c.Class, c.Matches))
	}
	sort.Strings(out)
	return out
}

// TestScenario checks that every party learns exactly the true overlaps of
// the synthetic data, each once, at the level the default policy grants.
func TestScenario(t *testing.T) {
	out, err := Run(context.Background(), io.Discard, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"police-gb": {
			"2 +447700900123 full police-us/suspects(suspect,US)", // GB–US agreement
			"4 +14155550132 full police-us/suspects(suspect,US)",
			"5 +447700900789 flag liaison=victim-liaison@gb.example", // the NGO's victim list: protected, holder hidden
			"count law_enforcement/TH=1",                             // no GB–TH agreement
		},
		"police-us": {
			"2 +447700900123 full police-gb/suspects(suspect,GB)",
			"3 +14155550132 full police-gb/suspects(suspect,GB)",
			"count law_enforcement/TH=1",
		},
		"police-th": {
			"count law_enforcement/GB=1",
			"count law_enforcement/US=1",
		},
	}
	for agency, w := range want {
		sort.Strings(w)
		if got := summary(out.Overlaps[agency]); strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s learns:\n%s\nwant:\n%s", agency, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	if got := summary(out.Emails); strings.Join(got, "\n") != "2 recruiter.jobs@example.com full police-us/emails(suspect,US)" {
		t.Errorf("police-gb e-mail overlaps: %v", got)
	}
	for _, m := range out.Overlaps["police-gb"].Matches {
		if m.Level == "flag" && (m.Counterparty != nil || strings.Contains(m.LiaisonContact, "ngo-shelter")) {
			t.Errorf("a victim flag names the holder: %+v", m)
		}
	}
	if got := summary(out.Check); strings.Join(got, "\n") != "count law_enforcement/GB=1\ncount law_enforcement/US=1" {
		t.Errorf("ngo-shelter check: %v", got)
	}
	if strings.Join(summary(out.AfterCheck), "\n") != strings.Join(summary(out.Overlaps["police-gb"]), "\n") {
		t.Error("police-gb's overlaps changed after the NGO's check")
	}
	gb := out.Published["police-gb/suspects"]
	if gb.List.GetEntries() != 6 || len(gb.Report.Rejected) != 2 || gb.Report.Rejected[0].Line != 8 || gb.Report.Rejected[1].Line != 9 {
		t.Errorf("police-gb publish: %d entries, rejected %+v", gb.List.GetEntries(), gb.Report.Rejected)
	}
}
