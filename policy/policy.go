// Package policy evaluates veilmatch's disclosure policy, a bundle of Rego v1
// policies and one data document (the agency registry, data-sharing agreements
// and purposes), through the OPA Go API.
//
// Two decisions are exposed: [Engine.Authorize] (data.veilmatch.authz.decision)
// says whether a requester may perform an action on the hub, and
// [Engine.Disclose] (data.veilmatch.disclosure.decisions) says what a
// requester may learn about the entries it shares with each counterparty
// list of an answer, in one evaluation; data.veilmatch.disclosure.decision
// is the same decision about one list, for operators' dry runs, and a
// bundle whose two disagree on the samples is refused. Both fail closed:
// an evaluation error, an undefined or a malformed result denies, and the
// error is returned for the caller to log.
//
// The default bundle is embedded in the binary; [Options.Dir] overrides it.
// Policies are compiled and prepared once per bundle, evaluated in a sandbox
// without network, clock or randomness built-ins, and checked against
// built-in sample requests before a bundle is accepted.
package policy

import (
	"fmt"
	"slices"
	"time"
)

// Level is how much a requester learns about a match, from least to most:
// none, count, flag, full.
type Level string

// Disclosure levels, in increasing order of what the requester learns.
const (
	// LevelNone discloses nothing: the answer is indistinguishable from no match.
	LevelNone Level = "none"
	// LevelCount discloses how many entries matched a class of counterparty.
	LevelCount Level = "count"
	// LevelFlag discloses which entries matched and that they are protected,
	// with a liaison contact, but not who holds them.
	LevelFlag Level = "flag"
	// LevelFull discloses which entries matched, the counterparty and its contact.
	LevelFull Level = "full"
)

var levelRanks = map[Level]int{LevelNone: 0, LevelCount: 1, LevelFlag: 2, LevelFull: 3}

// Levels are the disclosure levels from least to most revealing.
var Levels = []Level{LevelNone, LevelCount, LevelFlag, LevelFull}

// Rank orders levels: none 0, count 1, flag 2, full 3; an unknown level is -1.
func (l Level) Rank() int {
	if r, ok := levelRanks[l]; ok {
		return r
	}
	return -1
}

// Min returns the lower of two levels.
func Min(a, b Level) Level {
	if a.Rank() <= b.Rank() {
		return a
	}
	return b
}

// ParseLevel returns the level named s.
func ParseLevel(s string) (Level, error) {
	l := Level(s)
	if l.Rank() < 0 {
		return "", fmt.Errorf("policy: unknown level %q", s)
	}
	return l, nil
}

// UnmarshalText accepts only the four known levels.
func (l *Level) UnmarshalText(b []byte) error {
	parsed, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = parsed
	return nil
}

// Agency is a party registered with the hub.
type Agency struct {
	ID           string
	Role         string // law_enforcement, ngo or auditor
	Jurisdiction string // ISO 3166 code; empty for auditors
	Contact      string
}

// List describes a published list of blinded identifiers (never its entries).
type List struct {
	Name               string
	Owner              string // agency id; empty when not known to the caller
	Kind               string // phone, email, pdq, ...
	Category           string // suspect, victim, missing_person, ad_contact, ...
	Jurisdiction       string
	ExpiresAt          time.Time // zero: the list does not expire
	VictimConsentRoles []string  // roles a victim consented to share with
	NGOVisible         bool      // law enforcement opted in to full NGO disclosure
}

// Request is an action a requester asks the hub to perform.
type Request struct {
	Action    string // overlaps, check, request_disclosure, approve_disclosure, refuse_disclosure, publish, delete, list, alert, retract, unretract
	Time      time.Time
	Purpose   string
	CaseRef   string
	Requester Agency
	List      *List // the requester's own list, if the action has one
}

// Authorization is the outcome of [Engine.Authorize].
type Authorization struct {
	Allow    bool
	Reasons  []string // human-readable and actionable
	Rules    []string // ids of the rules that decided
	MaxLevel Level    // the highest level disclosures for the request may reach
	Revision string   // the bundle revision that decided
}

// Counterparty is a counterparty list a disclosure decision is about.
type Counterparty struct {
	Agency Agency // the list's owner, from the registry
	List   List
	// Granted says that the list's owner approved a disclosure request for
	// the match.
	Granted bool
}

// Disclosure is the outcome of [Engine.Disclose] for one counterparty list.
type Disclosure struct {
	Level          Level
	Rules          []string // ids of the rules that decided
	Class          string   // counterparty class, e.g. law_enforcement/TH; never the agency
	LiaisonContact string   // for protected (victim) matches
	Contact        string   // the counterparty's contact, at LevelFull only
	Revision       string   // the bundle revision that decided
}

// RuleEngineError is the rule id of a decision the engine forced to deny or
// none because evaluation failed or the policy's result was malformed.
const RuleEngineError = "engine.error"

// Vocabulary is the policy's closed vocabulary, from the data document's
// veilmatch.registry.vocabulary and purposes: the only identifier kinds,
// list categories, roles and purposes requests may use. The hub refuses
// any other word before asking the policy, so a typo can never fall
// through to a rule meant for another category.
type Vocabulary struct {
	// Kinds, Categories and Roles are sorted.
	Kinds, Categories, Roles []string
	// purposes maps each role to the purposes it may state, sorted.
	purposes map[string][]string
}

// Purposes returns the purposes role may state, sorted.
func (v Vocabulary) Purposes(role string) []string { return v.purposes[role] }

// KnownPurpose reports whether any role may state p.
func (v Vocabulary) KnownPurpose(p string) bool {
	return slices.Contains(v.KnownPurposes(), p)
}

// KnownPurposes returns every purpose some role may state, sorted.
func (v Vocabulary) KnownPurposes() []string {
	var all []string
	for _, ps := range v.purposes {
		all = append(all, ps...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}
