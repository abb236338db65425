package matchrow

import (
	"context"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
)

// retractedSQL selects the retraction of entry $2 of list version $1.
const retractedSQL = `SELECT 1 FROM retractions WHERE list_id = $1 AND ref = $2`

// retractionEventsSQL appends, at time $3, a retraction event to the owner
// of every entry that was alerted of a pair with entry $2 of list version
// $1, one per distinct (list version, ref, counterparty version).
var retractionEventsSQL = `INSERT INTO match_events (kind, owner, list_id, ref, cp_list_id, time)
SELECT '` + store.EventRetraction + `', l.owner, a.list_id, a.ref, a.cp_list_id, CAST($3 AS timestamptz)
FROM (SELECT DISTINCT cp_list_id AS list_id, cp_ref AS ref, list_id AS cp_list_id FROM matches WHERE list_id = $1 AND ref = $2) AS p
	JOIN alerted AS a ON a.list_id = p.list_id AND a.ref = p.ref AND a.cp_list_id = p.cp_list_id
	JOIN lists AS l ON l.id = a.list_id
ORDER BY a.list_id, a.ref`

// retractPairsSQL deletes the pairs of entry $2 of list version $1, in
// both directions (the first two statements), and then the alerts no
// standing pair is behind any more: the retraction events told those
// owners, and the entry's owner, that the matches are gone, so that if
// they come back (the retraction undone, the list published again) they
// are news again.
var retractPairsSQL = []string{
	`DELETE FROM matches WHERE (list_id, ref, cp_list_id, cp_ref) IN (` + mirrorOfEntry + `)`,
	`DELETE FROM matches WHERE list_id = $1 AND ref = $2`,
	`DELETE FROM alerted WHERE list_id = $1 AND ref = $2`,
	`DELETE FROM alerted WHERE cp_list_id = $1 AND NOT EXISTS (SELECT 1 FROM matches AS m
		WHERE m.list_id = alerted.list_id AND m.ref = alerted.ref AND m.cp_list_id = alerted.cp_list_id)`,
}

// Retract withdraws entry ref of list version id, which the store has
// found to exist: unless it is retracted already (store.ErrConflict), it
// calls lock (unless nil), appends a retraction event to the owner of
// every entry alerted of a pair with it, deletes its pairs and the alerts
// of them, rewrites the match sets of id if it had pairs, and records the
// retraction.
func Retract(ctx context.Context, tx Tx, id int64, ref uint64, reason string, at time.Time, lock func() error) error {
	held := false
	if err := tx.Query(ctx, retractedSQL, []any{id, int64(ref)}, func(func(...any) error) error {
		held = true
		return nil
	}); err != nil {
		return err
	}
	if held {
		return fmt.Errorf("%w: entry %d of list version %d is retracted already", store.ErrConflict, ref, id)
	}
	if lock != nil {
		if err := lock(); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, retractionEventsSQL, id, int64(ref), tx.Time(at)); err != nil {
		return fmt.Errorf("append retraction events: %w", err)
	}
	var deleted int64
	for i, q := range retractPairsSQL {
		args := []any{id, int64(ref)}
		if i == len(retractPairsSQL)-1 {
			args = args[:1]
		}
		n, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("delete the pairs of entry %d of list version %d: %w", ref, id, err)
		}
		if i < 2 {
			deleted += n
		}
	}
	if deleted > 0 {
		if err := rebuildSets(ctx, tx, id); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO retractions (list_id, ref, reason, time) VALUES ($1, $2, $3, $4)`, id, int64(ref), reason, tx.Time(at))
	return err
}

// Unretract deletes the retraction of entry ref of list version id, or
// fails with store.ErrNotFound. The store then finds the entry's pairs
// again and announces them (see Announce).
func Unretract(ctx context.Context, tx Tx, id int64, ref uint64) error {
	n, err := tx.Exec(ctx, `DELETE FROM retractions WHERE list_id = $1 AND ref = $2`, id, int64(ref))
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: entry %d of list version %d is not retracted", store.ErrNotFound, ref, id)
	}
	return nil
}
