package hub

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// maxReasonLen bounds free-text reasons and notes.
const maxReasonLen = 2000

var requestStatus = map[string]veilmatchv1.DisclosureRequestStatus{
	store.RequestPending:  veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_PENDING,
	store.RequestApproved: veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_APPROVED,
	store.RequestRefused:  veilmatchv1.DisclosureRequestStatus_DISCLOSURE_REQUEST_STATUS_REFUSED,
}

// requestInfo converts a request for its viewer. The requester does not
// learn who holds the list until the request is approved.
func requestInfo(r store.DisclosureRequest, forOwner bool) *veilmatchv1.DisclosureRequest {
	out := &veilmatchv1.DisclosureRequest{
		Id: r.ID, Requester: r.Requester, RequesterList: r.RequesterList, Entries: r.Entries,
		Reason: r.Reason, Purpose: r.Purpose, CaseRef: r.CaseRef, Status: requestStatus[r.Status],
		CreatedAt: timestamppb.New(r.CreatedAt), Note: r.Note,
	}
	if forOwner || r.Status == store.RequestApproved {
		out.Owner, out.List = r.Owner, r.List
	}
	if !r.AnsweredAt.IsZero() {
		out.AnsweredAt = timestamppb.New(r.AnsweredAt)
	}
	return out
}

func checkText(field, s string, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return invalid("%s: required: say why", field)
	case len(s) > maxReasonLen:
		return invalid("%s: %d bytes, more than %d", field, len(s), maxReasonLen)
	}
	return nil
}

// RequestDisclosure turns a match reference from an overlaps answer into
// one pending request per counterparty list behind it.
func (s *Service) RequestDisclosure(ctx context.Context, req *veilmatchv1.RequestDisclosureRequest) (*veilmatchv1.RequestDisclosureResponse, error) {
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason(), true); err != nil {
		return nil, err
	}
	ref, err := s.refs.open(req.GetMatchRef())
	if err != nil {
		return nil, invalid("match_ref: %v", err)
	}
	if ref.Owner != id.ID {
		return nil, status.Error(codes.PermissionDenied, "match_ref: the reference was issued to another agency")
	}
	own, err := s.ownListByID(ctx, id.ID, ref.ListID)
	if err != nil {
		return nil, err
	}
	pl := policyList(own)
	r := policy.Request{Action: "request_disclosure", Time: s.now(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), Requester: a, List: &pl}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	visible, err := s.store.VisibleLists(ctx, own.Kind, own.KeyID)
	if err != nil {
		return nil, storeError(ctx, "visible lists", err)
	}
	// How many of the requester's entries match each counterparty list.
	perList := map[int64]map[uint64]bool{}
	err = s.store.Overlaps(ctx, own.ID, func(e uint64, cp int64) error {
		if slices.Contains(ref.Counterparts, cp) && (ref.Entry == nil || *ref.Entry == e) {
			if perList[cp] == nil {
				perList[cp] = map[uint64]bool{}
			}
			perList[cp][e] = true
		}
		return nil
	})
	if err != nil {
		return nil, storeError(ctx, "join", err)
	}
	var reqs []store.DisclosureRequest
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	for _, l := range visible {
		if len(perList[l.ID]) == 0 {
			continue
		}
		dr := store.DisclosureRequest{
			ID: "dr-" + newDecisionID(), Requester: id.ID, RequesterList: own.Name, RequesterListID: own.ID,
			Owner: l.Owner, List: l.Name, ListID: l.ID, Entries: uint64(len(perList[l.ID])),
			Reason: req.GetReason(), Purpose: req.GetPurpose(), CaseRef: req.GetCaseRef(), CreatedAt: r.Time,
		}
		if ref.Entry != nil {
			dr.EntryRefs = []uint64{*ref.Entry}
		}
		reqs = append(reqs, dr)
		rec.Lists = append(rec.Lists, l.Owner+"/"+l.Name)
	}
	if len(reqs) == 0 {
		return nil, status.Error(codes.FailedPrecondition, "match_ref: the matching lists have changed since the answer was given; run overlaps again")
	}
	if err := s.store.CreateDisclosureRequests(ctx, reqs, rec); err != nil {
		return nil, storeError(ctx, "create disclosure requests", err)
	}
	resp := &veilmatchv1.RequestDisclosureResponse{DecisionId: rec.DecisionID}
	for _, dr := range reqs {
		resp.RequestIds = append(resp.RequestIds, dr.ID)
	}
	return resp, nil
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
// caller's own requests.
func (s *Service) ListDisclosureRequests(ctx context.Context, req *veilmatchv1.ListDisclosureRequestsRequest) (*veilmatchv1.ListDisclosureRequestsResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	owner, requester := id.ID, ""
	if req.GetOutgoing() {
		owner, requester = "", id.ID
	}
	rs, err := s.store.DisclosureRequests(ctx, owner, requester, req.GetAll())
	if err != nil {
		return nil, storeError(ctx, "disclosure requests", err)
	}
	resp := &veilmatchv1.ListDisclosureRequestsResponse{}
	for _, r := range rs {
		resp.Requests = append(resp.Requests, requestInfo(r, !req.GetOutgoing()))
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
	if err := checkText("note", req.GetNote(), false); err != nil {
		return nil, err
	}
	pending, err := s.store.DisclosureRequests(ctx, id.ID, "", true)
	if err != nil {
		return nil, storeError(ctx, "disclosure requests", err)
	}
	i := slices.IndexFunc(pending, func(r store.DisclosureRequest) bool { return r.ID == req.GetRequestId() })
	if i < 0 {
		return nil, status.Errorf(codes.NotFound, "request_id: no disclosure request %q against %s's lists", req.GetRequestId(), id.ID)
	}
	dr := pending[i]
	action := "refuse_disclosure"
	if req.GetApprove() {
		action = "approve_disclosure"
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
	answered, err := s.store.AnswerDisclosureRequest(ctx, dr.ID, id.ID, req.GetApprove(), req.GetNote(), r.Time, rec)
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(codes.FailedPrecondition, "request_id: request %s was already %s", dr.ID, dr.Status)
	}
	if err != nil {
		return nil, storeError(ctx, "answer disclosure request", err)
	}
	rpc.Logger(ctx).InfoContext(ctx, "disclosure request answered", "request_id", dr.ID, "status", answered.Status, "decision_id", rec.DecisionID)
	return &veilmatchv1.AnswerDisclosureRequestResponse{Request: requestInfo(answered, true), DecisionId: rec.DecisionID}, nil
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
			Requester: n.Requester, RequesterList: n.RequesterList, List: n.List, Entries: n.Entries,
			Purpose: n.Purpose, CaseRef: n.CaseRef, Time: timestamppb.New(n.Time), DecisionId: n.DecisionID,
		})
	}
	return resp, nil
}
