// Package matchrow is what the hub's stores (SQLite, PostgreSQL) share
// about standing matches: the statements on the tables that hold them
// (matches, match_sets, match_events, alerted, retractions), which have
// the same columns in both stores, and the steps of the store methods
// that run them.
//
// A store joins a new list version's tokens against the other lists itself
// (the token layouts differ) and inserts the pairs it found, one direction
// only; the steps here do the rest: the mirror images of the pairs, the
// match sets that summarize them (see sets.go), the match events, the
// erasure of a version's pairs, retractions and the reads.
//
// Statements are written once, for PostgreSQL, with $n placeholders; the
// sqlite store runs them through Rebind, which makes them SQLite's ?n. A
// parameter whose type PostgreSQL cannot infer is written CAST($n AS
// type): SQLite gives such a cast the affinity of the type's name, which
// keeps the integers it stores times and ids as unchanged. Upserts are ON
// CONFLICT DO NOTHING after VALUES, which both parse alike.
package matchrow

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
)

// Tx is a store's transaction as the steps of this package use it.
type Tx interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query and calls row for each row it returns with a
	// function that scans the row's columns; an error from row stops the
	// query and is returned.
	Query(ctx context.Context, query string, args []any, row func(scan func(dest ...any) error) error) error
	// Time returns t as the parameter of a time column.
	Time(t time.Time) any
}

// Rebind turns the $n placeholders of a statement of this package into
// SQLite's ?n. The statements hold no $ anywhere else.
func Rebind(query string) string {
	return strings.ReplaceAll(query, "$", "?")
}

// AllRefs is the range of refs (stored as int64, bit for bit) that stands
// for every entry of a list version.
const (
	AllRefsFrom int64 = math.MinInt64
	AllRefsTo   int64 = math.MaxInt64
)

// Time scans a time column of either store: Unix microseconds (SQLite), a
// timestamptz (PostgreSQL), or NULL for the zero time. Both drivers scan
// into an sql.Scanner.
type Time struct{ T time.Time }

// Scan implements sql.Scanner.
func (t *Time) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		t.T = time.Time{}
	case int64:
		t.T = listrow.FromMicros(v)
	case time.Time:
		t.T = listrow.FromMicros(v.UnixMicro())
	default:
		return fmt.Errorf("time column holds %T", v)
	}
	return nil
}

// Version is what the steps need to know of a committed list version.
type Version struct {
	ID          int64
	Owner, Name string
	Kind, KeyID string
}

// committedSQL selects owner $1's committed version of list $2.
var committedSQL = fmt.Sprintf(`SELECT id, kind, key_id FROM lists WHERE owner = $1 AND name = $2 AND state = %d`, listrow.StateCommitted)

// Committed returns owner's committed version of list, or
// store.ErrNotFound.
func Committed(ctx context.Context, tx Tx, owner, list string) (Version, error) {
	v := Version{Owner: owner, Name: list}
	found := false
	err := tx.Query(ctx, committedSQL, []any{owner, list}, func(scan func(...any) error) error {
		found = true
		return scan(&v.ID, &v.Kind, &v.KeyID)
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: list %q of %q", store.ErrNotFound, list, owner)
	}
	return v, err
}

// Every pair is stored in both directions, so the pairs whose
// counterparty is list version $1 (entry $2) are the mirror images of the
// rows of $1 (entry $2), found by the primary key; no index on the
// counterparty columns is needed.
const (
	mirrorOfList  = `SELECT cp_list_id, cp_ref, list_id, ref FROM matches WHERE list_id = $1`
	mirrorOfEntry = mirrorOfList + ` AND ref = $2`
)

// erasePairsSQL deletes what the standing matches hold of list version
// $1: its pairs and match sets in both directions, the events and alerts
// of them, and the retractions of its entries.
var erasePairsSQL = append([]string{
	`DELETE FROM matches WHERE (list_id, ref, cp_list_id, cp_ref) IN (` + mirrorOfList + `)`,
	`DELETE FROM matches WHERE list_id = $1`,
	`DELETE FROM match_events WHERE list_id = $1`,
	`DELETE FROM match_events WHERE cp_list_id = $1`,
	`DELETE FROM alerted WHERE list_id = $1`,
	`DELETE FROM alerted WHERE cp_list_id = $1`,
	`DELETE FROM retractions WHERE list_id = $1`,
}, eraseSetsSQL...)

// ErasePairs deletes what the standing matches hold of list version id:
// its pairs and match sets in both directions, the events and alerts of
// them, and its retractions. A store calls it in the transaction that
// supersedes or deletes the version, so that nothing of the version's
// matches outlives its tokens.
func ErasePairs(ctx context.Context, tx Tx, id int64) error {
	for _, q := range erasePairsSQL {
		if _, err := tx.Exec(ctx, q, id); err != nil {
			return fmt.Errorf("erase the pairs of list version %d: %w", id, err)
		}
	}
	return nil
}

// mirrorSQL inserts the mirror image of the pairs of list version $1's
// entries with refs $2 to $3.
const mirrorSQL = `INSERT INTO matches (list_id, ref, cp_list_id, cp_ref)
SELECT cp_list_id, cp_ref, list_id, ref FROM matches WHERE list_id = $1 AND ref BETWEEN $2 AND $3`

// matchEventsSQL appends a match event for each distinct (list version,
// ref, counterparty version) of the pairs of list version $1's entries
// with refs $2 to $3, on both sides, at time $4 — but not for a pair that
// version $5, which $1 replaces, had with the same counterparty entry and
// whose side was alerted of it: that is the same match, told already.
var matchEventsSQL = `INSERT INTO match_events (kind, owner, list_id, ref, cp_list_id, time)
SELECT '` + store.EventMatch + `', l.owner, p.list_id, p.ref, p.cp_list_id, CAST($4 AS timestamptz)
FROM (
	SELECT list_id, ref, cp_list_id FROM matches AS m WHERE m.list_id = $1 AND m.ref BETWEEN $2 AND $3
		AND NOT EXISTS (SELECT 1 FROM matches AS o
			JOIN alerted AS a ON a.list_id = o.cp_list_id AND a.ref = o.cp_ref AND a.cp_list_id = o.list_id
			WHERE o.list_id = m.cp_list_id AND o.ref = m.cp_ref AND o.cp_list_id = $5)
	UNION
	SELECT cp_list_id, cp_ref, list_id FROM matches AS m WHERE m.list_id = $1 AND m.ref BETWEEN $2 AND $3
		AND NOT EXISTS (SELECT 1 FROM alerted AS a WHERE a.list_id = m.cp_list_id AND a.ref = m.cp_ref AND a.cp_list_id = $5)
) AS p JOIN lists AS l ON l.id = p.list_id
ORDER BY p.list_id, p.ref, p.cp_list_id`

// carryAlertedSQL records, for the pairs of list version $1's entries with
// refs $2 to $3, the alerts of the same matches of version $4, which $1
// replaces: on $1's side (its old entry was alerted of the counterparty
// entry) and on the counterparty's, so that a later retraction reaches
// whoever was told.
var carryAlertedSQL = []string{
	`INSERT INTO alerted (list_id, ref, cp_list_id)
SELECT DISTINCT m.list_id, m.ref, m.cp_list_id FROM matches AS m
	JOIN matches AS o ON o.list_id = m.cp_list_id AND o.ref = m.cp_ref AND o.cp_list_id = $4
	JOIN alerted AS a ON a.list_id = o.cp_list_id AND a.ref = o.cp_ref AND a.cp_list_id = o.list_id
WHERE m.list_id = $1 AND m.ref BETWEEN $2 AND $3
ON CONFLICT DO NOTHING`,
	`INSERT INTO alerted (list_id, ref, cp_list_id)
SELECT DISTINCT m.cp_list_id, m.cp_ref, m.list_id FROM matches AS m
	JOIN alerted AS a ON a.list_id = m.cp_list_id AND a.ref = m.cp_ref AND a.cp_list_id = $4
WHERE m.list_id = $1 AND m.ref BETWEEN $2 AND $3
ON CONFLICT DO NOTHING`,
}

// Announce completes the pairs a store has just inserted for the entries
// of list version id with refs from to to (AllRefsFrom, AllRefsTo: all of
// them), in the direction from id: it inserts their mirror images and, if
// there were any, rewrites the match sets of id (both directions, once
// for the whole range), calls lock (unless nil) and appends a match event
// for each distinct (list version, ref, counterparty version) of them, to
// the owners of both sides, at time at. A version that replaces another in
// the same transaction (replaces, else 0; its pairs not erased yet) keeps
// the alerts of the matches the two share, and those are not announced
// again: republishing a list with one more row alerts that row's matches
// only; then what the standing matches hold of the replaced version is
// erased (ErasePairs). Events are appended in one statement, so that a
// store that orders cursors by holding a lock (lock) holds it briefly.
func Announce(ctx context.Context, tx Tx, id, from, to, replaces int64, at time.Time, lock func() error) error {
	if err := announce(ctx, tx, id, from, to, replaces, at, lock); err != nil {
		return err
	}
	if replaces != 0 {
		return ErasePairs(ctx, tx, replaces)
	}
	return nil
}

// announce is Announce but for the erasure of the replaced version.
func announce(ctx context.Context, tx Tx, id, from, to, replaces int64, at time.Time, lock func() error) error {
	n, err := tx.Exec(ctx, mirrorSQL, id, from, to)
	if err != nil {
		return fmt.Errorf("store the pairs of list version %d: %w", id, err)
	}
	if n == 0 {
		return nil
	}
	if err := rebuildSets(ctx, tx, id); err != nil {
		return err
	}
	if replaces != 0 {
		for _, q := range carryAlertedSQL {
			if _, err := tx.Exec(ctx, q, id, from, to, replaces); err != nil {
				return fmt.Errorf("keep the alerts of list version %d in %d: %w", replaces, id, err)
			}
		}
	}
	if lock != nil {
		if err := lock(); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, matchEventsSQL, id, from, to, tx.Time(at), replaces); err != nil {
		return fmt.Errorf("append the match events of list version %d: %w", id, err)
	}
	return nil
}

// alertedRows is how many alerted pairs one INSERT statement writes.
const alertedRows = 200

// RecordAlerted stores the pairs an owner was alerted of; a pair stored
// already is kept as it is.
func RecordAlerted(ctx context.Context, tx Tx, alerted []store.Alerted) error {
	err := insertRows(ctx, tx, `INSERT INTO alerted (list_id, ref, cp_list_id) VALUES `, ` ON CONFLICT DO NOTHING`, alertedRows, alerted,
		func(a store.Alerted) []any { return []any{a.ListID, int64(a.Ref), a.CounterpartyListID} })
	if err != nil {
		return fmt.Errorf("store alerted pairs: %w", err)
	}
	return nil
}

// insertRows writes rows with statements of at most per rows each: insert
// (INSERT INTO … VALUES), the placeholders of each row's values, and
// tail.
func insertRows[T any](ctx context.Context, tx Tx, insert, tail string, per int, rows []T, values func(T) []any) error {
	var args []any
	for len(rows) > 0 {
		n := min(len(rows), per)
		var q strings.Builder
		q.WriteString(insert)
		args = args[:0]
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			sep := "("
			for _, v := range values(r) {
				args = append(args, v)
				fmt.Fprintf(&q, "%s$%d", sep, len(args))
				sep = ", "
			}
			q.WriteString(")")
		}
		q.WriteString(tail)
		if _, err := tx.Exec(ctx, q.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}
