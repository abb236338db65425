package matchrow

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
)

// versionSQL selects list version $1 if it is committed.
var versionSQL = fmt.Sprintf(`SELECT 1 FROM lists WHERE id = $1 AND state = %d`, listrow.StateCommitted)

// OverlapsSQL selects the match sets of list version $1, one row per
// counterparty version, from their primary key.
const OverlapsSQL = `SELECT cp_list_id, refs FROM match_sets WHERE list_id = $1 ORDER BY cp_list_id`

// Overlaps implements store.Store.Overlaps within a read-only transaction
// (one snapshot): it reads the match sets of list version id and calls fn
// for each distinct (ref, counterparty version) of its pairs, by
// counterparty version and then by ascending ref, as the rows arrive, or
// fails with store.ErrNotFound if the version is not committed. A set
// that does not decode fails with an error naming the two versions.
func Overlaps(ctx context.Context, tx Tx, id int64, fn func(entryRef uint64, counterpartyListID int64) error) error {
	found := false
	if err := tx.Query(ctx, versionSQL, []any{id}, func(func(...any) error) error {
		found = true
		return nil
	}); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: list version %d", store.ErrNotFound, id)
	}
	return tx.Query(ctx, OverlapsSQL, []any{id}, func(scan func(...any) error) error {
		var (
			cp   int64
			refs []byte
		)
		if err := scan(&cp, &refs); err != nil {
			return err
		}
		err := DecodeRefSet(refs, func(ref uint64) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(ref, cp)
		})
		if errors.Is(err, errRefSet) {
			return fmt.Errorf("match set of list version %d with %d: %w", id, cp, err)
		}
		return err
	})
}

// eventsSQL selects owner $1's events above cursor $2, up to $3 of them,
// of list versions that are committed and whose counterparty versions
// are, leaving out match events whose pair no longer stands (retracted
// before the event was delivered); eventsOfListSQL also only those of the
// list named $4.
var (
	eventsSQL = fmt.Sprintf(`SELECT e.cursor, e.kind, e.owner, e.list_id, l.name, e.ref, e.cp_list_id, e.time
FROM match_events AS e
	JOIN lists AS l ON l.id = e.list_id AND l.state = %[1]d
	JOIN lists AS c ON c.id = e.cp_list_id AND c.state = %[1]d
WHERE e.owner = $1 AND e.cursor > $2
	AND (e.kind <> '%[2]s' OR EXISTS (
		SELECT 1 FROM matches AS m WHERE m.list_id = e.list_id AND m.ref = e.ref AND m.cp_list_id = e.cp_list_id))`,
		listrow.StateCommitted, store.EventMatch)
	eventsOrder     = ` ORDER BY e.cursor LIMIT $3`
	eventsOfListSQL = eventsSQL + ` AND l.name = $4` + eventsOrder
)

// MatchEvents implements store.Matches.MatchEvents within a read-only
// transaction.
func MatchEvents(ctx context.Context, tx Tx, owner, list string, after uint64, limit int) ([]store.MatchEvent, error) {
	if after > math.MaxInt64 || limit <= 0 {
		return nil, fmt.Errorf("%w: after %d, limit %d", store.ErrInvalid, after, limit)
	}
	q, args := eventsSQL+eventsOrder, []any{owner, int64(after), limit}
	if list != "" {
		q, args = eventsOfListSQL, append(args, list)
	}
	var out []store.MatchEvent
	err := tx.Query(ctx, q, args, func(scan func(...any) error) error {
		var (
			e           store.MatchEvent
			cursor, ref int64
			at          Time
		)
		if err := scan(&cursor, &e.Kind, &e.Owner, &e.ListID, &e.List, &ref, &e.CounterpartyListID, &at); err != nil {
			return err
		}
		e.Cursor, e.Ref, e.Time = uint64(cursor), uint64(ref), at.T
		out = append(out, e)
		return nil
	})
	return out, err
}

// retractionsSQL selects the retractions of owner $1's committed list
// versions, oldest first.
var retractionsSQL = fmt.Sprintf(`SELECT l.owner, l.name, r.list_id, r.ref, r.reason, r.time
FROM retractions AS r JOIN lists AS l ON l.id = r.list_id
WHERE l.owner = $1 AND l.state = %d
ORDER BY r.time NULLS FIRST, r.id`, listrow.StateCommitted)

// Retractions implements store.Matches.Retractions within a read-only
// transaction.
func Retractions(ctx context.Context, tx Tx, owner string) ([]store.Retraction, error) {
	var out []store.Retraction
	err := tx.Query(ctx, retractionsSQL, []any{owner}, func(scan func(...any) error) error {
		var (
			r   store.Retraction
			ref int64
			at  Time
		)
		if err := scan(&r.Owner, &r.List, &r.ListID, &ref, &r.Reason, &at); err != nil {
			return err
		}
		r.Ref, r.Time = uint64(ref), at.T
		out = append(out, r)
		return nil
	})
	return out, err
}
