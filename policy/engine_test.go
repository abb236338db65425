package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

var (
	policeGB = Agency{ID: "police-gb", Role: "law_enforcement", Jurisdiction: "GB", Contact: "duty-desk@police-gb.example"}
	policeUS = Agency{ID: "police-us", Role: "law_enforcement", Jurisdiction: "US", Contact: "duty-desk@police-us.example"}
	policeTH = Agency{ID: "police-th", Role: "law_enforcement", Jurisdiction: "TH", Contact: "duty-desk@police-th.example"}
	shelter  = Agency{ID: "ngo-shelter", Role: "ngo", Jurisdiction: "GB", Contact: "casework@ngo-shelter.example"}
	auditor  = Agency{ID: "auditor", Role: "auditor", Contact: "oversight@auditor.example"}

	requestTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// overlaps is an overlaps request by a, for purpose, on a's phone list.
func overlaps(a Agency, purpose, caseRef string) Request {
	return Request{
		Action:    "overlaps",
		Time:      requestTime,
		Purpose:   purpose,
		CaseRef:   caseRef,
		Requester: a,
		List: &List{
			Name: a.ID + "-op-lantern-phones", Owner: a.ID, Kind: "phone", Category: "suspect",
			Jurisdiction: a.Jurisdiction, ExpiresAt: requestTime.AddDate(1, 0, 0),
		},
	}
}

// list is a counterparty list of category held by owner, expiring in 2026.
func list(owner Agency, category string) List {
	return List{
		Name: owner.ID + "-" + category, Owner: owner.ID, Kind: "phone", Category: category,
		Jurisdiction: owner.Jurisdiction, ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// disclose asks e about one counterparty list.
func disclose(ctx context.Context, e *Engine, r Request, cp Agency, l List, granted bool) (Disclosure, error) {
	ds, err := e.Disclose(ctx, r, []Counterparty{{Agency: cp, List: l, Granted: granted}})
	return ds[0], err
}

// newEngine returns an engine for opts, failing the test if New fails.
func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return e
}

// copyBundle copies the embedded bundle into a new directory and writes
// extra files (name → content) into it.
func copyBundle(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(embedded, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(embedded, name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range extra {
		writeFile(t, dir, name, content)
	}
	return dir
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorize(t *testing.T) {
	e := newEngine(t, Options{})
	noList := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	noList.Action, noList.List = "publish", nil
	othersList := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	othersList.Action, othersList.List.Owner = "delete", "police-us"
	export := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	export.Action = "export"
	auditorList := Request{Action: "list", Time: requestTime, Requester: auditor}
	mismatch := overlaps(shelter, "victim_support", "")
	mismatch.Requester.Role = "law_enforcement"

	tests := []struct {
		name     string
		req      Request
		allow    bool
		rules    []string
		maxLevel Level
		reason   string // a substring of one of the reasons
	}{
		{"law enforcement investigation", overlaps(policeGB, "investigation", "GB-NCA-2025-0147"), true, []string{"authz.allowed"}, LevelFull, ""},
		{"ngo check needs no case reference", func() Request { r := overlaps(shelter, "victim_support", ""); r.Action = "check"; return r }(), true, []string{"authz.allowed"}, LevelFull, ""},
		{"research caps at count", overlaps(policeTH, "research", "TH-DSI-2025-88"), true, []string{"authz.allowed", "purpose.research_cap"}, LevelCount, `purpose "research" limits disclosure to count`},
		{"auditor may list", auditorList, true, []string{"authz.allowed"}, LevelFull, ""},
		{"auditor overlaps", overlaps(auditor, "research", ""), false, []string{"auditor.no_matching"}, LevelNone, "auditors may not run overlaps, check or receive alerts"},
		{"auditor check", func() Request { r := overlaps(auditor, "research", ""); r.Action = "check"; return r }(), false, []string{"auditor.no_matching"}, LevelNone, "auditors may not run overlaps, check or receive alerts"},
		{"unknown requester", overlaps(Agency{ID: "police-fr", Role: "law_enforcement", Jurisdiction: "FR"}, "investigation", "FR-1"), false, []string{"requester.unknown"}, LevelNone, `requester "police-fr" is not in the agency registry`},
		{"role differs from registry", mismatch, false, []string{"requester.mismatch"}, LevelNone, "differ from the agency registry"},
		{"purpose not allowed for role", overlaps(shelter, "investigation", ""), false, []string{"purpose.not_allowed"}, LevelNone, `purpose "investigation" is not allowed for role ngo; allowed purposes: research, victim_support`},
		{"no purpose", overlaps(policeUS, "", "US-FBI-2025-3"), false, []string{"purpose.missing"}, LevelNone, "allowed purposes for role law_enforcement: investigation, missing_person_search, research"},
		{"law enforcement without case reference", overlaps(policeGB, "investigation", ""), false, []string{"case_ref.missing"}, LevelNone, "needs a case reference"},
		{"unknown action", export, false, []string{"action.unknown"}, LevelNone, `unknown action "export"`},
		{"publish without a list", noList, false, []string{"list.missing"}, LevelNone, "publish needs one of the requester's own lists"},
		{"someone else's list", othersList, false, []string{"list.not_owner"}, LevelNone, "agencies may act only on their own lists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := e.Authorize(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if a.Allow != tt.allow || a.MaxLevel != tt.maxLevel || !slices.Equal(a.Rules, tt.rules) {
				t.Errorf("Authorize = allow %t, max_level %s, rules %v; want %t, %s, %v", a.Allow, a.MaxLevel, a.Rules, tt.allow, tt.maxLevel, tt.rules)
			}
			if tt.reason != "" && !slices.ContainsFunc(a.Reasons, func(r string) bool { return strings.Contains(r, tt.reason) }) {
				t.Errorf("reasons %q do not mention %q", a.Reasons, tt.reason)
			}
			if a.Revision != e.Revision() {
				t.Errorf("Revision = %q, want %q", a.Revision, e.Revision())
			}
		})
	}
}

func TestAuthorizeWithoutTimeDenies(t *testing.T) {
	e := newEngine(t, Options{})
	r := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	r.Time = time.Time{}
	a, err := e.Authorize(t.Context(), r)
	if err == nil || a.Allow || a.MaxLevel != LevelNone || !slices.Equal(a.Rules, []string{RuleEngineError}) {
		t.Errorf("Authorize without time = %+v, %v; want deny and an error", a, err)
	}
}

func TestDisclose(t *testing.T) {
	e := newEngine(t, Options{})
	investigation := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	support := overlaps(shelter, "victim_support", "")
	with := func(l List, edit func(*List)) List { edit(&l); return l }

	tests := []struct {
		name    string
		req     Request
		cp      Agency
		list    List
		granted bool
		want    Disclosure
	}{
		{"law enforcement, same jurisdiction", investigation, policeGB, list(policeGB, "suspect"), false,
			Disclosure{Level: LevelFull, Rules: []string{"le.same_jurisdiction"}, Class: "law_enforcement/GB", Contact: policeGB.Contact}},
		{"law enforcement, GB-US agreement", investigation, policeUS, list(policeUS, "ad_contact"), false,
			Disclosure{Level: LevelFull, Rules: []string{"le.agreement"}, Class: "law_enforcement/US", Contact: policeUS.Contact}},
		{"law enforcement, US-GB agreement is symmetric", overlaps(policeUS, "investigation", "US-FBI-2025-3"), policeGB, list(policeGB, "suspect"), false,
			Disclosure{Level: LevelFull, Rules: []string{"le.agreement"}, Class: "law_enforcement/GB", Contact: policeGB.Contact}},
		{"law enforcement, no agreement", investigation, policeTH, list(policeTH, "suspect"), false,
			Disclosure{Level: LevelCount, Rules: []string{"le.no_agreement"}, Class: "law_enforcement/TH"}},
		{"victim list is flagged without naming the holder", overlaps(policeTH, "investigation", "TH-DSI-2025-88"), shelter, list(shelter, "victim"), false,
			Disclosure{Level: LevelFlag, Rules: []string{"victim.flag"}, Class: "victim/GB", LiaisonContact: "victim-liaison@gb.example"}},
		{"victim list outranks same jurisdiction", investigation, policeGB, list(policeGB, "victim"), false,
			Disclosure{Level: LevelFlag, Rules: []string{"victim.flag"}, Class: "victim/GB", LiaisonContact: "victim-liaison@gb.example"}},
		{"victim consented to law enforcement", investigation, shelter, with(list(shelter, "victim"), func(l *List) { l.VictimConsentRoles = []string{"law_enforcement"} }), false,
			Disclosure{Level: LevelFull, Rules: []string{"victim.consent"}, Class: "victim/GB", LiaisonContact: "victim-liaison@gb.example", Contact: shelter.Contact}},
		{"ngo, missing person", support, policeTH, list(policeTH, "missing_person"), false,
			Disclosure{Level: LevelFull, Rules: []string{"ngo.missing_person"}, Class: "law_enforcement/TH", Contact: policeTH.Contact}},
		{"ngo, suspect", support, policeUS, list(policeUS, "suspect"), false,
			Disclosure{Level: LevelCount, Rules: []string{"ngo.suspect_count"}, Class: "law_enforcement/US"}},
		{"ngo, ad contact", support, policeGB, list(policeGB, "ad_contact"), false,
			Disclosure{Level: LevelCount, Rules: []string{"ngo.suspect_count"}, Class: "law_enforcement/GB"}},
		{"ngo, suspect list opted in", support, policeGB, with(list(policeGB, "suspect"), func(l *List) { l.NGOVisible = true }), false,
			Disclosure{Level: LevelFull, Rules: []string{"ngo.opt_in"}, Class: "law_enforcement/GB", Contact: policeGB.Contact}},
		{"research caps an agreement at count", overlaps(policeGB, "research", "GB-NCA-2025-0147"), policeUS, list(policeUS, "suspect"), false,
			Disclosure{Level: LevelCount, Rules: []string{"le.agreement", "purpose.research_cap"}, Class: "law_enforcement/US"}},
		{"research caps even a granted disclosure", overlaps(policeGB, "research", "GB-NCA-2025-0147"), policeTH, list(policeTH, "suspect"), true,
			Disclosure{Level: LevelCount, Rules: []string{"le.no_agreement", "disclosure.granted", "purpose.research_cap"}, Class: "law_enforcement/TH"}},
		{"expired list", investigation, policeUS, with(list(policeUS, "suspect"), func(l *List) { l.ExpiresAt = requestTime.Add(-time.Minute) }), true,
			Disclosure{Level: LevelNone, Rules: []string{"list.expired"}}},
		{"list without expiry", investigation, policeUS, with(list(policeUS, "suspect"), func(l *List) { l.ExpiresAt = time.Time{} }), false,
			Disclosure{Level: LevelFull, Rules: []string{"le.agreement"}, Class: "law_enforcement/US", Contact: policeUS.Contact}},
		{"granted disclosure upgrades count", investigation, policeTH, list(policeTH, "suspect"), true,
			Disclosure{Level: LevelFull, Rules: []string{"le.no_agreement", "disclosure.granted"}, Class: "law_enforcement/TH", Contact: policeTH.Contact}},
		{"granted disclosure upgrades flag", overlaps(policeUS, "investigation", "US-FBI-2025-3"), shelter, list(shelter, "victim"), true,
			Disclosure{Level: LevelFull, Rules: []string{"victim.flag", "disclosure.granted"}, Class: "victim/GB", LiaisonContact: "victim-liaison@gb.example", Contact: shelter.Contact}},
		{"granted disclosure does not lift none", investigation, shelter, list(shelter, "ad_contact"), true,
			Disclosure{Level: LevelNone, Rules: []string{"default.none"}}},
		{"ngo against ngo", support, shelter, list(shelter, "suspect"), false,
			Disclosure{Level: LevelNone, Rules: []string{"default.none"}}},
		{"denied request", overlaps(auditor, "research", ""), policeGB, list(policeGB, "suspect"), false,
			Disclosure{Level: LevelNone, Rules: []string{"authz.denied"}}},
		{"counterparty not in registry", investigation, Agency{ID: "police-fr", Role: "law_enforcement", Jurisdiction: "FR"}, list(Agency{ID: "police-fr", Jurisdiction: "FR"}, "suspect"), false,
			Disclosure{Level: LevelNone, Rules: []string{"counterparty.unknown"}}},
		{"list owner is not the counterparty", investigation, policeUS, list(policeTH, "suspect"), false,
			Disclosure{Level: LevelNone, Rules: []string{"counterparty.unknown"}}},
	}
	check := func(t *testing.T, d Disclosure, cp Agency, want Disclosure) {
		t.Helper()
		want.Revision = e.Revision()
		if d.Level != want.Level || !slices.Equal(d.Rules, want.Rules) || d.Class != want.Class ||
			d.LiaisonContact != want.LiaisonContact || d.Contact != want.Contact || d.Revision != want.Revision {
			t.Errorf("Disclose =\n %+v\nwant\n %+v", d, want)
		}
		if d.Level != LevelFull && strings.Contains(d.Class+d.LiaisonContact, cp.ID) {
			t.Errorf("level %s names the counterparty %s: %+v", d.Level, cp.ID, d)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := disclose(t.Context(), e, tt.req, tt.cp, tt.list, tt.granted)
			if err != nil {
				t.Fatalf("Disclose: %v", err)
			}
			check(t, d, tt.cp, tt.want)
		})
	}
	// The hub asks about every list of an answer at once: the cases of one
	// request, asked together, get the same decisions, in their order.
	t.Run("in one evaluation", func(t *testing.T) {
		for _, r := range []Request{investigation, support} {
			var cps []Counterparty
			var want []Disclosure
			for _, tt := range tests {
				if reflect.DeepEqual(tt.req, r) {
					cps = append(cps, Counterparty{Agency: tt.cp, List: tt.list, Granted: tt.granted})
					want = append(want, tt.want)
				}
			}
			ds, err := e.Disclose(t.Context(), r, cps)
			if err != nil || len(ds) != len(cps) || len(cps) < 4 {
				t.Fatalf("Disclose(%d lists) = %d disclosures, %v", len(cps), len(ds), err)
			}
			for i := range ds {
				check(t, ds[i], cps[i].Agency, want[i])
			}
		}
		if ds, err := e.Disclose(t.Context(), investigation, nil); err != nil || len(ds) != 0 {
			t.Errorf("Disclose(no lists) = %+v, %v", ds, err)
		}
	})
}

func TestAgency(t *testing.T) {
	e := newEngine(t, Options{})
	for _, want := range []Agency{policeGB, policeUS, policeTH, shelter, auditor} {
		if got, ok := e.Agency(want.ID); !ok || got != want {
			t.Errorf("Agency(%q) = %+v, %t; want %+v", want.ID, got, ok, want)
		}
	}
	if got, ok := e.Agency("police-fr"); ok {
		t.Errorf("Agency(police-fr) = %+v, want not found", got)
	}
}

func TestRunTests(t *testing.T) {
	rep, err := RunTests(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Passed < 40 {
		for _, r := range rep.Results {
			if !r.Pass {
				t.Errorf("%s (%s): %s %s", r.Name, r.Location, r.Err, r.Output)
			}
		}
		t.Fatalf("RunTests(embedded): %d passed, %d failed", rep.Passed, rep.Failed)
	}
	e := newEngine(t, Options{})
	if rep.Revision != e.Revision() {
		t.Errorf("report revision %s, engine revision %s", rep.Revision, e.Revision())
	}

	dir := copyBundle(t, map[string]string{"broken_test.rego": `package veilmatch.broken_test

import data.veilmatch.authz

test_auditor_may_overlap if {
	authz.decision.allow with input as {"action": "overlaps", "requester": {"id": "auditor", "role": "auditor"}}
}
`})
	rep, err = RunTests(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Failed != 1 {
		t.Errorf("RunTests with a failing test: OK %t, failed %d; want one failure", rep.OK(), rep.Failed)
	}
}

// badBundles are policy directories New and Reload must refuse.
var badBundles = []struct {
	name    string
	files   map[string]string
	wantErr string
}{
	{"syntax error", map[string]string{"extra.rego": "package veilmatch.extra\n\nx := {\n"}, "parse extra.rego"},
	{"http.send", map[string]string{"extra.rego": "package veilmatch.extra\n\nx := http.send({\"method\": \"get\", \"url\": \"https://example.com\"})\n"}, "http.send"},
	{"time.now_ns", map[string]string{"extra.rego": "package veilmatch.extra\n\nx := time.now_ns()\n"}, "time.now_ns"},
	{"allow everything", map[string]string{"authz.rego": "package veilmatch.authz\n\nallow := true\n\nmax_level := \"full\"\n\ndecision := {\"allow\": true, \"reasons\": [], \"rules\": [\"open\"], \"max_level\": \"full\"}\n"}, `sample "auditor overlaps"`},
	{"second data document", map[string]string{"more.json": "{}"}, "a bundle has exactly one"},
	{"role outside the vocabulary", map[string]string{"data.json": dataReplace(`"role": "ngo"`, `"role": "charity"`)}, `role "charity" is not in the vocabulary`},
	{"no categories", map[string]string{"data.json": dataReplace(`"categories": [`, `"categories": [], "unused": [`)}, "vocabulary.categories is empty"},
	{"category not a word", map[string]string{"data.json": dataReplace(`"victim",`, `"Victims ",`)}, `"Victims " is not a word`},
	{"purposes of an unknown role", map[string]string{"data.json": dataReplace(`"ngo": [`, `"charity": [`)}, `role "charity" is not in the vocabulary`},
}

// dataReplace returns the embedded data document with old replaced by new.
func dataReplace(old, new string) string {
	data, err := fs.ReadFile(embedded, "data.json")
	if err != nil || !strings.Contains(string(data), old) {
		panic(fmt.Sprintf("data.json: %v, or %q not found", err, old))
	}
	return strings.Replace(string(data), old, new, 1)
}

func TestVocabulary(t *testing.T) {
	v := newEngine(t, Options{}).Vocabulary()
	tests := []struct {
		name      string
		got, want []string
	}{
		{"kinds", v.Kinds, []string{"email", "md5", "pdq", "phone", "sha1", "sha256"}},
		{"categories", v.Categories, []string{"ad_contact", "missing_person", "suspect", "victim"}},
		{"roles", v.Roles, []string{"auditor", "law_enforcement", "ngo"}},
		{"law enforcement purposes", v.Purposes("law_enforcement"), []string{"investigation", "missing_person_search", "research"}},
		{"ngo purposes", v.Purposes("ngo"), []string{"research", "victim_support"}},
		{"auditor purposes", v.Purposes("auditor"), []string{"research"}},
		{"unknown role", v.Purposes("charity"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	for p, want := range map[string]bool{"investigation": true, "victim_support": true, "research": true, "investigations": false, "": false} {
		if got := v.KnownPurpose(p); got != want {
			t.Errorf("KnownPurpose(%q) = %t, want %t", p, got, want)
		}
	}
}

func TestNewRefusesBadBundles(t *testing.T) {
	for _, tt := range badBundles {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), Options{Dir: copyBundle(t, tt.files)})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(t.Context(), Options{Dir: t.TempDir()}); err == nil {
		t.Error("New accepted an empty directory")
	}
}

func TestReloadKeepsBundleOnFailure(t *testing.T) {
	for _, tt := range badBundles {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyBundle(t, nil)
			e := newEngine(t, Options{Dir: dir})
			rev := e.Revision()
			for name, content := range tt.files {
				writeFile(t, dir, name, content)
			}
			if err := e.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Reload: %v; want an error mentioning %q", err, tt.wantErr)
			}
			if e.Revision() != rev {
				t.Errorf("Revision changed to %s after a failed reload", e.Revision())
			}
			a, err := e.Authorize(t.Context(), overlaps(auditor, "research", ""))
			if err != nil || a.Allow || a.Revision != rev {
				t.Errorf("old bundle: Authorize(auditor overlaps) = %+v, %v; want deny by revision %s", a, err, rev)
			}
		})
	}
}

func TestEvaluationErrorsFailClosed(t *testing.T) {
	dir := copyBundle(t, map[string]string{"trap.rego": `package veilmatch.authz

# A second definition of a complete rule: conflicts for one case reference.
max_level := "count" if input.case_ref == "TRIGGER-CONFLICT"

# A built-in error (to_number of a non-number) for case references "NUM-…".
deny contains {"rule": "trap.number", "reason": "case number too high"} if {
	startswith(input.case_ref, "NUM-")
	to_number(trim_prefix(input.case_ref, "NUM-")) > 1000
}
`})
	e := newEngine(t, Options{Dir: dir})
	for _, caseRef := range []string{"TRIGGER-CONFLICT", "NUM-not-a-number"} {
		t.Run(caseRef, func(t *testing.T) {
			req := overlaps(policeGB, "investigation", caseRef)
			a, err := e.Authorize(t.Context(), req)
			if err == nil || a.Allow || a.MaxLevel != LevelNone || !slices.Equal(a.Rules, []string{RuleEngineError}) {
				t.Errorf("Authorize = %+v, %v; want deny with an error", a, err)
			}
			d, err := disclose(t.Context(), e, req, policeGB, list(policeGB, "suspect"), true)
			if err == nil || d.Level != LevelNone || d.Contact != "" || !slices.Equal(d.Rules, []string{RuleEngineError}) {
				t.Errorf("Disclose = %+v, %v; want none with an error", d, err)
			}
		})
	}
	if a, err := e.Authorize(t.Context(), overlaps(policeGB, "investigation", "NUM-12")); err != nil || !a.Allow {
		t.Errorf("Authorize(NUM-12) = %+v, %v; want allow", a, err)
	}
}

func TestMalformedDecisionsFailClosed(t *testing.T) {
	// each gives decisions as the single decision for every list.
	each := func(decision string) string {
		return "package veilmatch.disclosure\n\n" + decision + "\n\ndecisions := [decision | some _ in input.counterparties]\n"
	}
	tests := []struct {
		name string
		rego string
	}{
		{"undefined", each("decision := x if {\n\tx := input.never\n}")},
		{"contact below full", each(`decision := {"level": "count", "rules": ["leak"], "class": "law_enforcement/TH", "liaison_contact": "", "contact": "duty-desk@police-th.example"}`)},
		{"unknown level", each(`decision := {"level": "all", "rules": ["x"], "class": "", "liaison_contact": "", "contact": ""}`)},
		{"missing member", each(`decision := {"level": "none", "rules": ["x"]}`)},
		{"no decisions", "package veilmatch.disclosure\n\ndecision := {\"level\": \"none\", \"rules\": [\"x\"], \"class\": \"\", \"liaison_contact\": \"\", \"contact\": \"\"}\n"},
		{"fewer decisions than lists", `package veilmatch.disclosure

decision := {"level": "count", "rules": ["x"], "class": "law_enforcement/TH", "liaison_contact": "", "contact": ""}

decisions := [decision]
`},
	}
	req := overlaps(policeGB, "investigation", "GB-NCA-2025-0147")
	cps := []Counterparty{{Agency: policeTH, List: list(policeTH, "suspect")}, {Agency: policeTH, List: list(policeTH, "ad_contact")}}
	e := newEngine(t, Options{})
	good, err := e.state.Load().queries.disclose(t.Context(), req, cps)
	if err != nil || good[0].Level != LevelCount || good[1].Level != LevelCount {
		t.Fatalf("embedded bundle: %+v, %v", good, err)
	}
	prepareWith := func(t *testing.T, rego string) (*ast.Compiler, queries) {
		t.Helper()
		files := []file{{name: "data.json", data: mustRead(t, "data.json")}, {name: "authz.rego", data: mustRead(t, "authz.rego")}, {name: "disclosure.rego", data: []byte(rego)}}
		b, err := parseBundle(files, false)
		if err != nil {
			t.Fatal(err)
		}
		c, err := compile(b.modules)
		if err != nil {
			t.Fatal(err)
		}
		q, err := prepare(t.Context(), c, e.state.Load().store)
		if err != nil {
			t.Fatal(err)
		}
		return c, q
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, q := prepareWith(t, tt.rego)
			ds, err := q.disclose(t.Context(), req, cps)
			if err == nil || len(ds) != len(cps) {
				t.Errorf("disclose = %+v, %v; want an error", ds, err)
			}
			for _, d := range ds {
				if d.Level != LevelNone || !slices.Equal(d.Rules, []string{RuleEngineError}) {
					t.Errorf("disclose = %+v, want none by %s", d, RuleEngineError)
				}
			}
			if err := validate(t.Context(), c, q); err == nil {
				t.Error("validate accepted the bundle")
			}
		})
	}
	// A malformed decision about one list leaves the others' decisions.
	t.Run("one malformed of two", func(t *testing.T) {
		_, q := prepareWith(t, `package veilmatch.disclosure

decision := decide(input.counterparty)

decisions := [decide(c.counterparty) | some c in input.counterparties]

decide(cp) := {"level": "count", "rules": ["x"], "class": "c", "liaison_contact": "", "contact": contact(cp)}

contact(cp) := "leak@example" if cp.list.category == "ad_contact" else := ""
`)
		ds, err := q.disclose(t.Context(), req, cps)
		if err == nil || !strings.Contains(err.Error(), cps[1].List.Name) {
			t.Errorf("disclose: %v; want an error naming %s", err, cps[1].List.Name)
		}
		if len(ds) != 2 || ds[0].Level != LevelCount || ds[1].Level != LevelNone || ds[1].Contact != "" || !slices.Equal(ds[1].Rules, []string{RuleEngineError}) {
			t.Errorf("disclose = %+v; want count, then none by %s", ds, RuleEngineError)
		}
	})
	// A bundle whose two disclosure queries disagree is refused: dry runs
	// would show operators something other than what the hub does.
	t.Run("decision and decisions disagree", func(t *testing.T) {
		rego := strings.Replace(string(mustRead(t, "disclosure.rego")), `decisions := [decide(`, `decisions := [object.union(decide(`, 1)
		rego = strings.Replace(rego, `object.get(c, "disclosure_granted", false)) |`, `object.get(c, "disclosure_granted", false)), {"rules": ["other"]}) |`, 1)
		c, q := prepareWith(t, rego)
		if err := validate(t.Context(), c, q); err == nil || !strings.Contains(err.Error(), disclosuresQuery) {
			t.Errorf("validate: %v; want the samples to show the queries disagree", err)
		}
	})
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := fs.ReadFile(embedded, name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRevision(t *testing.T) {
	embeddedRev := newEngine(t, Options{}).Revision()
	if len(embeddedRev) != 64 {
		t.Fatalf("Revision = %q, want 64 hex digits", embeddedRev)
	}
	dir := copyBundle(t, map[string]string{"README.md": "not part of the bundle"})
	e := newEngine(t, Options{Dir: dir})
	if e.Revision() != embeddedRev {
		t.Errorf("copied bundle revision %s, embedded %s", e.Revision(), embeddedRev)
	}

	data := strings.Replace(string(mustRead(t, "data.json")), "duty-desk@police-gb.example", "control-room@police-gb.example", 1)
	writeFile(t, dir, "data.json", data)
	if err := e.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Revision() == embeddedRev {
		t.Error("Revision unchanged after data.json changed")
	}
	if a, _ := e.Agency("police-gb"); a.Contact != "control-room@police-gb.example" {
		t.Errorf("Agency(police-gb).Contact = %q after reload", a.Contact)
	}
	d, err := disclose(t.Context(), e, overlaps(policeUS, "investigation", "US-FBI-2025-3"), policeGB, list(policeGB, "suspect"), false)
	if err != nil || d.Contact != "control-room@police-gb.example" || d.Revision != e.Revision() {
		t.Errorf("Disclose after reload = %+v, %v", d, err)
	}
}

func TestWatch(t *testing.T) {
	dir := copyBundle(t, nil)
	e := newEngine(t, Options{Dir: dir})
	old := e.Revision()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Watch(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	// Rewrite the file until the watcher, which starts asynchronously, sees it.
	data := strings.Replace(string(mustRead(t, "data.json")), "victim-liaison@th.example", "liaison-desk@th.example", 1)
	deadline := time.Now().Add(20 * time.Second)
	for e.Revision() == old {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not reload the changed bundle")
		}
		writeFile(t, dir, "data.json", data)
		time.Sleep(300 * time.Millisecond)
	}
	d, err := disclose(t.Context(), e, overlaps(policeGB, "investigation", "GB-NCA-2025-0147"), policeTH, list(policeTH, "victim"), false)
	if err != nil || d.LiaisonContact != "liaison-desk@th.example" {
		t.Errorf("Disclose after watch reload = %+v, %v", d, err)
	}
}

func TestWatchEmbeddedReturns(t *testing.T) {
	e := newEngine(t, Options{})
	e.Watch(t.Context()) // returns at once: nothing to watch
}

func TestConcurrentUseDuringReload(t *testing.T) {
	dir := copyBundle(t, nil)
	e := newEngine(t, Options{Dir: dir})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				a, err := e.Authorize(t.Context(), overlaps(policeGB, "investigation", "GB-NCA-2025-0147"))
				if err != nil || !a.Allow {
					t.Errorf("Authorize during reload = %+v, %v", a, err)
					return
				}
			}
		})
	}
	for i := range 2 {
		writeFile(t, dir, "note.rego", "package veilmatch.note\n\nrevision := "+string(rune('1'+i))+"\n")
		if err := e.Reload(t.Context()); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestEval(t *testing.T) {
	e := newEngine(t, Options{})
	input, err := json.Marshal(map[string]any{
		"action": "check", "time": "2025-06-01T12:00:00Z", "purpose": "research", "case_ref": "TH-DSI-2025-88",
		"requester": map[string]any{"id": "police-th", "role": "law_enforcement", "jurisdiction": "TH"},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Eval(t.Context(), authzQuery, input)
	if err != nil {
		t.Fatal(err)
	}
	var rs []struct {
		Expressions []struct {
			Value struct {
				Allow    bool   `json:"allow"`
				MaxLevel string `json:"max_level"`
			} `json:"value"`
		} `json:"expressions"`
	}
	if err := json.Unmarshal(res.Results, &rs); err != nil {
		t.Fatal(err)
	}
	if !res.Defined || res.Revision != e.Revision() || len(rs) != 1 || !rs[0].Expressions[0].Value.Allow || rs[0].Expressions[0].Value.MaxLevel != "count" {
		t.Errorf("Eval = %s (revision %s, defined %t)", res.Results, res.Revision, res.Defined)
	}

	if res, err := e.Eval(t.Context(), "data.veilmatch.nothing.here", nil); err != nil || res.Defined || string(res.Results) != "[]" {
		t.Errorf("Eval(undefined) = %+v, %v", res, err)
	}
	for _, q := range []string{`http.send({"method": "get", "url": "https://example.com"})`, "time.now_ns()", "data.veilmatch.authz.decision["} {
		if _, err := e.Eval(t.Context(), q, nil); err == nil {
			t.Errorf("Eval(%s) succeeded, want an error", q)
		}
	}
	if _, err := e.Eval(t.Context(), authzQuery, []byte("{not json")); err == nil {
		t.Error("Eval with malformed input succeeded")
	}
}

func TestLevels(t *testing.T) {
	order := []Level{LevelNone, LevelCount, LevelFlag, LevelFull}
	for i, l := range order {
		if l.Rank() != i {
			t.Errorf("%s.Rank() = %d, want %d", l, l.Rank(), i)
		}
		if got, err := ParseLevel(string(l)); err != nil || got != l {
			t.Errorf("ParseLevel(%s) = %s, %v", l, got, err)
		}
	}
	if Min(LevelFlag, LevelCount) != LevelCount {
		t.Error("Min orders levels wrongly")
	}
	if Level("all").Rank() != -1 || Min(LevelNone, "all") != "all" {
		t.Error("unknown levels must rank below none")
	}
	var l Level
	if err := json.Unmarshal([]byte(`"secret"`), &l); err == nil {
		t.Errorf("unmarshal of an unknown level gave %q", l)
	}
}

func TestSandboxCapabilities(t *testing.T) {
	all := ast.CapabilitiesForThisVersion()
	for _, name := range sandboxDenied {
		has := func(b *ast.Builtin) bool { return b.Name == name }
		if !slices.ContainsFunc(all.Builtins, has) {
			t.Errorf("%s is not an OPA built-in: a misspelled name denies nothing", name)
		}
		if slices.ContainsFunc(capabilities().Builtins, has) {
			t.Errorf("%s is allowed in the sandbox", name)
		}
	}
	if len(capabilities().AllowNet) != 0 {
		t.Errorf("AllowNet = %v, want none", capabilities().AllowNet)
	}
}

// TestDryRun: with no query, the decision follows the input's shape, and
// the hub's two decisions come back typed, checked as the hub checks them.
func TestDryRun(t *testing.T) {
	e := newEngine(t, Options{})
	authz := `{"action": "check", "time": "2025-06-01T12:00:00Z", "purpose": "research", "case_ref": "TH-1",
		"requester": {"id": "police-th", "role": "law_enforcement", "jurisdiction": "TH"}}`
	res, err := e.DryRun(t.Context(), "", []byte(authz))
	if err != nil || res.Query != authzQuery || !res.Defined || res.Authorization == nil || !res.Authorization.Allow ||
		res.Authorization.MaxLevel != LevelCount || res.Disclosure != nil || res.Malformed != nil || res.Revision != e.Revision() {
		t.Fatalf("authz dry run = %+v, %v", res, err)
	}
	disclosure := `{"action": "overlaps", "time": "2025-06-01T12:00:00Z", "purpose": "investigation", "case_ref": "TH-1",
		"requester": {"id": "police-th", "role": "law_enforcement", "jurisdiction": "TH"},
		"list": {"name": "own", "owner": "police-th", "kind": "phone", "category": "suspect", "jurisdiction": "TH", "expires_at": "", "victim_consent_roles": [], "ngo_visible": false},
		"counterparty": {"agency": {"id": "police-gb", "role": "law_enforcement", "jurisdiction": "GB"},
		"list": {"name": "s", "owner": "police-gb", "kind": "phone", "category": "suspect", "jurisdiction": "GB", "expires_at": "", "victim_consent_roles": [], "ngo_visible": false}}}`
	res, err = e.DryRun(t.Context(), "", []byte(disclosure))
	if err != nil || res.Query != disclosureQuery || res.Disclosure == nil || res.Disclosure.Level != LevelCount || res.Disclosure.Class != "law_enforcement/GB" {
		t.Fatalf("disclosure dry run = %+v, %v", res, err)
	}
	res, err = e.DryRun(t.Context(), "data.veilmatch.authz.max_level", []byte(authz))
	if err != nil || res.Authorization != nil || string(res.Value) != `"count"` {
		t.Fatalf("other query = %+v, %v", res, err)
	}
	if _, err := e.DryRun(t.Context(), "", []byte("{not json")); err == nil {
		t.Error("a dry run of malformed input succeeded")
	}
}
