package hub

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// Retractions withdraw an entry of an owner's list: a false positive, a
// number reassigned to someone innocent. The store removes its standing
// matches and tells every agency that was alerted of one, in the
// transaction that records the retraction.

// RetractEntry implements veilmatchv1.HubServiceServer.
func (s *Service) RetractEntry(ctx context.Context, req *veilmatchv1.RetractEntryRequest) (*veilmatchv1.RetractEntryResponse, error) {
	reason, err := text("reason", req.GetReason(), maxReasonLen, true, true)
	if err != nil {
		return nil, err
	}
	own, r, rec, err := s.entryAction(ctx, audit.ActionRetract, req.GetList(), req.GetEntryRef())
	if err != nil {
		return nil, err
	}
	rec.Reason = reason
	ret, err := s.store.Retract(ctx, own.Owner, own.Name, req.GetEntryRef(), reason, r.Time, rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "list %q has no entry %d", own.Name, req.GetEntryRef())
	case errors.Is(err, store.ErrConflict):
		return nil, status.Errorf(codes.AlreadyExists, "entry %d of list %q is retracted already", req.GetEntryRef(), own.Name)
	case err != nil:
		return nil, storeError(ctx, "retract", err)
	}
	s.changes.committed()
	s.metrics.Decided(rec.Action, rec.Result)
	return &veilmatchv1.RetractEntryResponse{DecisionId: rec.DecisionID, Retraction: retractionProto(ret, own.UploadID)}, nil
}

// UndoRetraction implements veilmatchv1.HubServiceServer.
func (s *Service) UndoRetraction(ctx context.Context, req *veilmatchv1.UndoRetractionRequest) (*veilmatchv1.UndoRetractionResponse, error) {
	own, r, rec, err := s.entryAction(ctx, audit.ActionUnretract, req.GetList(), req.GetEntryRef())
	if err != nil {
		return nil, err
	}
	err = s.store.Unretract(ctx, own.Owner, own.Name, req.GetEntryRef(), r.Time, rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "entry %d of list %q is not retracted", req.GetEntryRef(), own.Name)
	}
	if err != nil {
		return nil, storeError(ctx, "undo retraction", err)
	}
	s.changes.committed()
	s.metrics.Decided(rec.Action, rec.Result)
	return &veilmatchv1.UndoRetractionResponse{DecisionId: rec.DecisionID}, nil
}

// entryAction authorizes action on an entry of one of the caller's lists
// and starts its decision record.
func (s *Service) entryAction(ctx context.Context, action, list string, ref uint64) (store.List, policy.Request, *audit.Record, error) {
	id, a, name, err := s.requireOwnList(ctx, list)
	if err != nil {
		return store.List{}, policy.Request{}, nil, err
	}
	own, err := s.ownList(ctx, id.ID, name)
	if err != nil {
		return store.List{}, policy.Request{}, nil, err
	}
	pl := policyList(own)
	r := policy.Request{Action: action, Time: s.now(), Requester: a, List: &pl}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return store.List{}, policy.Request{}, nil, err
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Rules = az.Rules
	rec.Lists = []string{own.Owner + "/" + own.Name}
	rec.Details = map[string]string{"entry_ref": strconv.FormatUint(ref, 10)}
	return own, r, rec, nil
}

// ListRetractions implements veilmatchv1.HubServiceServer.
func (s *Service) ListRetractions(ctx context.Context, _ *veilmatchv1.ListRetractionsRequest) (*veilmatchv1.ListRetractionsResponse, error) {
	id, _, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.Retractions(ctx, id.ID)
	if err != nil {
		return nil, storeError(ctx, "list retractions", err)
	}
	lists, err := s.store.Lists(ctx, id.ID)
	if err != nil {
		return nil, storeError(ctx, "list lists", err)
	}
	uploads := map[int64]string{}
	for _, l := range lists {
		uploads[l.ID] = l.UploadID
	}
	resp := &veilmatchv1.ListRetractionsResponse{}
	for _, r := range rs {
		resp.Retractions = append(resp.Retractions, retractionProto(r, uploads[r.ListID]))
	}
	return resp, nil
}

func retractionProto(r store.Retraction, uploadID string) *veilmatchv1.Retraction {
	return &veilmatchv1.Retraction{List: r.List, UploadId: uploadID, EntryRef: r.Ref, Reason: r.Reason, Time: timestamppb.New(r.Time)}
}
