package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// The samples are requests with known outcomes that every bundle must
// reproduce before it is accepted. They run against a registry of their own
// (fictitious agencies in jurisdictions AA, BB and CC, with an AA–BB
// agreement), so they check the policy's logic whatever the deployed registry
// holds; the fail-closed ones also run against the deployed registry.
var (
	sampleTime    = time.Date(2025, 1, 15, 9, 30, 0, 0, time.UTC)
	sampleLEAA    = Agency{ID: "sample-le-aa", Role: "law_enforcement", Jurisdiction: "AA", Contact: "duty@le-aa.example"}
	sampleLEBB    = Agency{ID: "sample-le-bb", Role: "law_enforcement", Jurisdiction: "BB", Contact: "duty@le-bb.example"}
	sampleLECC    = Agency{ID: "sample-le-cc", Role: "law_enforcement", Jurisdiction: "CC", Contact: "duty@le-cc.example"}
	sampleNGOAA   = Agency{ID: "sample-ngo-aa", Role: "ngo", Jurisdiction: "AA", Contact: "casework@ngo-aa.example"}
	sampleAuditor = Agency{ID: "sample-auditor", Role: "auditor", Contact: "oversight@auditor.example"}
	sampleUnknown = Agency{ID: "sample-unregistered", Role: "law_enforcement", Jurisdiction: "AA"}
)

// sampleData is the samples' data document.
func sampleData() map[string]any {
	agencies := map[string]any{}
	for _, a := range []Agency{sampleLEAA, sampleLEBB, sampleLECC, sampleNGOAA, sampleAuditor} {
		agencies[a.ID] = map[string]any{"role": a.Role, "jurisdiction": a.Jurisdiction, "contact": a.Contact}
	}
	return map[string]any{"veilmatch": map[string]any{"registry": map[string]any{
		"agencies": agencies,
		"liaisons": map[string]any{"AA": "liaison@aa.example", "BB": "liaison@bb.example", "CC": "liaison@cc.example"},
		"agreements": []any{
			map[string]any{"jurisdictions": []any{"AA", "BB"}},
		},
		"purposes": map[string]any{
			"by_role": map[string]any{
				"law_enforcement": []any{"investigation", "missing_person_search"},
				"ngo":             []any{"victim_support"},
			},
			"any_role": []any{"research"},
		},
		"purpose_caps": map[string]any{"research": "count"},
	}}}
}

// sampleRequest is an overlaps request by a for purpose with a case reference.
func sampleRequest(a Agency, purpose string) Request {
	return Request{
		Action:    "overlaps",
		Time:      sampleTime,
		Purpose:   purpose,
		CaseRef:   "SAMPLE-0001",
		Requester: a,
		List:      &List{Name: "sample-own", Owner: a.ID, Kind: "phone", Category: "suspect", Jurisdiction: a.Jurisdiction},
	}
}

type authzSample struct {
	name     string
	req      Request
	allow    bool
	maxLevel Level
}

type disclosureSample struct {
	name    string
	req     Request
	cp      Agency
	list    List
	granted bool
	level   Level
}

func authzSamples() []authzSample {
	noCaseRef := sampleRequest(sampleLEAA, "investigation")
	noCaseRef.CaseRef = ""
	return []authzSample{
		{"law enforcement overlaps", sampleRequest(sampleLEAA, "investigation"), true, LevelFull},
		{"research purpose", sampleRequest(sampleNGOAA, "research"), true, LevelCount},
		{"auditor overlaps", sampleRequest(sampleAuditor, "research"), false, LevelNone},
		{"purpose not allowed for role", sampleRequest(sampleNGOAA, "investigation"), false, LevelNone},
		{"law enforcement without case reference", noCaseRef, false, LevelNone},
	}
}

func disclosureSamples() []disclosureSample {
	le, ngo := sampleRequest(sampleLEAA, "investigation"), sampleRequest(sampleNGOAA, "victim_support")
	suspects := func(a Agency) List {
		return List{Name: "sample-suspects", Category: "suspect", Jurisdiction: a.Jurisdiction}
	}
	victims := List{Name: "sample-victims", Category: "victim", Jurisdiction: "AA"}
	consented := victims
	consented.VictimConsentRoles = []string{"law_enforcement"}
	optedIn := suspects(sampleLEBB)
	optedIn.NGOVisible = true
	expired := suspects(sampleLEBB)
	expired.ExpiresAt = sampleTime.Add(-time.Second)
	return []disclosureSample{
		{"law enforcement, same jurisdiction", le, sampleLEAA, suspects(sampleLEAA), false, LevelFull},
		{"law enforcement, agreement", le, sampleLEBB, suspects(sampleLEBB), false, LevelFull},
		{"law enforcement, no agreement", le, sampleLECC, suspects(sampleLECC), false, LevelCount},
		{"victim list", le, sampleNGOAA, victims, false, LevelFlag},
		{"victim list with consent", le, sampleNGOAA, consented, false, LevelFull},
		{"ngo, missing person", ngo, sampleLEBB, List{Category: "missing_person", Jurisdiction: "BB"}, false, LevelFull},
		{"ngo, suspect", ngo, sampleLEBB, suspects(sampleLEBB), false, LevelCount},
		{"ngo, opted-in suspect", ngo, sampleLEBB, optedIn, false, LevelFull},
		{"research purpose", sampleRequest(sampleLEAA, "research"), sampleLEBB, suspects(sampleLEBB), false, LevelCount},
		{"expired list", le, sampleLEBB, expired, true, LevelNone},
		{"granted disclosure", le, sampleLECC, suspects(sampleLECC), true, LevelFull},
		{"not covered", le, sampleNGOAA, suspects(sampleNGOAA), true, LevelNone},
		{"auditor", sampleRequest(sampleAuditor, "research"), sampleLEAA, suspects(sampleLEAA), false, LevelNone},
		{"unknown requester", sampleRequest(sampleUnknown, "investigation"), sampleLEAA, suspects(sampleLEAA), false, LevelNone},
	}
}

// validate runs the samples through the compiled bundle c, and the
// unknown-requester samples through q, the bundle's own decisions. The
// disclosure samples go through both disclosure queries, several at once
// where they share a request, which must agree.
func validate(ctx context.Context, c *ast.Compiler, q queries) error {
	sq, err := prepare(ctx, c, inmem.NewFromObject(sampleData()))
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	var errs []error
	checkAuthz := func(q queries, s authzSample) {
		a, err := q.authorize(ctx, s.req)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("sample %q: %w", s.name, err))
		case a.Allow != s.allow || a.MaxLevel != s.maxLevel:
			errs = append(errs, fmt.Errorf("sample %q: got allow=%t max_level=%s, want allow=%t max_level=%s", s.name, a.Allow, a.MaxLevel, s.allow, s.maxLevel))
		}
	}
	// checkDisclosures asks about the samples, which share one request, in
	// one evaluation of decisions, and about each alone through decision:
	// both must give the samples' levels, and the same disclosures.
	checkDisclosures := func(q queries, ss []disclosureSample) {
		cps := make([]Counterparty, len(ss))
		for i, s := range ss {
			cps[i] = Counterparty{Agency: s.cp, List: s.list, Granted: s.granted}
		}
		ds, err := q.disclose(ctx, ss[0].req, cps)
		if err != nil {
			errs = append(errs, fmt.Errorf("samples %q to %q: %w", ss[0].name, ss[len(ss)-1].name, err))
			return
		}
		for i, s := range ss {
			one, err := q.discloseOne(ctx, s.req, cps[i])
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("sample %q: %s: %w", s.name, disclosureQuery, err))
			case ds[i].Level != s.level:
				errs = append(errs, fmt.Errorf("sample %q: got level %s (rules %v), want %s", s.name, ds[i].Level, ds[i].Rules, s.level))
			case !reflect.DeepEqual(one, ds[i]):
				errs = append(errs, fmt.Errorf("sample %q: %s gives %+v, %s %+v", s.name, disclosureQuery, one, disclosuresQuery, ds[i]))
			}
		}
	}
	for _, s := range authzSamples() {
		checkAuthz(sq, s)
	}
	var batch []disclosureSample
	for _, s := range disclosureSamples() {
		if len(batch) > 0 && !reflect.DeepEqual(batch[0].req, s.req) {
			checkDisclosures(sq, batch)
			batch = nil
		}
		batch = append(batch, s)
	}
	checkDisclosures(sq, batch)
	unknown := sampleRequest(sampleUnknown, "investigation")
	checkAuthz(q, authzSample{"unknown requester, deployed registry", unknown, false, LevelNone})
	checkDisclosures(q, []disclosureSample{{"unknown requester, deployed registry", unknown, sampleLEAA, List{Category: "suspect"}, false, LevelNone}})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	return nil
}
