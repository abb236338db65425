package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
)

func sampleRecord() audit.Record {
	return audit.Record{
		Index:      7,
		Time:       time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC),
		DecisionID: "d-0001",
		Caller:     "spiffe://veilmatch.test/agency/met",
		Agency:     "met",
		Action:     "overlaps",
		Result:     audit.ResultAllowed,
		Reason:     "agreement <uk-ngo> & consent",
		Purpose:    "safeguarding",
		CaseRef:    "OP-42",
		Lists:      []string{"met/suspects", "ngo/victims"},
		Outcomes: []audit.Outcome{
			{Class: "victim", Level: "flag", Entries: 3},
			{Class: "suspect", Level: "full", Entries: 1},
		},
		Rules:          []string{"victim_flag", "uk_full"},
		PolicyRevision: "sha256:abcd",
		Details:        map[string]string{"quota_used": "10", "quota_limit": "100"},
	}
}

const sampleCanonical = `{"index":7,"time":"2025-03-14T15:09:26.535897932Z","decision_id":"d-0001",` +
	`"caller":"spiffe://veilmatch.test/agency/met","agency":"met","action":"overlaps","result":"allowed",` +
	`"reason":"agreement <uk-ngo> & consent","purpose":"safeguarding","case_ref":"OP-42",` +
	`"lists":["met/suspects","ngo/victims"],"outcomes":[{"class":"victim","level":"flag","entries":3},` +
	`{"class":"suspect","level":"full","entries":1}],"rules":["victim_flag","uk_full"],` +
	`"policy_revision":"sha256:abcd","details":{"quota_limit":"100","quota_used":"10"}}`

func TestRecordCanonical(t *testing.T) {
	r := sampleRecord()
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != sampleCanonical {
		t.Fatalf("Marshal:\n got %s\nwant %s", data, sampleCanonical)
	}
	again, err := r.Marshal()
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("Marshal is not deterministic: %s, %v", again, err)
	}

	// The same instant in another zone encodes identically.
	local := r
	local.Time = r.Time.In(time.FixedZone("X", 5*3600+1800))
	if got, err := local.Marshal(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Marshal of non-UTC time = %s, %v", got, err)
	}

	parsed, err := audit.ParseRecord(data)
	if err != nil {
		t.Fatalf("ParseRecord: %v", err)
	}
	if !parsed.Time.Equal(r.Time) || parsed.Time.Location() != time.UTC {
		t.Fatalf("time = %v, want %v in UTC", parsed.Time, r.Time)
	}
	if got, err := parsed.Marshal(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("re-Marshal = %s, %v", got, err)
	}
}

func TestRecordEmptyCollections(t *testing.T) {
	r := audit.Record{Time: time.Unix(0, 0), Action: "check", Result: audit.ResultRefused}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":0,"time":"1970-01-01T00:00:00Z","decision_id":"","caller":"","agency":"",` +
		`"action":"check","result":"refused","reason":"","purpose":"","case_ref":"",` +
		`"lists":[],"outcomes":[],"rules":[],"policy_revision":"","details":{}}`
	if string(data) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", data, want)
	}
	// Nil and empty collections have one encoding.
	r.Lists, r.Outcomes, r.Rules, r.Details = []string{}, []audit.Outcome{}, []string{}, map[string]string{}
	if got, err := r.Marshal(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Marshal with empty collections = %s, %v", got, err)
	}
	if _, err := audit.ParseRecord(data); err != nil {
		t.Fatalf("ParseRecord: %v", err)
	}
}

func TestRecordInvalid(t *testing.T) {
	for name, mutate := range map[string]func(*audit.Record){
		"zero time":      func(r *audit.Record) { r.Time = time.Time{} },
		"no action":      func(r *audit.Record) { r.Action = "" },
		"bad result":     func(r *audit.Record) { r.Result = "maybe" },
		"year past 9999": func(r *audit.Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		t.Run(name, func(t *testing.T) {
			r := sampleRecord()
			mutate(&r)
			if data, err := r.Marshal(); err == nil {
				t.Fatalf("Marshal = %s, want error", data)
			}
		})
	}
}

func TestParseRecordRejects(t *testing.T) {
	canon := sampleCanonical
	for _, tc := range []struct {
		name      string
		data      string
		canonical bool // the error must be ErrNotCanonical
	}{
		{"trailing newline", canon + "\n", true},
		{"leading space", " " + canon, true},
		{"indented", strings.ReplaceAll(canon, `,"`, `, "`), true},
		{"field order", strings.Replace(canon, `{"index":7,"time":"2025-03-14T15:09:26.535897932Z"`, `{"time":"2025-03-14T15:09:26.535897932Z","index":7`, 1), true},
		{"missing field", strings.Replace(canon, `"agency":"met",`, ``, 1), true},
		{"duplicate field", strings.Replace(canon, `"agency":"met",`, `"agency":"x","agency":"met",`, 1), true},
		{"upper-case key", strings.Replace(canon, `"agency"`, `"AGENCY"`, 1), true},
		{"html escaped", strings.Replace(canon, `<uk-ngo> &`, `\u003cuk-ngo\u003e \u0026`, 1), true},
		{"non-UTC time", strings.Replace(canon, `15:09:26.535897932Z`, `16:09:26.535897932+01:00`, 1), true},
		{"null lists", strings.Replace(canon, `"rules":["victim_flag","uk_full"]`, `"rules":null`, 1), true},
		{"details order", strings.Replace(canon, `{"quota_limit":"100","quota_used":"10"}`, `{"quota_used":"10","quota_limit":"100"}`, 1), true},
		{"number form", strings.Replace(canon, `"index":7`, `"index":7.0`, 1), false},
		{"trailing data", canon + `{}`, true},
		{"unknown field", strings.Replace(canon, `"agency":"met",`, `"agency":"met","extra":"x",`, 1), false},
		{"invalid result", strings.Replace(canon, `"result":"allowed"`, `"result":"ok"`, 1), false},
		{"invalid UTF-8", strings.Replace(canon, `"met"`, "\"m\xffet\"", 1), true},
		{"not JSON", `not json`, false},
		{"empty", ``, false},
		{"null", `null`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseRecord([]byte(tc.data))
			if err == nil {
				t.Fatal("ParseRecord succeeded")
			}
			if tc.canonical && !errors.Is(err, audit.ErrNotCanonical) {
				t.Fatalf("error = %v, want %v", err, audit.ErrNotCanonical)
			}
		})
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := audit.ParseRecord(data)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted record re-marshals differently:\n got %q\nwant %q", again, data)
		}
	})
}
