package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/veilmatch/veilmatch/policy"
)

// FuzzPolicyInputs builds requests from untrusted request fields (action,
// purpose, case reference, list category and consent roles) and checks the
// engine's invariants: it never errors into an allow, an agency outside the
// registry is never allowed, and nothing is disclosed above what the
// request's authorization permits.
func FuzzPolicyInputs(f *testing.F) {
	ctx := context.Background()
	e, err := policy.New(ctx, policy.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("overlaps", "investigation", "GB-1", "police-gb", "victim", "law_enforcement", int64(0))
	f.Add("check", "victim_support", "", "ngo-shelter", "suspect", "", int64(-1))
	f.Add("overlaps", "research", "x", "mallory", "missing_person", "ngo", int64(1))
	f.Add("", "\x00", "\xff", "", "", "", int64(0))
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, action, purpose, caseRef, requester, category, consent string, expires int64) {
		a, known := e.Agency(requester)
		if !known {
			a = policy.Agency{ID: requester, Role: "law_enforcement", Jurisdiction: "GB"}
		}
		own := &policy.List{Name: "l", Owner: a.ID, Kind: "phone", Category: "suspect", Jurisdiction: a.Jurisdiction}
		r := policy.Request{Action: action, Time: now, Purpose: purpose, CaseRef: caseRef, Requester: a, List: own}
		az, err := e.Authorize(ctx, r)
		if err != nil && az.Allow {
			t.Fatal("an evaluation error allowed the request")
		}
		if az.Allow && !known {
			t.Fatalf("agency %q outside the registry was allowed", requester)
		}
		cp, _ := e.Agency("police-us")
		l := policy.List{Name: "c", Owner: cp.ID, Kind: "phone", Category: category, Jurisdiction: cp.Jurisdiction,
			VictimConsentRoles: []string{consent}}
		if expires != 0 {
			l.ExpiresAt = now.Add(time.Duration(expires) * time.Hour)
		}
		ds, err := e.Disclose(ctx, r, []policy.Counterparty{{Agency: cp, List: l}})
		d := ds[0]
		if err != nil && d.Level != policy.LevelNone {
			t.Fatalf("an evaluation error disclosed at %s", d.Level)
		}
		if !l.ExpiresAt.IsZero() && l.ExpiresAt.Before(now) && d.Level != policy.LevelNone {
			t.Fatalf("an expired list disclosed at %s", d.Level)
		}
		if !az.Allow && d.Level != policy.LevelNone {
			t.Fatalf("a refused request disclosed at %s (%v)", d.Level, d.Rules)
		}
	})
}
