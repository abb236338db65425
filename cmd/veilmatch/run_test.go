package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
)

// TestVersion: a version stamped with -ldflags "-X main.buildVersion=…"
// comes first; unstamped, the build information still names something.
func TestVersion(t *testing.T) {
	versionLine := func() string {
		var out bytes.Buffer
		if err := cmdVersion(context.Background(), env{stdout: &out}, nil); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := versionLine(); !regexp.MustCompile(`^veilmatch \S+( \S+)* go1\.\d+`).MatchString(got) {
		t.Errorf("unstamped: %q, want veilmatch VERSION… GOVERSION", got)
	}
	defer func(v string) { buildVersion = v }(buildVersion)
	buildVersion = "v1.2.3"
	if got := versionLine(); !regexp.MustCompile(`^veilmatch v1\.2\.3 (\S+ )?go1\.\d+`).MatchString(got) {
		t.Errorf("stamped v1.2.3: %q", got)
	}
}

// TestAuditVerifyCommand: the dev banner omits --key-file only where
// 'audit verify --as' looks by default.
func TestAuditVerifyCommand(t *testing.T) {
	if got, want := auditVerifyCommand(filepath.Join(".veilmatch-dev", "hub", "checkpoint.pub")), "veilmatch audit verify --as auditor"; got != want {
		t.Errorf("default dir: %q, want %q", got, want)
	}
	keyFile := filepath.Join(t.TempDir(), "hub", "checkpoint.pub")
	if got, want := auditVerifyCommand(keyFile), "veilmatch audit verify --as auditor --key-file "+keyFile; got != want {
		t.Errorf("--dir elsewhere: %q, want %q", got, want)
	}
}

// TestReportChecks: the report counts each agency's checks and entries per
// day against the budget, counts budget refusals, and flags a day of many
// small checks as probing.
func TestReportChecks(t *testing.T) {
	day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	check := func(agency string, entries int, result string) audit.Record {
		return audit.Record{Time: day, Agency: agency, Action: "check", Result: result, Details: map[string]string{"entries": strconv.Itoa(entries)}}
	}
	var recs []audit.Record
	for range probingChecks {
		recs = append(recs, check("police-gb", 1, audit.ResultAllowed))
	}
	recs = append(recs,
		check("police-gb", 2, audit.ResultRefused),
		check("ngo-shelter", 500, audit.ResultAllowed),
		check("ngo-shelter", 3, audit.ResultAllowed),
		audit.Record{Time: day, Agency: "police-th", Action: "check", Result: audit.ResultRefused, Reason: "purpose missing"},
	)
	got := summarize(recs).Checks
	want := []checkRow{
		{Agency: "ngo-shelter", Day: "2026-11-30", Checks: 2, Entries: 503, SmallChecks: 1},
		{Agency: "police-gb", Day: "2026-11-30", Checks: probingChecks, Entries: probingChecks, Refused: 1, SmallChecks: probingChecks, Probing: true},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("checks = %+v\nwant %+v", got, want)
	}
}
