package hub

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

var requestStatus = map[string]veilmatchv1.DisclosureRequestStatus{
	store.RequestPending:  veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_PENDING,
	store.RequestApproved: veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_APPROVED,
	store.RequestRefused:  veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_REFUSED,
}

// ownerView converts a request for the owner of its list, who sees the
// requester, the reason and how many of the requester's entries match.
func ownerView(r store.DisclosureRequest) *veilmatchv1.DisclosureRequest {
	out := &veilmatchv1.DisclosureRequest{
		Id: r.ID, Requester: r.Requester, RequesterList: r.RequesterList, Owner: r.Owner, List: r.List, Entries: r.Entries,
		Reason: r.Reason, Purpose: r.Purpose, CaseRef: r.CaseRef, Status: requestStatus[r.Status],
		CreatedAt: timestamppb.New(r.CreatedAt), Note: r.Note,
	}
	if !r.AnsweredAt.IsZero() {
		out.AnsweredAt = timestamppb.New(r.AnsweredAt)
	}
	return out
}

// requesterView converts the requests of one group (one match reference)
// for their requester. While any is pending it reveals no more than the
// answer the reference came from: one request, the entries that answer
// showed, no owner, list or per-list count. Approvals then name their
// owner, list and entries; refusals stay anonymous.
func requesterView(group []store.DisclosureRequest) *veilmatchv1.DisclosureRequest {
	first := group[0]
	out := &veilmatchv1.DisclosureRequest{
		Id: first.GroupID, Requester: first.Requester, RequesterList: first.RequesterList, Entries: first.Requested,
		Reason: first.Reason, Purpose: first.Purpose, CaseRef: first.CaseRef, CreatedAt: timestamppb.New(first.CreatedAt),
		Status: requestStatus[groupStatus(group)],
	}
	var last time.Time
	for _, r := range group {
		if r.AnsweredAt.After(last) {
			last = r.AnsweredAt
		}
		if r.Status == store.RequestApproved {
			out.Approvals = append(out.Approvals, &veilmatchv1.DisclosureApproval{
				Owner: r.Owner, List: r.List, Entries: r.Entries, AnsweredAt: timestamppb.New(r.AnsweredAt), Note: r.Note,
			})
		}
	}
	if out.Status != veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_PENDING && !last.IsZero() {
		out.AnsweredAt = timestamppb.New(last)
	}
	return out
}

// groupStatus is pending while any owner has not answered, then approved
// if any owner approved, else refused.
func groupStatus(group []store.DisclosureRequest) string {
	st := store.RequestRefused
	for _, r := range group {
		switch r.Status {
		case store.RequestPending:
			return store.RequestPending
		case store.RequestApproved:
			st = store.RequestApproved
		}
	}
	return st
}

// RequestDisclosure turns a match reference from an overlaps answer into a
// request to the owners of the lists behind it: one request for the
// requester, one for each owner. The reference is bound to the purpose and
// case it was issued under, expires after the hub's match reference TTL,
// and cannot be requested again while an earlier request is pending.
func (s *Service) RequestDisclosure(ctx context.Context, req *veilmatchv1.RequestDisclosureRequest) (*veilmatchv1.RequestDisclosureResponse, error) {
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	reason, err := text("reason", req.GetReason(), maxReasonLen, true, true)
	if err != nil {
		return nil, err
	}
	ref, err := s.refs.open(req.GetMatchRef())
	if err != nil {
		return nil, invalid("match_ref: %v", err)
	}
	if ref.Owner != id.ID {
		return nil, status.Error(codes.PermissionDenied, "match_ref: the reference was issued to another agency")
	}
	now := s.now()
	if age := now.Sub(ref.issued()); age > s.refTTL {
		return nil, status.Errorf(codes.FailedPrecondition, "match_ref: issued %s, it expired after %s; run overlaps again",
			ref.issued().Format(time.RFC3339), s.refTTL)
	}
	purpose, caseRef, err := query(s.policy.Vocabulary(), a, req.GetPurpose(), req.GetCaseRef())
	if err != nil {
		return nil, err
	}
	if err := sameAsRef("purpose", purpose, ref.Purpose); err != nil {
		return nil, err
	}
	if err := sameAsRef("case_ref", caseRef, ref.CaseRef); err != nil {
		return nil, err
	}
	own, err := s.ownListByID(ctx, id.ID, ref.ListID)
	if err != nil {
		return nil, err
	}
	pl := policyList(own)
	r := policy.Request{Action: audit.ActionRequestDisclosure, Time: now, Purpose: ref.Purpose, CaseRef: ref.CaseRef, Requester: a, List: &pl}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	reqs, err := s.requestsFor(ctx, r, az, own, ref, reason)
	if err != nil {
		return nil, err
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	for _, dr := range reqs {
		rec.Lists = append(rec.Lists, dr.Owner+"/"+dr.List)
	}
	rec.Details = map[string]string{"request_id": reqs[0].GroupID}
	err = s.store.CreateDisclosureRequests(ctx, reqs, rec)
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(codes.AlreadyExists, "match_ref: %v", err)
	}
	if err != nil {
		return nil, storeError(ctx, "create disclosure requests", err)
	}
	s.metrics.Decided(rec.Action, rec.Result)
	return &veilmatchv1.RequestDisclosureResponse{DecisionId: rec.DecisionID, RequestId: reqs[0].GroupID}, nil
}

// sameAsRef refuses a purpose or case stated with a request that differs
// from the one its reference was issued under; empty takes the reference's.
func sameAsRef(field, got, issued string) error {
	if got != "" && got != issued {
		return invalid("%s: the match reference was issued for %s %q; request it under that one, or run overlaps again under %q", field, field, issued, got)
	}
	return nil
}

// requestsFor finds, by the join and the policy for the purpose and case
// the reference was issued under, the counterparty lists behind it now,
// and returns one pending request per list, all of one group.
func (s *Service) requestsFor(ctx context.Context, r policy.Request, az policy.Authorization, own store.List, ref matchRef, reason string) ([]store.DisclosureRequest, error) {
	overlaps := r
	overlaps.Action = audit.ActionOverlaps
	ans, err := s.decide(ctx, overlaps, az, &own, s.read(ctx, overlaps, own.Kind, own.KeyID, &own, func(fn func(uint64, int64) error) error {
		return s.store.Overlaps(ctx, own.ID, fn)
	}))
	if err != nil {
		return nil, err
	}
	var targets []int64
	var requested uint64
	switch {
	case ref.Level == string(policy.LevelFlag) && ref.Entry != nil:
		targets, requested = ans.flagged[*ref.Entry], 1
	case ref.Level == string(policy.LevelCount):
		targets, requested = ans.counted[ref.Class], uint64(len(ans.perClass[classLevel{ref.Class, policy.LevelCount}]))
	}
	if len(targets) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "match_ref: no list matches as the answer said any more (lists or policy changed); run overlaps again")
	}
	slices.Sort(targets)
	group := "dr-" + newDecisionID()
	reqs := make([]store.DisclosureRequest, 0, len(targets))
	for _, cpID := range targets {
		l := ans.cps[cpID].list
		dr := store.DisclosureRequest{
			ID: "dr-" + newDecisionID(), GroupID: group, Requester: r.Requester.ID, RequesterList: own.Name, RequesterListID: own.ID,
			Owner: l.Owner, List: l.Name, ListID: l.ID, Entries: uint64(len(ans.cps[cpID].refs(partial))), Requested: requested,
			Reason: reason, Purpose: r.Purpose, CaseRef: r.CaseRef, CreatedAt: r.Time,
		}
		if ref.Entry != nil {
			dr.EntryRefs, dr.Entries = []uint64{*ref.Entry}, 1
		}
		reqs = append(reqs, dr)
	}
	return reqs, nil
}

// ownListByID returns the caller's current version of the list a match
// reference was issued for.
func (s *Service) ownListByID(ctx context.Context, owner string, id int64) (store.List, error) {
	lists, err := s.store.Lists(ctx, owner)
	if err != nil {
		return store.List{}, storeError(ctx, "list lists", err)
	}
	for _, l := range lists {
		if l.ID == id {
			return l, nil
		}
	}
	return store.List{}, status.Error(codes.FailedPrecondition, "match_ref: your list has been republished or deleted since the answer was given; run overlaps again")
}

// ListDisclosureRequests lists requests against the caller's lists, or the
// caller's own requests, one per match reference it requested.
func (s *Service) ListDisclosureRequests(ctx context.Context, req *veilmatchv1.ListDisclosureRequestsRequest) (*veilmatchv1.ListDisclosureRequestsResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	resp := &veilmatchv1.ListDisclosureRequestsResponse{}
	if !req.GetOutgoing() {
		rs, err := s.store.DisclosureRequests(ctx, id.ID, "", req.GetAll())
		if err != nil {
			return nil, storeError(ctx, "disclosure requests", err)
		}
		for _, r := range rs {
			resp.Requests = append(resp.Requests, ownerView(r))
		}
		return resp, nil
	}
	// A group is pending while any of its requests is: read them all.
	rs, err := s.store.DisclosureRequests(ctx, "", id.ID, true)
	if err != nil {
		return nil, storeError(ctx, "disclosure requests", err)
	}
	var order []string
	groups := map[string][]store.DisclosureRequest{}
	for _, r := range rs {
		if groups[r.GroupID] == nil {
			order = append(order, r.GroupID)
		}
		groups[r.GroupID] = append(groups[r.GroupID], r)
	}
	for _, g := range order {
		if req.GetAll() || groupStatus(groups[g]) == store.RequestPending {
			resp.Requests = append(resp.Requests, requesterView(groups[g]))
		}
	}
	return resp, nil
}

// AnswerDisclosureRequest approves or refuses a request against one of the
// caller's lists; the answer is a policy decision of its own.
func (s *Service) AnswerDisclosureRequest(ctx context.Context, req *veilmatchv1.AnswerDisclosureRequestRequest) (*veilmatchv1.AnswerDisclosureRequestResponse, error) {
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetRequestId() == "" {
		return nil, invalid("request_id: required")
	}
	note, err := text("note", req.GetNote(), maxReasonLen, false, true)
	if err != nil {
		return nil, err
	}
	pending, err := s.store.DisclosureRequests(ctx, id.ID, "", true)
	if err != nil {
		return nil, storeError(ctx, "disclosure requests", err)
	}
	i := slices.IndexFunc(pending, func(r store.DisclosureRequest) bool { return r.ID == req.GetRequestId() })
	if i < 0 {
		return nil, status.Errorf(codes.NotFound, "request_id: no disclosure request %q against %s's lists", clip(req.GetRequestId()), id.ID)
	}
	dr := pending[i]
	action := audit.ActionRefuseDisclosure
	if req.GetApprove() {
		action = audit.ActionApproveDisclosure
	}
	// The owner answers; the purpose and case are the requester's, recorded
	// with the decision but not the owner's to justify.
	r := policy.Request{Action: action, Time: s.now(), Requester: a, List: &policy.List{Name: dr.List, Owner: id.ID}}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	rec.Lists = []string{dr.Owner + "/" + dr.List, dr.Requester + "/" + dr.RequesterList}
	rec.Purpose, rec.CaseRef = dr.Purpose, dr.CaseRef
	rec.Details = map[string]string{"request_id": dr.ID, "requester": dr.Requester}
	answered, err := s.store.AnswerDisclosureRequest(ctx, dr.ID, id.ID, req.GetApprove(), note, r.Time, rec)
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(codes.FailedPrecondition, "request_id: request %s was already %s", dr.ID, dr.Status)
	}
	if err != nil {
		return nil, storeError(ctx, "answer disclosure request", err)
	}
	s.metrics.Decided(rec.Action, rec.Result)
	rpc.Logger(ctx).InfoContext(ctx, "disclosure request answered", "request_id", dr.ID, "status", answered.Status, "decision_id", rec.DecisionID)
	return &veilmatchv1.AnswerDisclosureRequestResponse{Request: ownerView(answered), DecisionId: rec.DecisionID}, nil
}

// ListDisclosures tells the caller who learned matches of its lists in full.
func (s *Service) ListDisclosures(ctx context.Context, _ *veilmatchv1.ListDisclosuresRequest) (*veilmatchv1.ListDisclosuresResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	ns, err := s.store.Notices(ctx, id.ID)
	if err != nil {
		return nil, storeError(ctx, "notices", err)
	}
	resp := &veilmatchv1.ListDisclosuresResponse{}
	for _, n := range ns {
		resp.Disclosures = append(resp.Disclosures, &veilmatchv1.Disclosure{
			Requester: n.Requester, RequesterList: n.RequesterList, List: n.List, Entries: n.Entries, Action: n.Action,
			Purpose: n.Purpose, CaseRef: n.CaseRef, Time: timestamppb.New(n.Time), DecisionId: n.DecisionID,
		})
	}
	return resp, nil
}
