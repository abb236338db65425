package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// mtx adapts a transaction to matchrow.Tx.
type mtx struct{ tx pgx.Tx }

// Exec implements matchrow.Tx.
func (m mtx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := m.tx.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

// Query implements matchrow.Tx.
func (m mtx) Query(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	rows, err := m.tx.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Time implements matchrow.Tx.
func (mtx) Time(t time.Time) any { return timestamp(t) }

// matchFrom joins the tokens of list version $1 whose refs are $5..$6 on
// the token prefix index, confirms each candidate against the full token,
// and keeps the entries of committed lists of owners other than $2 with
// kind $3 and key id $4 that are not retracted: the pairs of list version
// $1, in its direction. matchPlan makes the new version drive the join,
// one index probe per token.
var matchFrom = fmt.Sprintf(`
FROM tokens AS a
	JOIN tokens AS b ON token_prefix(b.token) = token_prefix(a.token) AND b.token = a.token
	JOIN lists AS l ON l.id = b.list_id
WHERE a.list_id = $1::bigint AND a.ref BETWEEN $5 AND $6
	AND l.state = %d AND l.owner <> $2 AND l.kind = $3 AND l.key_id = $4
	AND NOT EXISTS (SELECT 1 FROM retractions AS r WHERE r.list_id = b.list_id AND r.ref = b.ref)`, stateCommitted)

// matchPlan fixes the plan of matchFrom for the rest of the transaction,
// until matchPlanDone: the joins in the order written, as nested loops
// over the indexes. A hash or merge join would read, and might spill to
// temporary files, every token of the kind; JIT compilation costs more
// than such a join takes. (The join runs inside an INSERT, so without
// parallel workers.)
const (
	matchPlan = `SET LOCAL join_collapse_limit = 1; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; ` +
		`SET LOCAL jit = off`
	matchPlanDone = `SET LOCAL join_collapse_limit TO DEFAULT; SET LOCAL enable_hashjoin TO DEFAULT; ` +
		`SET LOCAL enable_mergejoin TO DEFAULT; SET LOCAL jit TO DEFAULT`
)

// findMatches stores the pairs of the entries of committed version v with
// refs from to to (matchrow.AllRefsFrom, AllRefsTo: all of them) and
// announces them with match events at time at; replaces is the version v
// supersedes (0: none), whose pairs it erases once the new ones keep
// their alerts (see matchrow.Announce). The caller holds the
// lockMatches lock of v's kind and key id, so that of two versions
// committed at once that match each other, the later join sees the
// earlier version committed: their pairs are found once. The events'
// cursors are taken under the decision log's lock (see announce).
func findMatches(ctx context.Context, tx pgx.Tx, v matchrow.Version, from, to, replaces int64, at time.Time) error {
	if _, err := tx.Exec(ctx, matchPlan); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO matches (list_id, ref, cp_list_id, cp_ref) `+matchrow.PairsSQL(v.Kind, "$1::bigint, a.ref, l.id, b.ref", matchFrom),
		v.ID, v.Owner, v.Kind, v.KeyID, from, to); err != nil {
		return fmt.Errorf("find the pairs of list version %d: %w", v.ID, err)
	}
	if _, err := tx.Exec(ctx, matchPlanDone); err != nil {
		return err
	}
	return matchrow.Announce(ctx, mtx{tx}, v.ID, from, to, replaces, at, announce(ctx, tx))
}

// announce returns the lock matchrow takes before it appends events: the
// decision log's. Identity values are taken in no transaction order, so a
// reader could see cursor n+1 committed before n and move past n for good;
// taken under a lock held until the transaction ends, and which every
// appender of events takes, cursors become visible in their order. The
// lock is the log's, which the record of the action takes next anyway,
// and which is held only for the last statements of a transaction.
func announce(ctx context.Context, tx pgx.Tx) func() error {
	return func() error { return lock(ctx, tx, lockLog, 0) }
}

// lockKinds takes the lockMatches locks of the versions' kinds and key
// ids, in ascending key order, so that transactions that take two (a
// commit that changes its list's kind) never wait for each other in a
// cycle. Every transaction that changes the pairs of a kind and key id
// holds its lock until it ends.
func lockKinds(ctx context.Context, tx pgx.Tx, vs ...matchrow.Version) error {
	var keys []int32
	for _, v := range vs {
		keys = append(keys, kindKey(v.Kind, v.KeyID))
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if err := lock(ctx, tx, lockMatches, k); err != nil {
			return err
		}
	}
	return nil
}

// committed returns the owner's committed version of list with its lock
// taken, after the list's lock. The caller changes the version's pairs.
func committed(ctx context.Context, tx pgx.Tx, owner, list string) (matchrow.Version, error) {
	if err := lock(ctx, tx, lockList, listKey(owner, list)); err != nil {
		return matchrow.Version{}, err
	}
	v, err := matchrow.Committed(ctx, mtx{tx}, owner, list)
	if err != nil {
		return v, err
	}
	return v, lockKinds(ctx, tx, v)
}

// MatchEvents implements store.Matches.
func (s *Store) MatchEvents(ctx context.Context, owner, list string, after uint64, limit int) ([]store.MatchEvent, error) {
	var out []store.MatchEvent
	err := s.view(ctx, "match events", func(tx pgx.Tx) error {
		var err error
		out, err = matchrow.MatchEvents(ctx, mtx{tx}, owner, list, after, limit)
		return err
	})
	return out, err
}

// AppendAlertDecision implements store.Matches. It takes the decision
// log's lock first, which Retract holds when it reads the alerted pairs:
// an alert is recorded either before a retraction looks for it or after
// the retraction committed.
func (s *Store) AppendAlertDecision(ctx context.Context, rec *audit.Record, notices []store.Notice, alerted []store.Alerted) (uint64, error) {
	var idx uint64
	err := s.update(ctx, "append alert decision", func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockLog, 0); err != nil {
			return err
		}
		if err := matchrow.RecordAlerted(ctx, mtx{tx}, alerted); err != nil {
			return err
		}
		var err error
		idx, err = appendDecision(ctx, tx, rec, notices)
		return err
	})
	return idx, err
}

// Retract implements store.Matches.
func (s *Store) Retract(ctx context.Context, owner, list string, ref uint64, reason string, at time.Time, rec *audit.Record) (store.Retraction, error) {
	var r store.Retraction
	err := s.update(ctx, "retract", func(tx pgx.Tx) error {
		v, err := committed(ctx, tx, owner, list)
		if err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokens WHERE list_id = $1::bigint AND ref = $2)`,
			v.ID, int64(ref)).Scan(&held); err != nil {
			return err
		}
		if !held {
			return fmt.Errorf("%w: entry %d of list %q of %q", store.ErrNotFound, ref, list, owner)
		}
		if err := matchrow.Retract(ctx, mtx{tx}, v.ID, ref, reason, at, announce(ctx, tx)); err != nil {
			return err
		}
		r = store.Retraction{Owner: owner, List: list, ListID: v.ID, Ref: ref, Reason: reason, Time: listrow.FromMicros(listrow.Micros(at))}
		return maybeAppend(ctx, tx, rec)
	})
	return r, err
}

// Retractions implements store.Matches.
func (s *Store) Retractions(ctx context.Context, owner string) ([]store.Retraction, error) {
	var out []store.Retraction
	err := s.view(ctx, "retractions", func(tx pgx.Tx) error {
		var err error
		out, err = matchrow.Retractions(ctx, mtx{tx}, owner)
		return err
	})
	return out, err
}

// Unretract implements store.Matches.
func (s *Store) Unretract(ctx context.Context, owner, list string, ref uint64, at time.Time, rec *audit.Record) error {
	return s.update(ctx, "unretract", func(tx pgx.Tx) error {
		v, err := committed(ctx, tx, owner, list)
		if err != nil {
			return err
		}
		if err := matchrow.Unretract(ctx, mtx{tx}, v.ID, ref); err != nil {
			return err
		}
		if err := findMatches(ctx, tx, v, int64(ref), int64(ref), 0, at); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
}

// versionOf returns the committed version of owner's list, if there is
// one: found is false without an error when there is none.
func versionOf(ctx context.Context, tx pgx.Tx, owner, list string) (v matchrow.Version, found bool, err error) {
	v, err = matchrow.Committed(ctx, mtx{tx}, owner, list)
	if errors.Is(err, store.ErrNotFound) {
		return v, false, nil
	}
	return v, err == nil, err
}
