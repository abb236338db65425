package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// EraseExpired erases every list past its retention, each with a decision
// record of the erasure in the same transaction, and returns how many.
func (s *Service) EraseExpired(ctx context.Context) (int, error) {
	now := s.now()
	lists, err := s.store.ExpiredLists(ctx, now)
	if err != nil {
		return 0, err
	}
	erased := 0
	for _, l := range lists {
		rec := &audit.Record{
			Time: now, DecisionID: newDecisionID(), Caller: "hub retention", Agency: l.Owner, Action: audit.ActionExpire,
			Result: audit.ResultAllowed, Reason: "retention ended " + l.ExpiresAt.UTC().Format(time.RFC3339),
			Lists: []string{l.Owner + "/" + l.Name}, PolicyRevision: s.policy.Revision(),
		}
		if _, err := s.store.DeleteList(ctx, l.Owner, l.Name, rec); errors.Is(err, store.ErrNotFound) {
			continue // its owner, or another hub replica, erased it first
		} else if err != nil {
			return erased, fmt.Errorf("erase expired list %s/%s: %w", l.Owner, l.Name, err)
		}
		erased++
		s.metrics.Decided(rec.Action, rec.Result)
	}
	return erased, nil
}
