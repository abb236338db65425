package hub

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/policy"
	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/rpc"
	"github.com/veilmatch/veilmatch/server/store"
)

// newRecord starts the decision record of r: who asked what, why, under
// which policy revision. It never holds an identifier or a token.
func (s *Service) newRecord(ctx context.Context, r policy.Request, revision string) *audit.Record {
	caller, _ := rpc.Caller(ctx)
	rec := &audit.Record{
		Time: r.Time, DecisionID: newDecisionID(), Caller: caller.String(), Agency: r.Requester.ID,
		Action: r.Action, Result: audit.ResultAllowed, Purpose: r.Purpose, CaseRef: r.CaseRef, PolicyRevision: revision,
	}
	if rec.PolicyRevision == "" {
		rec.PolicyRevision = s.policy.Revision()
	}
	if r.List != nil {
		rec.Lists = []string{r.Requester.ID + "/" + r.List.Name}
	}
	return rec
}

// appendOrFail appends rec. If it cannot be written the hub discloses
// nothing: the caller gets UNAVAILABLE, as Vault refuses what it cannot
// audit.
func (s *Service) appendOrFail(ctx context.Context, rec *audit.Record, notices []store.Notice) error {
	if _, err := s.store.AppendDecision(ctx, rec, notices); err != nil {
		return rpc.Unavailable(ctx, "decision log", err)
	}
	s.metrics.Decided(rec.Action, rec.Result)
	return nil
}

// authorizeRecorded asks the policy whether r may proceed. A refusal is
// recorded in the decision log and answered with PERMISSION_DENIED and the
// policy's reasons.
func (s *Service) authorizeRecorded(ctx context.Context, r policy.Request) (policy.Authorization, error) {
	az, err := s.policy.Authorize(ctx, r)
	if err != nil {
		rpc.Logger(ctx).ErrorContext(ctx, "policy evaluation failed; denying", "action", r.Action, "error", err)
		az = policy.Authorization{Reasons: []string{"the policy could not be evaluated"}, Rules: []string{policy.RuleEngineError}}
	}
	if az.Allow {
		return az, nil
	}
	reason := "not allowed by policy"
	if len(az.Reasons) > 0 {
		reason = joinReasons(az.Reasons)
	}
	rec := s.newRecord(ctx, r, az.Revision)
	rec.Result, rec.Reason, rec.Rules = audit.ResultRefused, reason, az.Rules
	if err := s.appendOrFail(ctx, rec, nil); err != nil {
		return az, err
	}
	return az, status.Errorf(codes.PermissionDenied, "%s refused: %s", r.Action, reason)
}

func joinReasons(rs []string) string {
	out := rs[0]
	for _, r := range rs[1:] {
		out += "; " + r
	}
	return out
}
