package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/veilmatch/veilmatch/client"
	"github.com/veilmatch/veilmatch/client/normalize"
	"github.com/veilmatch/veilmatch/client/pdq"
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
	out, err := Run(context.Background(), io.Discard, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkOutcome(t, out)
}

// checkOutcome asserts every answer of the scenario.
func checkOutcome(t *testing.T, out *Outcome) {
	t.Helper()
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
	if got := summary(out.AfterDisclosure); strings.Join(got, "\n") != strings.Join([]string{
		"2 +447700900123 full police-us/suspects(suspect,US)",
		"4 +14155550132 full police-us/suspects(suspect,US)",
		"5 +447700900789 full ngo-shelter/victims(victim,GB)",
		"count law_enforcement/TH=1",
	}, "\n") {
		t.Errorf("after the approved disclosure police-gb learns:\n%s", strings.Join(got, "\n"))
	}
	if got, want := summary(out.ImageCheck), []string{"2 listing-17.jpg full police-us/adverts(ad_contact,US)"}; !slices.Equal(got, want) {
		t.Errorf("ngo-shelter's image check = %q; want the shrunk advert photo only, in full (the list is NGO-visible)", got)
	}
	if out.Images.List.GetEntries() != 3 || out.Images.List.GetKind() != "pdq" {
		t.Errorf("police-us's advert photos published as %+v; want 3 entries of kind pdq", out.Images.List)
	}
	if out.Notices != 1 {
		t.Errorf("ngo-shelter has %d notices, want 1", out.Notices)
	}
	// The watch delivers the same matches as police-gb's first overlaps
	// (upgraded, where a disclosure was approved since), then only the
	// retraction, naming police-gb's own line and not who withdrew it.
	var alerted []string
	for _, a := range out.Alerts {
		switch a.Event {
		case client.AlertMatch:
			alerted = append(alerted, fmt.Sprintf("%d %s", a.Line, a.Value))
		case client.AlertCount:
			alerted = append(alerted, fmt.Sprintf("count %s=%d", a.Class, a.Matches))
		}
	}
	sort.Strings(alerted)
	if want := "2 +447700900123\n4 +14155550132\n5 +447700900789\ncount law_enforcement/TH=1"; strings.Join(alerted, "\n") != want {
		t.Errorf("police-gb's alerts:\n%s\nwant:\n%s", strings.Join(alerted, "\n"), want)
	}
	if len(out.Retraction) != 1 || out.Retraction[0].Event != client.AlertRetraction || out.Retraction[0].Line != 2 ||
		out.Retraction[0].Value != "+447700900123" || out.Retraction[0].Counterparty != nil {
		t.Errorf("after police-us's retraction police-gb's watch delivered %+v; want one retraction of line 2", out.Retraction)
	}
	if out.Audit.Records == 0 || out.Audit.Size != out.Audit.Records {
		t.Errorf("audit: %+v", out.Audit)
	}
	gb := out.Published["police-gb/suspects"]
	if gb.List.GetEntries() != 6 || len(gb.Report.Rejected) != 2 || gb.Report.Rejected[0].Line != 8 || gb.Report.Rejected[1].Line != 9 {
		t.Errorf("police-gb publish: %d entries, rejected %+v", gb.List.GetEntries(), gb.Report.Rejected)
	}
}

// TestNoIdentifierLeaks plays the scenario with debug logging and searches
// the hub's and the key server's files, every log line and the decision log
// for each raw and canonical identifier of the synthetic data. Only the
// agencies' own state directories may hold them.
func TestNoIdentifierLeaks(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	if _, err := Run(context.Background(), io.Discard, dir, Options{Logger: logger}); err != nil {
		t.Fatal(err)
	}
	needles := identifiers(t)
	if len(needles) < 20 {
		t.Fatalf("only %d identifiers to look for", len(needles))
	}
	haystacks := map[string][]byte{"log output": logs.Bytes()}
	if logs.Len() == 0 {
		t.Fatal("no log output captured; the search would prove nothing")
	}
	for _, sub := range []string{"hub", "keyserver"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			haystacks[p] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for where, b := range haystacks {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s contains the identifier %q", where, n)
			}
		}
	}
}

// identifiers returns every raw cell, canonical value and digit string of
// the scenario's files.
func identifiers(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	files := append(publications, publication{file: "ngo-shelter-clients.csv", kind: "phone", region: "GB"})
	for _, p := range files {
		f, err := data.Open(p.file)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows[1:] {
			raw := strings.TrimSpace(row[0])
			if len(raw) < 6 {
				continue
			}
			seen[raw] = true
			if v, err := normalize.Normalize(normalize.Kind(p.kind), raw, normalize.Options{Region: p.region}); err == nil {
				seen[v.Canonical] = true
				if p.kind == "phone" {
					seen[strings.TrimPrefix(v.Canonical, "+")] = true
				}
			}
		}
	}
	// The images: their names and their PDQ hashes.
	err := fs.WalkDir(data, "images", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !pdq.IsImageName(p) {
			return err
		}
		f, err := data.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		img, _, err := image.Decode(f)
		if err != nil {
			return err
		}
		h, _, err := pdq.FromImage(img)
		seen[path.Base(p)], seen[h.String()] = true, true
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	return out
}
