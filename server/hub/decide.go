package hub

import (
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// classLevel keys the per-class tallies of an answer.
type classLevel struct {
	class string
	level policy.Level
}

// answer is the policy-filtered result of a query.
type answer struct {
	matches  []*veilmatchv1.Match
	counts   []*veilmatchv1.ClassCount
	perClass map[classLevel]map[uint64]bool
	rules    []string
	lists    []string
	notices  []store.Notice
	// flagged and counted say which counterparty lists stand behind each
	// flag match (by entry) and each count (by class), and entries which
	// of the requester's entries each of those lists matched: what a
	// disclosure request needs, never sent to the requester.
	flagged map[uint64][]int64
	counted map[string][]int64
	entries map[int64]map[uint64]bool
	cps     map[int64]*counterpart
	// full and byLiaison gather, during the join, the entries disclosed in
	// full per counterparty list and the flag matches per entry and
	// liaison contact, until seal turns them into notices and matches.
	full      map[int64]map[uint64]bool
	byLiaison map[uint64]map[string][]int64
}

// disclosed returns the pairs of the requester's list version listID the
// answer disclosed at any level: what an alert tells, so that a later
// retraction of the counterparty entry is told too.
func (a *answer) disclosed(listID int64) []store.Alerted {
	var out []store.Alerted
	for _, m := range []map[int64]map[uint64]bool{a.full, a.entries} {
		for cp, refs := range m {
			for ref := range refs {
				out = append(out, store.Alerted{ListID: listID, Ref: ref, CounterpartyListID: cp})
			}
		}
	}
	return out
}

// newAnswer returns an empty answer.
func newAnswer() *answer {
	return &answer{
		perClass: map[classLevel]map[uint64]bool{}, flagged: map[uint64][]int64{}, counted: map[string][]int64{},
		entries: map[int64]map[uint64]bool{}, full: map[int64]map[uint64]bool{}, byLiaison: map[uint64]map[string][]int64{},
	}
}

// counterpart is one counterparty list with the levels policy grants.
type counterpart struct {
	list store.List
	base policy.Disclosure
	// granted applies to the entries an approved disclosure request names
	// (all entries when grantAll).
	granted  *policy.Disclosure
	grantAll bool
	grantSet map[uint64]bool
	// shown is who holds the list as a full match shows it, by contact:
	// one message shared by all of the list's matches.
	shown map[string]*veilmatchv1.Counterparty
	// classSets are the answer's entry sets of the class and level of base
	// (0) and granted (1); entries is the answer's set of the requester's
	// entries this list matched (answer.full or answer.entries): looked up
	// once per list, not once per pair.
	classSets [2]map[uint64]bool
	entries   map[uint64]bool
}

// shownAs returns the counterparty of a full match with contact.
func (c *counterpart) shownAs(contact string) *veilmatchv1.Counterparty {
	if m := c.shown[contact]; m != nil {
		return m
	}
	if c.shown == nil {
		c.shown = map[string]*veilmatchv1.Counterparty{}
	}
	m := &veilmatchv1.Counterparty{
		Agency: c.list.Owner, List: c.list.Name, Category: c.list.Category, Jurisdiction: c.list.Jurisdiction, Contact: contact,
	}
	c.shown[contact] = m
	return m
}

// disclosure returns what the policy grants for entry ref: the granted
// level (which 1) for an entry an approved request names, else the base
// level (which 0).
func (c *counterpart) disclosure(ref uint64) (d policy.Disclosure, which int) {
	if c.granted != nil && (c.grantAll || c.grantSet[ref]) {
		return *c.granted, 1
	}
	return c.base, 0
}

// set returns the set m[k], made if m has none.
func set[K comparable](m map[K]map[uint64]bool, k K) map[uint64]bool {
	s := m[k]
	if s == nil {
		s = map[uint64]bool{}
		m[k] = s
	}
	return s
}

// joined is one (entry, counterparty list version) pair of a join.
type joined struct {
	ref uint64
	cp  int64
}

// decide runs the join, evaluates the disclosure policy for every
// counterparty list that matched and builds the answer. Counterparties at
// level none contribute nothing at all, exactly as if they did not match.
// own is the requester's list version (nil for a check); disclosure
// requests approved for it under the same purpose and case upgrade the
// matches they name.
func (s *Service) decide(ctx context.Context, r policy.Request, az policy.Authorization, kind, keyID string, own *store.List,
	join func(fn func(ref uint64, cp int64) error) error) (*answer, error) {
	a := newAnswer()
	rules := map[string]bool{}
	for _, id := range az.Rules {
		rules[id] = true
	}
	// 1. Join. The pairs are as many as the requester's matches, whatever
	// the hub's size.
	var pairs []joined
	matched := map[int64]bool{}
	if err := join(func(ref uint64, cp int64) error {
		pairs = append(pairs, joined{ref, cp})
		matched[cp] = true
		return nil
	}); err != nil {
		return nil, storeError(ctx, "join", err)
	}
	// 2. Ask the policy about each counterparty list that matched.
	var err error
	if a.cps, err = s.counterparts(ctx, r, az, kind, keyID, own, matched, rules); err != nil {
		return nil, err
	}
	// 3. Add each pair at its level.
	for _, p := range pairs {
		a.add(p.ref, p.cp)
	}
	// 4. Seal flags and counts into match references; prepare the notices.
	if err := s.seal(a, r, own); err != nil {
		return nil, rpc.Internal(ctx, "seal match reference", err)
	}
	a.rules = slices.Sorted(maps.Keys(rules))
	return a, nil
}

// add adds one joined pair, the requester's entry ref matching counterparty
// list cpID, at the level the policy grants for it. A counterparty at level
// none adds nothing.
func (a *answer) add(ref uint64, cpID int64) {
	cp, ok := a.cps[cpID]
	if !ok {
		return
	}
	d, which := cp.disclosure(ref)
	switch d.Level {
	case policy.LevelFull:
		a.matches = append(a.matches, &veilmatchv1.Match{
			EntryRef: ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL, Counterparty: cp.shownAs(d.Contact),
		})
		set(a.full, cpID)[ref] = true
	case policy.LevelFlag:
		if a.byLiaison[ref] == nil {
			a.byLiaison[ref] = map[string][]int64{}
		}
		a.byLiaison[ref][d.LiaisonContact] = append(a.byLiaison[ref][d.LiaisonContact], cpID)
		a.flagged[ref] = append(a.flagged[ref], cpID)
		a.entriesOf(cp)[ref] = true
	case policy.LevelCount:
		if !slices.Contains(a.counted[d.Class], cpID) {
			a.counted[d.Class] = append(a.counted[d.Class], cpID)
		}
		a.entriesOf(cp)[ref] = true
	default:
		return
	}
	if cp.classSets[which] == nil {
		cp.classSets[which] = set(a.perClass, classLevel{d.Class, d.Level})
	}
	cp.classSets[which][ref] = true
}

// entriesOf returns the set of the requester's entries cp matched at
// level flag or count.
func (a *answer) entriesOf(cp *counterpart) map[uint64]bool {
	if cp.entries == nil {
		cp.entries = set(a.entries, cp.list.ID)
	}
	return cp.entries
}

// seal finishes an answer once the join is done: flag matches and class
// counts get their match references, and every list disclosed in full gets
// a notice to its owner.
func (s *Service) seal(a *answer, r policy.Request, own *store.List) error {
	if err := s.flagMatches(a, r, own); err != nil {
		return err
	}
	if err := s.classCounts(a, r, own); err != nil {
		return err
	}
	a.noticeFull(r, own)
	return nil
}

// counterparts asks the policy, once per visible list of the kind and key
// that matched, what r's requester may learn about it, adding the rules
// that fired to rules. Lists at level none without a grant are left out.
func (s *Service) counterparts(ctx context.Context, r policy.Request, az policy.Authorization, kind, keyID string, own *store.List,
	matched map[int64]bool, rules map[string]bool) (map[int64]*counterpart, error) {
	visible, err := s.store.VisibleLists(ctx, kind, keyID)
	if err != nil {
		return nil, storeError(ctx, "visible lists", err)
	}
	grants := map[int64][]store.DisclosureRequest{}
	if own != nil {
		gs, err := s.store.Grants(ctx, own.ID)
		if err != nil {
			return nil, storeError(ctx, "grants", err)
		}
		for _, g := range gs {
			// An approval holds for the purpose and case it was asked for.
			if g.Purpose == r.Purpose && g.CaseRef == r.CaseRef {
				grants[g.ListID] = append(grants[g.ListID], g)
			}
		}
	}
	disclose := func(owner policy.Agency, l store.List, granted bool) policy.Disclosure {
		d, err := s.policy.Disclose(ctx, r, owner, policyList(l), granted)
		if err != nil {
			rpc.Logger(ctx).ErrorContext(ctx, "disclosure policy failed; level none", "error", err)
			d = policy.Disclosure{Level: policy.LevelNone, Rules: []string{policy.RuleEngineError}}
		}
		d.Level = policy.Min(d.Level, az.MaxLevel)
		for _, id := range d.Rules {
			rules[id] = true
		}
		return d
	}
	cps := map[int64]*counterpart{}
	for _, l := range visible {
		if !matched[l.ID] || l.Owner == r.Requester.ID || s.epochs.retired(l.KeyID) {
			continue
		}
		owner, ok := s.policy.Agency(l.Owner)
		if !ok {
			continue // an unregistered owner's list is disclosed to nobody
		}
		cp := &counterpart{list: l, base: disclose(owner, l, false)}
		if gs := grants[l.ID]; len(gs) > 0 {
			g := disclose(owner, l, true)
			cp.granted, cp.grantSet = &g, map[uint64]bool{}
			for _, req := range gs {
				cp.grantAll = cp.grantAll || len(req.EntryRefs) == 0
				for _, e := range req.EntryRefs {
					cp.grantSet[e] = true
				}
			}
		}
		if cp.base.Level != policy.LevelNone || cp.granted != nil {
			cps[l.ID] = cp
		}
	}
	return cps, nil
}

// ref seals a match reference to an answer for r about own; a check (own
// nil) gets none, having no list to request disclosure against.
func (s *Service) ref(r policy.Request, own *store.List, entry *uint64, class string, level policy.Level) (string, error) {
	if own == nil {
		return "", nil
	}
	return s.refs.seal(matchRef{
		Owner: r.Requester.ID, ListID: own.ID, Entry: entry, Class: class, Level: string(level),
		Purpose: r.Purpose, CaseRef: r.CaseRef, Issued: r.Time.UnixNano(),
	})
}

// flagMatches adds one flag match per entry and liaison contact, and sorts
// the matches by entry and counterparty.
func (s *Service) flagMatches(a *answer, r policy.Request, own *store.List) error {
	for ref, liaisons := range a.byLiaison {
		mr, err := s.ref(r, own, &ref, "", policy.LevelFlag)
		if err != nil {
			return err
		}
		for liaison := range liaisons {
			a.matches = append(a.matches, &veilmatchv1.Match{
				EntryRef: ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG, LiaisonContact: liaison, MatchRef: mr,
			})
		}
	}
	sort.SliceStable(a.matches, func(i, j int) bool {
		mi, mj := a.matches[i], a.matches[j]
		if mi.EntryRef != mj.EntryRef {
			return mi.EntryRef < mj.EntryRef
		}
		ki := mi.GetCounterparty().GetAgency() + "/" + mi.GetCounterparty().GetList() + "/" + mi.GetLiaisonContact()
		kj := mj.GetCounterparty().GetAgency() + "/" + mj.GetCounterparty().GetList() + "/" + mj.GetLiaisonContact()
		return ki < kj
	})
	return nil
}

// classCounts adds one count per class, in class order.
func (s *Service) classCounts(a *answer, r policy.Request, own *store.List) error {
	for _, c := range slices.Sorted(maps.Keys(a.counted)) {
		mr, err := s.ref(r, own, nil, c, policy.LevelCount)
		if err != nil {
			return err
		}
		a.counts = append(a.counts, &veilmatchv1.ClassCount{Class: c, Matches: uint64(len(a.perClass[classLevel{c, policy.LevelCount}])), MatchRef: mr})
	}
	return nil
}

// noticeFull names the lists disclosed in full and prepares a notice to
// each owner: every full disclosure, by overlaps or check, is told.
func (a *answer) noticeFull(r policy.Request, own *store.List) {
	for cpID, refs := range a.full {
		cp := a.cps[cpID]
		a.lists = append(a.lists, cp.list.Owner+"/"+cp.list.Name)
		n := store.Notice{
			Owner: cp.list.Owner, List: cp.list.Name, Action: r.Action, Requester: r.Requester.ID,
			Entries: uint64(len(refs)), Purpose: r.Purpose, CaseRef: r.CaseRef, Time: r.Time,
		}
		if own != nil {
			n.RequesterList = own.Name
		}
		a.notices = append(a.notices, n)
	}
	sort.Strings(a.lists)
	sort.Slice(a.notices, func(i, j int) bool {
		return a.notices[i].Owner+"/"+a.notices[i].List < a.notices[j].Owner+"/"+a.notices[j].List
	})
}

// decisionRecord is the decision record of a query's answer; its owner
// notices carry its decision id.
func (s *Service) decisionRecord(ctx context.Context, r policy.Request, az policy.Authorization, a *answer) *audit.Record {
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Lists = append(rec.Lists, a.lists...)
	rec.Outcomes, rec.Rules = a.outcomes(), a.rules
	for i := range a.notices {
		a.notices[i].DecisionID = rec.DecisionID
	}
	return rec
}

// answered logs and counts an answer once its record is in the log.
func (s *Service) answered(ctx context.Context, r policy.Request, decisionID string, a *answer) {
	rpc.Logger(ctx).InfoContext(ctx, "decision", "decision_id", decisionID, "action", r.Action, "outcomes", len(a.perClass))
	for k, refs := range a.perClass {
		s.metrics.Matched(r.Action, string(k.level), len(refs))
	}
}

// outcomes summarizes an answer per counterparty class and level.
func (a *answer) outcomes() []audit.Outcome {
	var out []audit.Outcome
	for k, n := range a.perClass {
		out = append(out, audit.Outcome{Class: k.class, Level: string(k.level), Entries: uint64(len(n))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Class != out[j].Class {
			return out[i].Class < out[j].Class
		}
		return out[i].Level < out[j].Level
	})
	return out
}
