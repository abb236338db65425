package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// checkpointAge returns how long, at now, the oldest decision-log record
// that the latest signed checkpoint does not cover has waited: zero when
// that checkpoint covers the whole log. An auditor can only verify what a
// checkpoint covers, so a growing age means checkpoints are not being
// made (the AuditService signs one when an auditor asks).
func checkpointAge(ctx context.Context, st store.DecisionLog, now time.Time) (time.Duration, error) {
	size, _, err := st.LogHead(ctx)
	if err != nil {
		return 0, err
	}
	covered, _, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		covered = 0
	} else if err != nil {
		return 0, err
	}
	if covered >= size {
		return 0, nil
	}
	recs, err := st.LogRecords(ctx, covered, 1)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, fmt.Errorf("decision log record %d not found", covered)
	}
	rec, err := audit.ParseRecord(recs[0])
	if err != nil {
		return 0, fmt.Errorf("decision log record %d: %w", covered, err)
	}
	return max(now.Sub(rec.Time), 0), nil
}
