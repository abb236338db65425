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
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Service implements veilmatchv1.HubServiceServer.
type Service struct {
	veilmatchv1.UnimplementedHubServiceServer

	store  store.Store
	policy *policy.Engine
	now    func() time.Time
}

// NewService returns a hub service over st, deciding with pol.
func NewService(st store.Store, pol *policy.Engine, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: st, policy: pol, now: now}
}

// agency authenticates the caller as an agency in the registry.
func (s *Service) agency(ctx context.Context) (mtls.Identity, policy.Agency, error) {
	id, err := rpc.RequireKind(ctx, mtls.KindAgency, mtls.KindAuditor)
	if err != nil {
		return id, policy.Agency{}, err
	}
	a, ok := s.policy.Agency(id.ID)
	if !ok {
		return id, a, status.Errorf(codes.PermissionDenied, "%s is not in the agency registry; ask the hub operator to register it", id)
	}
	return id, a, nil
}

// authorize asks the policy whether the request may proceed at all.
func (s *Service) authorize(ctx context.Context, r policy.Request) (policy.Authorization, error) {
	az, err := s.policy.Authorize(ctx, r)
	if err != nil {
		rpc.Logger(ctx).ErrorContext(ctx, "policy evaluation failed; denying", "action", r.Action, "error", err)
		return az, status.Errorf(codes.PermissionDenied, "%s refused: the policy could not be evaluated (request id %s)", r.Action, rpc.RequestID(ctx))
	}
	if !az.Allow {
		reason := strings.Join(az.Reasons, "; ")
		if reason == "" {
			reason = "not allowed by policy"
		}
		rpc.Logger(ctx).InfoContext(ctx, "policy refused", "action", r.Action, "rules", az.Rules, "policy_revision", s.policy.Revision())
		return az, status.Errorf(codes.PermissionDenied, "%s refused: %s", r.Action, reason)
	}
	return az, nil
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
	id, _, err := s.agency(ctx)
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

// DeleteList erases one of the caller's lists and its tokens.
func (s *Service) DeleteList(ctx context.Context, req *veilmatchv1.DeleteListRequest) (*veilmatchv1.DeleteListResponse, error) {
	id, a, err := s.agency(ctx)
	if err != nil {
		return nil, err
	}
	name, err := resolveList(id, "list", req.GetList())
	if err != nil {
		return nil, err
	}
	if _, err := s.authorize(ctx, policy.Request{Action: "delete", Time: s.now(), Requester: a}); err != nil {
		return nil, err
	}
	n, err := s.store.DeleteList(ctx, id.ID, name)
	if err != nil {
		return nil, storeError(ctx, "delete list "+name, err)
	}
	rpc.Logger(ctx).InfoContext(ctx, "list deleted", "list", name, "entries", n)
	return &veilmatchv1.DeleteListResponse{DeletedEntries: n}, nil
}

// GetUploadStatus reports the batches held for one of the caller's uploads.
func (s *Service) GetUploadStatus(ctx context.Context, req *veilmatchv1.GetUploadStatusRequest) (*veilmatchv1.GetUploadStatusResponse, error) {
	id, _, err := s.agency(ctx)
	if err != nil {
		return nil, err
	}
	name, err := resolveList(id, "list", req.GetList())
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

// answer aggregates the joined pairs of a query into the policy-filtered
// response. join streams (entry reference, counterparty list id) pairs.
type answer struct {
	matches []*veilmatchv1.Match
	counts  []*veilmatchv1.ClassCount
	levels  map[policy.Level]int
	rules   []string
}

// decide evaluates the disclosure policy for every counterparty list, runs
// the join and builds the answer. Counterparties at level none contribute
// nothing at all, exactly as if they did not match.
func (s *Service) decide(ctx context.Context, r policy.Request, az policy.Authorization, kind, keyID string, join func(fn func(ref uint64, cp int64) error) error) (*answer, error) {
	visible, err := s.store.VisibleLists(ctx, kind, keyID)
	if err != nil {
		return nil, storeError(ctx, "visible lists", err)
	}
	type cpInfo struct {
		list store.List
		d    policy.Disclosure
	}
	cps := map[int64]cpInfo{}
	ruleSet := map[string]bool{}
	for _, r := range az.Rules {
		ruleSet[r] = true
	}
	for _, l := range visible {
		if l.Owner == r.Requester.ID {
			continue
		}
		owner, ok := s.policy.Agency(l.Owner)
		if !ok {
			continue // an unregistered owner's list is disclosed to nobody
		}
		d, err := s.policy.Disclose(ctx, r, owner, policyList(l), false)
		if err != nil {
			rpc.Logger(ctx).ErrorContext(ctx, "disclosure policy failed; level none", "error", err)
			d = policy.Disclosure{Level: policy.LevelNone}
		}
		d.Level = policy.Min(d.Level, az.MaxLevel)
		for _, id := range d.Rules {
			ruleSet[id] = true
		}
		if d.Level != policy.LevelNone {
			cps[l.ID] = cpInfo{l, d}
		}
	}

	type flagKey struct {
		ref     uint64
		liaison string
	}
	flagged := map[flagKey]bool{}
	counted := map[string]map[uint64]bool{}
	a := &answer{levels: map[policy.Level]int{}}
	err = join(func(ref uint64, cpID int64) error {
		cp, ok := cps[cpID]
		if !ok {
			return nil
		}
		switch cp.d.Level {
		case policy.LevelFull:
			a.matches = append(a.matches, &veilmatchv1.Match{
				EntryRef: ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FULL,
				Counterparty: &veilmatchv1.Counterparty{
					Agency: cp.list.Owner, List: cp.list.Name, Category: cp.list.Category,
					Jurisdiction: cp.list.Jurisdiction, Contact: cp.d.Contact,
				},
			})
			a.levels[policy.LevelFull]++
		case policy.LevelFlag:
			k := flagKey{ref, cp.d.LiaisonContact}
			if !flagged[k] {
				flagged[k] = true
				a.matches = append(a.matches, &veilmatchv1.Match{
					EntryRef: ref, Level: veilmatchv1.DisclosureLevel_DISCLOSURE_LEVEL_FLAG, LiaisonContact: cp.d.LiaisonContact,
				})
				a.levels[policy.LevelFlag]++
			}
		case policy.LevelCount:
			if counted[cp.d.Class] == nil {
				counted[cp.d.Class] = map[uint64]bool{}
			}
			counted[cp.d.Class][ref] = true
		}
		return nil
	})
	if err != nil {
		return nil, storeError(ctx, "join", err)
	}
	sort.SliceStable(a.matches, func(i, j int) bool {
		mi, mj := a.matches[i], a.matches[j]
		if mi.EntryRef != mj.EntryRef {
			return mi.EntryRef < mj.EntryRef
		}
		return mi.GetCounterparty().GetAgency()+"/"+mi.GetCounterparty().GetList() < mj.GetCounterparty().GetAgency()+"/"+mj.GetCounterparty().GetList()
	})
	classes := make([]string, 0, len(counted))
	for c := range counted {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		a.counts = append(a.counts, &veilmatchv1.ClassCount{Class: c, Matches: uint64(len(counted[c]))})
		a.levels[policy.LevelCount] += len(counted[c])
	}
	for id := range ruleSet {
		a.rules = append(a.rules, id)
	}
	sort.Strings(a.rules)
	return a, nil
}

// logDecision writes the decision's summary, without identifiers or tokens.
func (s *Service) logDecision(ctx context.Context, decisionID string, r policy.Request, a *answer) {
	attrs := []any{
		"decision_id", decisionID, "action", r.Action, "purpose", r.Purpose, "case_ref", r.CaseRef,
		"full", a.levels[policy.LevelFull], "flag", a.levels[policy.LevelFlag], "count", a.levels[policy.LevelCount],
		"rules", a.rules, "policy_revision", s.policy.Revision(),
	}
	if r.List != nil {
		attrs = append(attrs, "list", r.List.Name)
	}
	rpc.Logger(ctx).InfoContext(ctx, "decision", attrs...)
}

// Overlaps joins one of the caller's lists against every other agency's
// visible list of the same kind and key.
func (s *Service) Overlaps(ctx context.Context, req *veilmatchv1.OverlapsRequest) (*veilmatchv1.OverlapsResponse, error) {
	id, a, err := s.agency(ctx)
	if err != nil {
		return nil, err
	}
	name, err := resolveList(id, "list", req.GetList())
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
	pl := policyList(own)
	r := policy.Request{Action: "overlaps", Time: s.now(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), Requester: a, List: &pl}
	az, err := s.authorize(ctx, r)
	if err != nil {
		return nil, err
	}
	ans, err := s.decide(ctx, r, az, own.Kind, own.KeyID, func(fn func(uint64, int64) error) error {
		return s.store.Overlaps(ctx, own.ID, fn)
	})
	if err != nil {
		return nil, err
	}
	did := newDecisionID()
	s.logDecision(ctx, did, r, ans)
	return &veilmatchv1.OverlapsResponse{DecisionId: did, Matches: ans.matches, Counts: ans.counts}, nil
}

// Check tests tokens against other agencies' lists. Nothing of the request
// is stored and no counterparty is told.
func (s *Service) Check(ctx context.Context, req *veilmatchv1.CheckRequest) (*veilmatchv1.CheckResponse, error) {
	_, a, err := s.agency(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkKind("kind", req.GetKind()); err != nil {
		return nil, err
	}
	if err := checkKeyID("key_id", req.GetKeyId()); err != nil {
		return nil, err
	}
	toks := req.GetTokens()
	switch {
	case len(toks) == 0:
		return nil, invalid("tokens: empty")
	case len(toks) > MaxCheckTokens:
		return nil, invalid("tokens: %d tokens, more than the maximum of %d per check", len(toks), MaxCheckTokens)
	}
	for i, t := range toks {
		if err := checkToken(fieldf("tokens[%d]", i), t); err != nil {
			return nil, err
		}
	}
	r := policy.Request{Action: "check", Time: s.now(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), Requester: a}
	az, err := s.authorize(ctx, r)
	if err != nil {
		return nil, err
	}
	ans, err := s.decide(ctx, r, az, req.GetKind(), req.GetKeyId(), func(fn func(uint64, int64) error) error {
		return s.store.Check(ctx, req.GetKind(), req.GetKeyId(), toks, func(i int, cp int64) error { return fn(uint64(i), cp) })
	})
	if err != nil {
		return nil, err
	}
	did := newDecisionID()
	s.logDecision(ctx, did, r, ans)
	return &veilmatchv1.CheckResponse{DecisionId: did, Matches: ans.matches, Counts: ans.counts}, nil
}
