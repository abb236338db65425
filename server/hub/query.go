package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/token"
	"github.com/veilmatch/veilmatch/policy"
	veilmatchv1 "github.com/veilmatch/veilmatch/proto/veilmatch/v1"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// Overlaps joins one of the caller's lists against every other agency's
// visible list of the same kind and key.
func (s *Service) Overlaps(ctx context.Context, req *veilmatchv1.OverlapsRequest) (*veilmatchv1.OverlapsResponse, error) {
	id, a, name, err := s.requireOwnList(ctx, req.GetList())
	if err != nil {
		return nil, err
	}
	purpose, caseRef, err := query(s.policy.Vocabulary(), a, req.GetPurpose(), req.GetCaseRef())
	if err != nil {
		return nil, err
	}
	own, err := s.ownList(ctx, id.ID, name)
	if err != nil {
		return nil, err
	}
	pl := policyList(own)
	r := policy.Request{Action: audit.ActionOverlaps, Time: s.now(), Purpose: purpose, CaseRef: caseRef, Requester: a, List: &pl}
	// The store is read while the policy authorizes: nothing of it leaves
	// the hub unless the policy allows, and a refusal cancels the reads.
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	rd := s.read(readCtx, r, own.Kind, own.KeyID, &own, func(fn func(uint64, int64) error) error {
		return s.store.Overlaps(readCtx, own.ID, fn)
	})
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		cancel()
		rd.wait() // the reads end before the call does
		return nil, err
	}
	ans, err := s.decide(ctx, r, az, &own, rd)
	if err != nil {
		return nil, err
	}
	rec := s.decisionRecord(ctx, r, az, ans)
	if err := s.appendOrFail(ctx, rec, ans.notices); err != nil {
		return nil, err
	}
	s.answered(ctx, r, rec.DecisionID, ans)
	return &veilmatchv1.OverlapsResponse{DecisionId: rec.DecisionID, Matches: ans.matches, Counts: ans.counts, UploadId: own.UploadID}, nil
}

// Check tests tokens against other agencies' lists. Nothing of the request
// is stored, and only the owners of lists disclosed in full are told (as
// for overlaps); the decision log records who checked, why, how many
// entries and what levels resulted, never the tokens. The entries checked
// count against the agency's daily check budget.
func (s *Service) Check(ctx context.Context, req *veilmatchv1.CheckRequest) (*veilmatchv1.CheckResponse, error) {
	_, a, err := s.requireAgency(ctx)
	if err != nil {
		return nil, err
	}
	v := s.policy.Vocabulary()
	if err := checkKind(v, "kind", req.GetKind()); err != nil {
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
	purpose, caseRef, err := query(v, a, req.GetPurpose(), req.GetCaseRef())
	if err != nil {
		return nil, err
	}
	r := policy.Request{Action: audit.ActionCheck, Time: s.now(), Purpose: purpose, CaseRef: caseRef, Requester: a}
	az, err := s.authorizeRecorded(ctx, r)
	if err != nil {
		return nil, err
	}
	if req.GetKind() == token.PDQKind && len(toks)%token.PDQTokens != 0 {
		return nil, invalid("tokens: %d tokens; a check of kind %s sends %d per hash", len(toks), req.GetKind(), token.PDQTokens)
	}
	n := entries(req.GetKind(), uint64(len(toks)))
	day := r.Time.UTC().Format(time.DateOnly)
	used, err := s.store.CheckUse(ctx, a.ID, day)
	if err != nil {
		return nil, storeError(ctx, "check budget", err)
	}
	if used+n > s.budget {
		return nil, s.refuseCheck(ctx, r, az, n, used)
	}
	ans, err := s.decide(ctx, r, az, nil, s.read(ctx, r, req.GetKind(), req.GetKeyId(), nil, func(fn func(uint64, int64) error) error {
		return s.store.Check(ctx, req.GetKind(), req.GetKeyId(), toks, func(i int, cp int64) error { return fn(uint64(i), cp) })
	}))
	if err != nil {
		return nil, err
	}
	rec := s.decisionRecord(ctx, r, az, ans)
	rec.Details = checkDetails(n, used+n, s.budget)
	err = s.store.AppendCheckDecision(ctx, rec, ans.notices, a.ID, day, n, s.budget)
	if errors.Is(err, store.ErrExhausted) {
		// Another check of the same agency took the budget meanwhile.
		used, _ = s.store.CheckUse(ctx, a.ID, day)
		return nil, s.refuseCheck(ctx, r, az, n, used)
	}
	if err != nil {
		return nil, rpc.Unavailable(ctx, "decision log", err)
	}
	s.metrics.Decided(rec.Action, rec.Result)
	s.answered(ctx, r, rec.DecisionID, ans)
	return &veilmatchv1.CheckResponse{DecisionId: rec.DecisionID, Matches: ans.matches, Counts: ans.counts}, nil
}

// checkDetails are the facts a check's record keeps about the budget.
func checkDetails(entries, used, budget uint64) map[string]string {
	return map[string]string{
		"entries":     strconv.FormatUint(entries, 10),
		"budget_used": strconv.FormatUint(used, 10),
		"budget":      strconv.FormatUint(budget, 10),
	}
}

// refuseCheck records a check refused for its budget and returns
// RESOURCE_EXHAUSTED, saying when the budget renews.
func (s *Service) refuseCheck(ctx context.Context, r policy.Request, az policy.Authorization, n, used uint64) error {
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Result, rec.Rules = audit.ResultRefused, az.Rules
	rec.Reason = fmt.Sprintf("check budget of %d entries per day exhausted: %d checked today, this check has %d", s.budget, used, n)
	rec.Details = checkDetails(n, used, s.budget)
	if err := s.appendOrFail(ctx, rec, nil); err != nil {
		return err
	}
	midnight := r.Time.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return status.Errorf(codes.ResourceExhausted, "check refused: %s; it renews at %s (decision %s)", rec.Reason, midnight.Format(time.RFC3339), rec.DecisionID)
}
