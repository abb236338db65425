package hub

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
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

// requireAgency authenticates the caller as a registered agency. Auditors
// review decisions through the AuditService and may not use the hub's
// matching at all.
func (s *Service) requireAgency(ctx context.Context) (mtls.Identity, policy.Agency, error) {
	id, ok := rpc.Caller(ctx)
	if !ok {
		return id, policy.Agency{}, status.Error(codes.Unauthenticated, "no caller identity")
	}
	if id.Kind != mtls.KindAgency {
		return id, policy.Agency{}, status.Errorf(codes.PermissionDenied,
			"%s may not use the HubService: only agencies publish and query; auditors review decisions through the AuditService", id)
	}
	a, ok := s.policy.Agency(id.ID)
	if !ok {
		return id, a, status.Errorf(codes.PermissionDenied, "%s is not in the agency registry; ask the hub operator to register it", id)
	}
	return id, a, nil
}

// requireOwnList authenticates the caller as a registered agency and
// resolves the list reference of its request to one of its own lists.
func (s *Service) requireOwnList(ctx context.Context, ref string) (mtls.Identity, policy.Agency, string, error) {
	id, a, err := s.requireAgency(ctx)
	if err != nil {
		return id, a, "", err
	}
	name, err := resolveList(id, "list", ref)
	return id, a, name, err
}

// EraseExpired erases every list past its retention, each with a decision
// record of the erasure in the same transaction, and returns how many.
func (s *Service) EraseExpired(ctx context.Context) (int, error) {
	now := s.now()
	lists, err := s.store.ExpiredLists(ctx, now)
	if err != nil {
		return 0, err
	}
	for _, l := range lists {
		rec := &audit.Record{
			Time: now, DecisionID: newDecisionID(), Caller: "hub retention", Agency: l.Owner, Action: audit.ActionExpire,
			Result: audit.ResultAllowed, Reason: "retention ended " + l.ExpiresAt.UTC().Format(time.RFC3339),
			Lists: []string{l.Owner + "/" + l.Name}, PolicyRevision: s.policy.Revision(),
		}
		if _, err := s.store.DeleteList(ctx, l.Owner, l.Name, rec); err != nil {
			return 0, fmt.Errorf("erase expired list %s/%s: %w", l.Owner, l.Name, err)
		}
		s.metrics.Decided(rec.Action, rec.Result)
	}
	return len(lists), nil
}
