package auditor_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/client/auditor"
	"github.com/veilmatch/veilmatch/server/audit"
)

// TestSummarizeChecks: the report counts each agency's checks and entries per
// day against the budget, counts budget refusals, and flags a day of many
// small checks as probing.
func TestSummarizeChecks(t *testing.T) {
	day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	check := func(agency string, entries int, result string) audit.Record {
		return audit.Record{Time: day, Agency: agency, Action: "check", Result: result, Details: map[string]string{"entries": strconv.Itoa(entries)}}
	}
	var recs []audit.Record
	for range auditor.ProbingChecks {
		recs = append(recs, check("police-gb", 1, audit.ResultAllowed))
	}
	recs = append(recs,
		check("police-gb", 2, audit.ResultRefused),
		check("ngo-shelter", 500, audit.ResultAllowed),
		check("ngo-shelter", 3, audit.ResultAllowed),
		audit.Record{Time: day, Agency: "police-th", Action: "check", Result: audit.ResultRefused, Reason: "purpose missing"},
	)
	got := auditor.Summarize(recs).Checks
	want := []auditor.CheckRow{
		{Agency: "ngo-shelter", Day: "2026-11-30", Checks: 2, Entries: 503, SmallChecks: 1},
		{Agency: "police-gb", Day: "2026-11-30", Checks: auditor.ProbingChecks, Entries: auditor.ProbingChecks, Refused: 1, SmallChecks: auditor.ProbingChecks, Probing: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("checks = %+v\nwant %+v", got, want)
	}
}
