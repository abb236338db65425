// Package hub implements veilmatch's HubService: it stores the tokens
// agencies publish, joins them across lists, and answers every query at the
// disclosure level the policy grants per counterparty list. It never sees a
// raw identifier.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/metrics"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Service implements veilmatchv1.HubServiceServer.
type Service struct {
	veilmatchv1.UnimplementedHubServiceServer

	store   store.Store
	policy  *policy.Engine
	refs    *refSealer
	now     func() time.Time
	metrics *metrics.Metrics
	epochs  *epochs
}

// NewService returns a hub service over st, deciding with pol. refKey (32
// bytes) seals match references.
func NewService(st store.Store, pol *policy.Engine, refKey []byte, now func() time.Time) (*Service, error) {
	if now == nil {
		now = time.Now
	}
	refs, err := newRefSealer(refKey)
	if err != nil {
		return nil, err
	}
	return &Service{store: st, policy: pol, refs: refs, now: now, epochs: &epochs{store: st}}, nil
}

func storeError(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: not found", op)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
	case errors.Is(err, store.ErrIncomplete):
		return status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
	case errors.Is(err, store.ErrInvalid):
		return status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return rpc.Unavailable(ctx, op, err)
}

func policyList(l store.List) policy.List {
	return policy.List{
		Name: l.Name, Owner: l.Owner, Kind: l.Kind, Category: l.Category, Jurisdiction: l.Jurisdiction,
		ExpiresAt: l.ExpiresAt, VictimConsentRoles: l.Sharing.VictimConsentRoles, NGOVisible: l.Sharing.NGOVisible,
	}
}

func listInfo(l store.List) *veilmatchv1.ListInfo {
	info := &veilmatchv1.ListInfo{
		Name: l.Name, Owner: l.Owner, Kind: l.Kind, Category: l.Category, Jurisdiction: l.Jurisdiction, KeyId: l.KeyID,
		Sharing:       &veilmatchv1.Sharing{VictimConsentRoles: l.Sharing.VictimConsentRoles, NgoVisible: l.Sharing.NGOVisible},
		Entries:       l.Entries,
		Normalization: l.Normalization,
	}
	if !l.ExpiresAt.IsZero() {
		info.ExpiresAt = timestamppb.New(l.ExpiresAt)
	}
	if !l.CommittedAt.IsZero() {
		info.CommittedAt = timestamppb.New(l.CommittedAt)
	}
	return info
}

func newDecisionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ListLists returns the caller's committed lists.
func (s *Service) ListLists(ctx context.Context, _ *veilmatchv1.ListListsRequest) (*veilmatchv1.ListListsResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	lists, err := s.store.Lists(ctx, id.ID)
	if err != nil {
		return nil, storeError(ctx, "list lists", err)
	}
	resp := &veilmatchv1.ListListsResponse{}
	for _, l := range lists {
		resp.Lists = append(resp.Lists, listInfo(l))
	}
	return resp, nil
}

// DeleteList erases one of the caller's lists and its tokens, recording
// the erasure in the decision log in the same transaction.
func (s *Service) DeleteList(ctx context.Context, req *veilmatchv1.DeleteListRequest) (*veilmatchv1.DeleteListResponse, error) {
	id, a, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	r := policy.Request{Action: "delete", Time: s.now(), Requester: a, List: &policy.List{Name: name, Owner: id.ID}}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	n, err := s.store.DeleteList(ctx, id.ID, name, rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "list %q not found among %s's lists", name, id.ID)
	}
	if err != nil {
		return nil, storeError(ctx, "delete list "+name, err)
	}
	rpc.Logger(ctx).InfoContext(ctx, "list deleted", "list", name, "entries", n, "decision_id", rec.DecisionID)
	return &veilmatchv1.DeleteListResponse{DeletedEntries: n}, nil
}

// GetUploadStatus reports the batches held for one of the caller's uploads.
func (s *Service) GetUploadStatus(ctx context.Context, req *veilmatchv1.GetUploadStatusRequest) (*veilmatchv1.GetUploadStatusResponse, error) {
	id, _, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	if err := checkUploadID("upload_id", req.GetUploadId()); err != nil {
		return nil, err
	}
	seqs, committed, err := s.store.UploadStatus(ctx, id.ID, name, req.GetUploadId())
	if errors.Is(err, store.ErrNotFound) {
		return &veilmatchv1.GetUploadStatusResponse{}, nil
	}
	if err != nil {
		return nil, storeError(ctx, "upload status", err)
	}
	return &veilmatchv1.GetUploadStatusResponse{Sequences: seqs, Committed: committed}, nil
}

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
}

func (c *counterpart) disclosure(ref uint64) policy.Disclosure {
	if c.granted != nil && (c.grantAll || c.grantSet[ref]) {
		return *c.granted
	}
	return c.base
}

// decide evaluates the disclosure policy for every counterparty list, runs
// the join and builds the answer. Counterparties at level none contribute
// nothing at all, exactly as if they did not match. own is the requester's
// list version (nil for a check); approved disclosure requests for it
// upgrade the matches they name.
func (s *Service) decide(ctx context.Context, r policy.Request, az policy.Authorization, kind, keyID string, own *store.List,
	join func(fn func(ref uint64, cp int64) error) error) (*answer, error) {
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
			grants[g.ListID] = append(grants[g.ListID], g)
		}
	}
	cps := map[int64]*counterpart{}
	ruleSet := map[string]bool{}
	for _, id := range az.Rules {
		ruleSet[id] = true
	}
	disclose := func(owner policy.Agency, l store.List, granted bool) policy.Disclosure {
		d, err := s.policy.Disclose(ctx, r, owner, policyList(l), granted)
		if err != nil {
			rpc.Logger(ctx).ErrorContext(ctx, "disclosure policy failed; level none", "error", err)
			d = policy.Disclosure{Level: policy.LevelNone, Rules: []string{policy.RuleEngineError}}
		}
		d.Level = policy.Min(d.Level, az.MaxLevel)
		for _, id := range d.Rules {
			ruleSet[id] = true
		}
		return d
	}
	for _, l := range visible {
		if l.Owner == r.Requester.ID || s.epochs.retired(l.KeyID) {
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

	type flagKey struct {
		ref     uint64
		liaison string
	}
	flags := map[flagKey][]int64{}
	classes := map[string][]int64{}
	fullPerList := map[int64]map[uint64]bool{}
	a := &answer{perClass: map[classLevel]map[uint64]bool{}}
	tally := func(class string, level policy.Level, ref uint64) {
		k := classLevel{class, level}
		if a.perClass[k] == nil {
			a.perClass[k] = map[uint64]bool{}
		}
		a.perClass[k][ref] = true
	}
	err = join(func(ref uint64, cpID int64) error {
		cp, ok := cps[cpID]
		if !ok {
			return nil
		}
		d := cp.disclosure(ref)
		switch d.Level {
		case policy.LevelFull:
			a.matches = append(a.matches, &veilmatchv1.Match{
				EntryRef: ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL,
				Counterparty: &veilmatchv1.Counterparty{
					Agency: cp.list.Owner, List: cp.list.Name, Category: cp.list.Category,
					Jurisdiction: cp.list.Jurisdiction, Contact: d.Contact,
				},
			})
			if fullPerList[cpID] == nil {
				fullPerList[cpID] = map[uint64]bool{}
			}
			fullPerList[cpID][ref] = true
		case policy.LevelFlag:
			k := flagKey{ref, d.LiaisonContact}
			flags[k] = append(flags[k], cpID)
		case policy.LevelCount:
			if !slices.Contains(classes[d.Class], cpID) {
				classes[d.Class] = append(classes[d.Class], cpID)
			}
		default:
			return nil
		}
		tally(d.Class, d.Level, ref)
		return nil
	})
	if err != nil {
		return nil, storeError(ctx, "join", err)
	}
	for k, ids := range flags {
		m := &veilmatchv1.Match{EntryRef: k.ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG, LiaisonContact: k.liaison}
		if own != nil {
			ref := k.ref
			m.MatchRef = s.refs.seal(matchRef{Owner: r.Requester.ID, ListID: own.ID, Entry: &ref, Counterparts: ids, Level: string(policy.LevelFlag)})
		}
		a.matches = append(a.matches, m)
	}
	sort.SliceStable(a.matches, func(i, j int) bool {
		mi, mj := a.matches[i], a.matches[j]
		if mi.EntryRef != mj.EntryRef {
			return mi.EntryRef < mj.EntryRef
		}
		return mi.GetCounterparty().GetAgency()+"/"+mi.GetCounterparty().GetList() < mj.GetCounterparty().GetAgency()+"/"+mj.GetCounterparty().GetList()
	})
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		cc := &veilmatchv1.ClassCount{Class: c, Matches: uint64(len(a.perClass[classLevel{c, policy.LevelCount}]))}
		if own != nil {
			cc.MatchRef = s.refs.seal(matchRef{Owner: r.Requester.ID, ListID: own.ID, Class: c, Counterparts: classes[c], Level: string(policy.LevelCount)})
		}
		a.counts = append(a.counts, cc)
	}
	for id := range ruleSet {
		a.rules = append(a.rules, id)
	}
	sort.Strings(a.rules)
	for cpID, refs := range fullPerList {
		cp := cps[cpID]
		a.lists = append(a.lists, cp.list.Owner+"/"+cp.list.Name)
		if own != nil {
			a.notices = append(a.notices, store.Notice{
				Owner: cp.list.Owner, List: cp.list.Name, Requester: r.Requester.ID, RequesterList: own.Name,
				Entries: uint64(len(refs)), Purpose: r.Purpose, CaseRef: r.CaseRef, Time: r.Time,
			})
		}
	}
	sort.Strings(a.lists)
	sort.Slice(a.notices, func(i, j int) bool {
		return a.notices[i].Owner+a.notices[i].List < a.notices[j].Owner+a.notices[j].List
	})
	return a, nil
}

// record appends the decision of a query with its owner notices; nothing
// is answered unless this succeeds.
func (s *Service) record(ctx context.Context, r policy.Request, az policy.Authorization, a *answer) (string, error) {
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Lists = append(rec.Lists, a.lists...)
	rec.Outcomes, rec.Rules = a.outcomes(), a.rules
	for i := range a.notices {
		a.notices[i].DecisionID = rec.DecisionID
	}
	if err := s.appendOrFail(ctx, rec, a.notices); err != nil {
		return "", err
	}
	rpc.Logger(ctx).InfoContext(ctx, "decision", "decision_id", rec.DecisionID, "action", r.Action, "outcomes", len(rec.Outcomes), "policy_revision", rec.PolicyRevision)
	for k, refs := range a.perClass {
		s.metrics.Matched(r.Action, string(k.level), len(refs))
	}
	return rec.DecisionID, nil
}

// Overlaps joins one of the caller's lists against every other agency's
// visible list of the same kind and key.
func (s *Service) Overlaps(ctx context.Context, req *veilmatchv1.OverlapsRequest) (*veilmatchv1.OverlapsResponse, error) {
	id, a, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	own, err := s.store.GetList(ctx, id.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "list %q not found among %s's lists", name, id.ID)
	}
	if err != nil {
		return nil, storeError(ctx, "get list", err)
	}
	if s.epochs.retired(own.KeyID) {
		return nil, status.Errorf(codes.FailedPrecondition, "list %q was made under key %s, which the key server no longer evaluates; publish it again", name, own.KeyID)
	}
	pl := policyList(own)
	r := policy.Request{Action: "overlaps", Time: s.now(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), Requester: a, List: &pl}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	ans, err := s.decide(ctx, r, az, own.Kind, own.KeyID, &own, func(fn func(uint64, int64) error) error {
		return s.store.Overlaps(ctx, own.ID, fn)
	})
	if err != nil {
		return nil, err
	}
	did, err := s.record(ctx, r, az, ans)
	if err != nil {
		return nil, err
	}
	return &veilmatchv1.OverlapsResponse{DecisionId: did, Matches: ans.matches, Counts: ans.counts}, nil
}

// Check tests tokens against other agencies' lists. Nothing of the request
// is stored and no counterparty is told; the decision log records who
// checked, why and what levels resulted, never the tokens.
func (s *Service) Check(ctx context.Context, req *veilmatchv1.CheckRequest) (*veilmatchv1.CheckResponse, error) {
	_, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkKind("kind", req.GetKind()); err != nil {
		return nil, err
	}
	if err := checkKeyID("key_id", req.GetKeyId()); err != nil {
		return nil, err
	}
	if s.epochs.retired(req.GetKeyId()) {
		return nil, status.Errorf(codes.FailedPrecondition, "key_id: %s is no longer evaluated by the key server; fetch its current key and tokenize again", req.GetKeyId())
	}
	toks := req.GetTokens()
	switch {
	case len(toks) == 0:
		return nil, invalid("tokens: empty")
	case len(toks) > MaxCheckTokens:
		return nil, invalid("tokens: %d tokens, more than the maximum of %d per check", len(toks), MaxCheckTokens)
	}
	for i, t := range toks {
		if len(t) != token.Size {
			return nil, invalid("tokens[%d]: token has %d bytes, want %d", i, len(t), token.Size)
		}
	}
	r := policy.Request{Action: "check", Time: s.now(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), Requester: a}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	ans, err := s.decide(ctx, r, az, req.GetKind(), req.GetKeyId(), nil, func(fn func(uint64, int64) error) error {
		return s.store.Check(ctx, req.GetKind(), req.GetKeyId(), toks, func(i int, cp int64) error { return fn(uint64(i), cp) })
	})
	if err != nil {
		return nil, err
	}
	did, err := s.record(ctx, r, az, ans)
	if err != nil {
		return nil, err
	}
	return &veilmatchv1.CheckResponse{DecisionId: did, Matches: ans.matches, Counts: ans.counts}, nil
}
