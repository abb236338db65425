package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
)

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
