package hub

import (
	"cmp"
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
	matches []*veilmatchv1.Match
	counts  []*veilmatchv1.ClassCount
	// perClass holds, per class and level, the requester's entries that
	// matched, ascending and each once once the answer is sealed.
	perClass map[classLevel][]uint64
	rules    []string
	lists    []string
	notices  []store.Notice
	// flagged and counted say which counterparty lists stand behind each
	// flag match (by entry) and each count (by class): what a disclosure
	// request needs, never sent to the requester.
	flagged map[uint64][]int64
	counted map[string][]int64
	cps     map[int64]*counterpart
	// byLiaison gathers the liaison contacts of each entry matched at
	// level flag, until seal turns them into matches.
	byLiaison map[uint64]map[string]bool
}

// disclosed returns the pairs of the requester's list version listID the
// answer disclosed at any level: what an alert tells, so that a later
// retraction of the counterparty entry is told too.
func (a *answer) disclosed(listID int64) []store.Alerted {
	var out []store.Alerted
	for id, cp := range a.cps {
		for _, ref := range cp.refs(func(policy.Level) bool { return true }) {
			out = append(out, store.Alerted{ListID: listID, Ref: ref, CounterpartyListID: id})
		}
	}
	return out
}

// newAnswer returns an empty answer.
func newAnswer() *answer {
	return &answer{
		perClass: map[classLevel][]uint64{}, flagged: map[uint64][]int64{}, counted: map[string][]int64{},
		byLiaison: map[uint64]map[string]bool{},
	}
}

// counterpart is one counterparty list with the levels policy grants, and
// the requester's entries it matched.
type counterpart struct {
	list store.List
	base policy.Disclosure
	// granted applies to the entries an approved disclosure request names
	// (all entries when grantAll).
	granted  *policy.Disclosure
	grantAll bool
	grantSet map[uint64]bool
	// at are the requester's entries the list matched, at the disclosure
	// of base (0) and of granted (1), ascending.
	at [2][]uint64
}

// disclosure returns the disclosure of the entries at[which].
func (c *counterpart) disclosure(which int) policy.Disclosure {
	if which == 1 {
		return *c.granted
	}
	return c.base
}

// place puts the requester's entries the list matched, ascending, at the
// disclosure policy grants for each: the granted one for an entry an
// approved request names, else the base one.
func (c *counterpart) place(refs []uint64) {
	switch {
	case c.granted == nil:
		c.at[0] = refs
	case c.grantAll:
		c.at[1] = refs
	default:
		for _, ref := range refs {
			which := 0
			if c.grantSet[ref] {
				which = 1
			}
			c.at[which] = append(c.at[which], ref)
		}
	}
}

// partial says whether a level discloses a match without its holder.
func partial(l policy.Level) bool { return l == policy.LevelFlag || l == policy.LevelCount }

// refs returns the entries placed at a level for which at says yes,
// level none never.
func (c *counterpart) refs(at func(policy.Level) bool) []uint64 {
	var out []uint64
	for which, refs := range c.at {
		if len(refs) > 0 && c.disclosure(which).Level != policy.LevelNone && at(c.disclosure(which).Level) {
			out = append(out, refs...)
		}
	}
	return out
}

// decide waits for the reads of an answer, evaluates the disclosure
// policy for every counterparty list that matched and builds the answer.
// Counterparties at level none contribute nothing at all, exactly as if
// they did not match. own is the requester's list version (nil for a
// check); disclosure requests approved for it under the same purpose and
// case upgrade the matches they name.
func (s *Service) decide(ctx context.Context, r policy.Request, az policy.Authorization, own *store.List, rd reads) (*answer, error) {
	a := newAnswer()
	rules := map[string]bool{}
	for _, id := range az.Rules {
		rules[id] = true
	}
	// 1. The join's pairs, as many as the requester's matches whatever the
	// hub's size, and the lists and grants the answer needs.
	byCP, err := rd.pairs()
	vis, readErr := rd.vis()
	if err != nil {
		return nil, storeError(ctx, "join", err)
	}
	if readErr != nil {
		return nil, readErr
	}
	// 2. Ask the policy about each counterparty list that matched.
	a.cps = s.counterparts(ctx, r, az, vis, byCP, rules)
	// 3. Place each list's entries at their levels.
	for id, cp := range a.cps {
		refs := byCP[id]
		slices.Sort(refs)
		cp.place(refs)
		a.add(cp)
	}
	// 4. Seal flags and counts into match references; prepare the notices.
	if err := s.seal(a, r, own); err != nil {
		return nil, rpc.Internal(ctx, "seal match reference", err)
	}
	a.rules = slices.Sorted(maps.Keys(rules))
	return a, nil
}

// reads are the store reads an answer is made of, running in the
// background: the join's pairs by counterparty list, and the visible lists
// and grants.
type reads struct {
	pairs func() (map[int64][]uint64, error)
	vis   func() (visibleLists, error)
}

// read starts, at once and side by side, the reads of an answer for r
// about own (nil for a check) against the lists of the kind and key: join,
// which must yield each (entry, counterparty list) pair once, and the
// visible lists and grants. A caller that gives up before decide must
// still call wait (cancelling ctx first), so that they end before the call
// does.
func (s *Service) read(ctx context.Context, r policy.Request, kind, keyID string, own *store.List,
	join func(fn func(ref uint64, cp int64) error) error) reads {
	return reads{
		pairs: async(func() (map[int64][]uint64, error) {
			byCP := map[int64][]uint64{}
			err := join(func(ref uint64, cp int64) error {
				byCP[cp] = append(byCP[cp], ref)
				return nil
			})
			return byCP, err
		}),
		vis: async(func() (visibleLists, error) { return s.visible(ctx, r, kind, keyID, own) }),
	}
}

// wait waits for both reads to end.
func (rd reads) wait() {
	_, _ = rd.pairs()
	_, _ = rd.vis()
}

// async runs fn in a goroutine at once, so that it overlaps what the
// caller does next, and returns a function that waits for it and returns
// what fn returned.
func async[T any](fn func() (T, error)) func() (T, error) {
	var (
		v    T
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		v, err = fn()
	}()
	return func() (T, error) {
		<-done
		return v, err
	}
}

// add adds the entries counterparty list cp matched, at their levels: at
// full one match for the list per contact it is shown with, at flag one
// per entry and liaison contact (made by seal), at count the list joins
// the lists behind the count of its class; level none adds nothing.
func (a *answer) add(cp *counterpart) {
	var full *veilmatchv1.Match
	for which, refs := range cp.at {
		if len(refs) == 0 {
			continue
		}
		d := cp.disclosure(which)
		if d.Level == policy.LevelNone {
			continue
		}
		switch d.Level {
		case policy.LevelFull:
			if full != nil && full.GetCounterparty().GetContact() == d.Contact {
				// The base and the granted disclosure are both full, with
				// one contact: one match.
				full.EntryRefs = slices.Concat(full.EntryRefs, refs)
				slices.Sort(full.EntryRefs)
				break
			}
			full = &veilmatchv1.Match{EntryRefs: refs, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL, Counterparty: &veilmatchv1.Counterparty{
				Agency: cp.list.Owner, List: cp.list.Name, Category: cp.list.Category, Jurisdiction: cp.list.Jurisdiction, Contact: d.Contact,
			}}
			a.matches = append(a.matches, full)
		case policy.LevelFlag:
			for _, ref := range refs {
				if a.byLiaison[ref] == nil {
					a.byLiaison[ref] = map[string]bool{}
				}
				a.byLiaison[ref][d.LiaisonContact] = true
				a.flagged[ref] = append(a.flagged[ref], cp.list.ID)
			}
		case policy.LevelCount:
			if !slices.Contains(a.counted[d.Class], cp.list.ID) {
				a.counted[d.Class] = append(a.counted[d.Class], cp.list.ID)
			}
		}
		k := classLevel{d.Class, d.Level}
		a.perClass[k] = append(a.perClass[k], refs...)
	}
}

// seal finishes an answer once the join is done: the per-class tallies
// are merged, flag matches and class counts get their match references,
// and every list disclosed in full gets a notice to its owner.
func (s *Service) seal(a *answer, r policy.Request, own *store.List) error {
	for k, refs := range a.perClass {
		// An entry several lists of one class matched counts once.
		slices.Sort(refs)
		a.perClass[k] = slices.Compact(refs)
	}
	if err := s.flagMatches(a, r, own); err != nil {
		return err
	}
	if err := s.classCounts(a, r, own); err != nil {
		return err
	}
	a.noticeFull(r, own)
	return nil
}

// visibleLists are the committed lists of a kind and key, and the
// disclosure requests approved for the requester's list, by counterparty
// list.
type visibleLists struct {
	lists  []store.List
	grants map[int64][]store.DisclosureRequest
}

// visible returns the committed lists of the kind and key, and the
// disclosure requests approved for own (nil for a check) under r's purpose
// and case.
func (s *Service) visible(ctx context.Context, r policy.Request, kind, keyID string, own *store.List) (visibleLists, error) {
	lists, err := s.store.VisibleLists(ctx, kind, keyID)
	if err != nil {
		return visibleLists{}, storeError(ctx, "visible lists", err)
	}
	vis := visibleLists{lists: lists, grants: map[int64][]store.DisclosureRequest{}}
	if own != nil {
		gs, err := s.store.Grants(ctx, own.ID)
		if err != nil {
			return visibleLists{}, storeError(ctx, "grants", err)
		}
		for _, g := range gs {
			// An approval holds for the purpose and case it was asked for.
			if g.Purpose == r.Purpose && g.CaseRef == r.CaseRef {
				vis.grants[g.ListID] = append(vis.grants[g.ListID], g)
			}
		}
	}
	return vis, nil
}

// counterparts asks the policy (see disclose) what r's requester may
// learn about each visible list that matched (twice about a list with
// approved disclosure requests: with and without them), adding the rules
// that fired to rules. Lists at level none without a grant are left out.
func (s *Service) counterparts(ctx context.Context, r policy.Request, az policy.Authorization, vis visibleLists,
	matched map[int64][]uint64, rules map[string]bool) map[int64]*counterpart {
	var (
		asks []policy.Counterparty
		of   []*counterpart // of[i] is the counterpart asks[i] is about
	)
	for _, l := range vis.lists {
		if _, ok := matched[l.ID]; !ok || l.Owner == r.Requester.ID || s.epochs.retired(l.KeyID) {
			continue
		}
		owner, ok := s.policy.Agency(l.Owner)
		if !ok {
			continue // an unregistered owner's list is disclosed to nobody
		}
		cp := &counterpart{list: l}
		asks = append(asks, policy.Counterparty{Agency: owner, List: policyList(l)})
		of = append(of, cp)
		if gs := vis.grants[l.ID]; len(gs) > 0 {
			asks = append(asks, policy.Counterparty{Agency: owner, List: policyList(l), Granted: true})
			of = append(of, cp)
			cp.grantSet = map[uint64]bool{}
			for _, req := range gs {
				cp.grantAll = cp.grantAll || len(req.EntryRefs) == 0
				for _, e := range req.EntryRefs {
					cp.grantSet[e] = true
				}
			}
		}
	}
	cps := map[int64]*counterpart{}
	for i, d := range s.disclose(ctx, r, asks) {
		d.Level = policy.Min(d.Level, az.MaxLevel)
		for _, id := range d.Rules {
			rules[id] = true
		}
		cp := of[i]
		if asks[i].Granted {
			cp.granted = &d
		} else {
			cp.base = d
		}
		if cp.base.Level != policy.LevelNone || cp.granted != nil {
			cps[cp.list.ID] = cp
		}
	}
	return cps
}

// disclose asks the policy about each of cps in one evaluation, which
// judges the request once. A list the policy could not decide is at level
// none, rule engine.error.
func (s *Service) disclose(ctx context.Context, r policy.Request, cps []policy.Counterparty) []policy.Disclosure {
	ds, err := s.policy.Disclose(ctx, r, cps)
	if err != nil {
		rpc.Logger(ctx).ErrorContext(ctx, "disclosure policy failed; level none", "error", err)
	}
	return ds
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

// flagMatches orders the full matches by counterparty and contact, and
// adds after them one flag match per entry and liaison contact, by entry
// and contact.
func (s *Service) flagMatches(a *answer, r policy.Request, own *store.List) error {
	slices.SortFunc(a.matches, func(x, y *veilmatchv1.Match) int {
		cx, cy := x.GetCounterparty(), y.GetCounterparty()
		return cmp.Or(cmp.Compare(cx.GetAgency(), cy.GetAgency()), cmp.Compare(cx.GetList(), cy.GetList()), cmp.Compare(cx.GetContact(), cy.GetContact()))
	})
	for _, ref := range slices.Sorted(maps.Keys(a.byLiaison)) {
		mr, err := s.ref(r, own, &ref, "", policy.LevelFlag)
		if err != nil {
			return err
		}
		for _, liaison := range slices.Sorted(maps.Keys(a.byLiaison[ref])) {
			a.matches = append(a.matches, &veilmatchv1.Match{
				EntryRefs: []uint64{ref}, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG, LiaisonContact: liaison, MatchRef: mr,
			})
		}
	}
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
	for _, cp := range a.cps {
		full := cp.refs(func(l policy.Level) bool { return l == policy.LevelFull })
		if len(full) == 0 {
			continue
		}
		a.lists = append(a.lists, cp.list.Owner+"/"+cp.list.Name)
		n := store.Notice{
			Owner: cp.list.Owner, List: cp.list.Name, Action: r.Action, Requester: r.Requester.ID,
			Entries: uint64(len(full)), Purpose: r.Purpose, CaseRef: r.CaseRef, Time: r.Time,
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
