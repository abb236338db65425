package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// mtx adapts a transaction to matchrow.Tx.
type mtx struct{ tx *sql.Tx }

// Exec implements matchrow.Tx.
func (m mtx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := m.tx.ExecContext(ctx, matchrow.Rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Query implements matchrow.Tx.
func (m mtx) Query(ctx context.Context, query string, args []any, row func(scan func(...any) error) error) error {
	rows, err := m.tx.QueryContext(ctx, matchrow.Rebind(query), args...)
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

// Time implements matchrow.Tx: times are stored as Unix microseconds.
func (mtx) Time(t time.Time) any { return listrow.Micros(t) }

// matchFrom joins the tokens of list version rowid range ?1..?2 whose refs
// are ?6..?7 on the token prefix index, confirms each candidate against
// the full token, and keeps the entries of committed lists of owners other
// than ?3 with kind ?4 and key id ?5 that are not retracted: the pairs of
// list version ?8, in its direction. CROSS JOIN fixes the join order: the
// new version drives the join. Every token finds itself in the index; the
// test of b.id, which the index holds, drops it before its row is read.
var matchFrom = fmt.Sprintf(`
FROM tokens AS a CROSS JOIN tokens AS b CROSS JOIN lists AS l
WHERE a.id BETWEEN ?1 AND ?2 AND a.ref BETWEEN ?6 AND ?7
	AND substr(b.token, 1, 8) = substr(a.token, 1, 8)
	AND b.id NOT BETWEEN ?1 AND ?2
	AND b.token = a.token
	AND l.id = b.id >> %d
	AND l.state = %d AND l.owner <> ?3 AND l.kind = ?4 AND l.key_id = ?5
	AND NOT EXISTS (SELECT 1 FROM retractions AS r WHERE r.list_id = l.id AND r.ref = b.ref)`, posBits, stateCommitted)

// findMatches stores the pairs of the entries of committed version v with
// refs from to to (matchrow.AllRefsFrom, AllRefsTo: all of them) and
// announces them with match events at time at; replaces is the version v
// supersedes (0: none), whose pairs it erases once the new ones keep
// their alerts (see matchrow.Announce).
func findMatches(ctx context.Context, tx *sql.Tx, v matchrow.Version, from, to, replaces int64, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO matches (list_id, ref, cp_list_id, cp_ref) `+matchrow.PairsSQL(v.Kind, "?8, a.ref, l.id, b.ref", matchFrom),
		v.ID<<posBits, v.ID<<posBits|maxPos, v.Owner, v.Kind, v.KeyID, from, to, v.ID); err != nil {
		return fmt.Errorf("find the pairs of list version %d: %w", v.ID, err)
	}
	return matchrow.Announce(ctx, mtx{tx}, v.ID, from, to, replaces, at, nil)
}

// MatchEvents implements store.Matches.
func (s *Store) MatchEvents(ctx context.Context, owner, list string, after uint64, limit int) ([]store.MatchEvent, error) {
	var out []store.MatchEvent
	err := s.view(ctx, "match events", func(tx *sql.Tx) error {
		var err error
		out, err = matchrow.MatchEvents(ctx, mtx{tx}, owner, list, after, limit)
		return err
	})
	return out, err
}

// AppendAlertDecision implements store.Matches.
func (s *Store) AppendAlertDecision(ctx context.Context, rec *audit.Record, notices []store.Notice, alerted []store.Alerted) (uint64, error) {
	var idx uint64
	err := s.update(ctx, "append alert decision", func(tx *sql.Tx) error {
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
	err := s.update(ctx, "retract", func(tx *sql.Tx) error {
		v, err := matchrow.Committed(ctx, mtx{tx}, owner, list)
		if err != nil {
			return err
		}
		var held bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM tokens WHERE id BETWEEN ? AND ? AND ref = ?)`,
			v.ID<<posBits, v.ID<<posBits|maxPos, int64(ref)).Scan(&held); err != nil {
			return err
		}
		if !held {
			return fmt.Errorf("%w: entry %d of list %q of %q", store.ErrNotFound, ref, list, owner)
		}
		if err := matchrow.Retract(ctx, mtx{tx}, v.ID, ref, reason, at, nil); err != nil {
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
	err := s.view(ctx, "retractions", func(tx *sql.Tx) error {
		var err error
		out, err = matchrow.Retractions(ctx, mtx{tx}, owner)
		return err
	})
	return out, err
}

// Unretract implements store.Matches.
func (s *Store) Unretract(ctx context.Context, owner, list string, ref uint64, at time.Time, rec *audit.Record) error {
	return s.update(ctx, "unretract", func(tx *sql.Tx) error {
		v, err := matchrow.Committed(ctx, mtx{tx}, owner, list)
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
