package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to read the hub's SQLite file

	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
)

// ImportReport says what ImportSQLite copied.
type ImportReport struct {
	Lists, Tokens, Records, Requests, Notices int64
	// Pairs, Sets, Events, Alerted and Retractions count the standing
	// matches' rows: pairs in both directions, match sets (both
	// directions too), match events, alerted pairs and retractions.
	Pairs, Sets, Events, Alerted, Retractions int64
	// LogSize and LogRoot are the decision log's head, the same on both
	// sides.
	LogSize uint64
	LogRoot []byte
}

// ImportSQLite copies a SQLite hub database (the file a hub keeps in its
// data directory, with the hub stopped or from a backup) into this store,
// which must be empty: every list version, staged upload and token, the
// decision log with its Merkle nodes and signed checkpoints, disclosure
// requests, notices, key epochs, check use, and the standing matches with
// their match sets, events, alerts and retractions. Ids and event cursors
// are kept, so match references, disclosure requests and readers' cursors
// stay valid, and the decision log's root hash is the same, so auditors'
// saved state verifies against the new hub. It is one transaction: all of it or
// nothing. The SQLite database must have the schema of this version of
// the hub: one opened by this version has.
func (s *Store) ImportSQLite(ctx context.Context, path string) (ImportReport, error) {
	var rep ImportReport
	src, err := openSQLite(path)
	if err != nil {
		return rep, fmt.Errorf("import %s: %w", path, err)
	}
	defer src.Close()
	err = s.update(ctx, "import", func(tx pgx.Tx) error {
		if err := lock(ctx, tx, lockLog, 0); err != nil {
			return err
		}
		if err := checkEmpty(ctx, tx); err != nil {
			return err
		}
		for _, step := range []func(context.Context, *sql.DB, pgx.Tx, *ImportReport) error{
			importLists, importTokens, importLog, importDisclosures, importRest, importMatches,
		} {
			if err := step(ctx, src, tx, &rep); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `SELECT size FROM log_state WHERE id = 1`).Scan(&rep.LogSize)
	})
	if err != nil {
		return rep, err
	}
	size, root, err := s.LogHead(ctx)
	if err != nil {
		return rep, err
	}
	rep.LogSize, rep.LogRoot = size, root
	return rep, nil
}

// sqliteVersion is the schema version of the SQLite store that the import
// reads (TestImportVersion checks it is the sqlite store's).
const sqliteVersion = 6

// openSQLite opens the SQLite database at path read-only.
func openSQLite(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	q := url.Values{"mode": {"ro"}, "_pragma": {"query_only(1)"}}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, err
	}
	var v int
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("not a veilmatch hub database: %w", err)
	}
	if v != sqliteVersion {
		db.Close()
		return nil, fmt.Errorf("the SQLite database has schema version %d, the import reads version %d: "+
			"open it with the hub of this version first (the hub upgrades it), then import", v, sqliteVersion)
	}
	return db, nil
}

// checkEmpty refuses to import into a store that holds anything.
func checkEmpty(ctx context.Context, tx pgx.Tx) error {
	var n int64
	err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM lists) + (SELECT size FROM log_state WHERE id = 1) +
		(SELECT count(*) FROM key_epochs) + (SELECT count(*) FROM disclosure_requests)`).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return errors.New("the PostgreSQL store is not empty: import into a new database")
	}
	return nil
}

// copyRows reads query's rows from src and streams them to table's
// columns with the COPY protocol; conv turns a row into the values to
// write.
func copyRows(ctx context.Context, src *sql.DB, tx pgx.Tx, query, table string, cols []string, conv func(*sql.Rows) ([]any, error)) (int64, error) {
	rows, err := src.QueryContext(ctx, query)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var readErr error
	next := func() ([]any, error) {
		if !rows.Next() {
			return nil, nil
		}
		v, err := conv(rows)
		if err != nil {
			readErr = err
		}
		return v, err
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, copyFunc(next))
	switch {
	case readErr != nil:
		return 0, fmt.Errorf("read %s: %w", table, readErr)
	case err != nil:
		return 0, fmt.Errorf("write %s: %w", table, err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	return n, nil
}

// copyFunc adapts next, which returns nil at the end, to pgx.CopyFromSource.
func copyFunc(next func() ([]any, error)) pgx.CopyFromSource {
	var row []any
	var done bool
	return pgx.CopyFromFunc(func() ([]any, error) {
		if done {
			return nil, nil
		}
		var err error
		if row, err = next(); row == nil || err != nil {
			done = true
		}
		return row, err
	})
}

func importLists(ctx context.Context, src *sql.DB, tx pgx.Tx, rep *ImportReport) error {
	cols := []string{"id", "owner", "name", "upload_id", "state", "kind", "key_id", "category", "jurisdiction", "expires_at",
		"consent_roles", "ngo_visible", "normalization", "begun_at", "staged", "entries", "committed_at"}
	n, err := copyRows(ctx, src, tx, `SELECT id, owner, name, upload_id, state, kind, key_id, category, jurisdiction, expires_at,
		consent_roles, ngo_visible, normalization, begun_at, next_pos, entries, committed_at FROM lists ORDER BY id`, "lists", cols,
		func(r *sql.Rows) ([]any, error) {
			var (
				id, expires, begun, staged, entries, committed int64
				state                                          int16
				ngo                                            bool
				owner, name, upload, kind, key, cat, jur       string
				roles, norm                                    string
			)
			err := r.Scan(&id, &owner, &name, &upload, &state, &kind, &key, &cat, &jur, &expires, &roles, &ngo, &norm, &begun, &staged, &entries, &committed)
			return []any{id, owner, name, upload, state, kind, key, cat, jur, timestamp(listrow.FromMicros(expires)),
				json.RawMessage(roles), ngo, json.RawMessage(norm), timestamp(listrow.FromMicros(begun)), staged, entries, timestamp(listrow.FromMicros(committed))}, err
		})
	if err != nil {
		return err
	}
	rep.Lists = n
	// The identity column continues after the ids copied.
	_, err = tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('lists', 'id'), greatest((SELECT max(id) FROM lists), 1))`)
	return err
}

// batchRange is one batch of an upload: positions first to first+entries-1
// of its list version, and the digest PutBatch compares a batch sent again
// with (that of nothing once its tokens were erased).
type batchRange struct {
	listID, seq, first, entries int64
	digest                      hash.Hash
}

// importTokens streams the tokens and, on the way, hashes each batch's
// refs and tokens in order; then it writes the batches with their digests.
func importTokens(ctx context.Context, src *sql.DB, tx pgx.Tx, rep *ImportReport) error {
	batches, err := readBatches(ctx, src)
	if err != nil {
		return err
	}
	b := 0
	var ref [8]byte
	rep.Tokens, err = copyRows(ctx, src, tx, `SELECT id, ref, token FROM tokens ORDER BY id`, "tokens", []string{"ref", "list_id", "token"},
		func(r *sql.Rows) ([]any, error) {
			var id, refv int64
			var tok []byte
			if err := r.Scan(&id, &refv, &tok); err != nil {
				return nil, err
			}
			listID, pos := id>>32, id&(1<<32-1)
			for b < len(batches) && (batches[b].listID < listID || batches[b].listID == listID && batches[b].first+batches[b].entries <= pos) {
				b++
			}
			if b < len(batches) && batches[b].listID == listID && batches[b].first <= pos {
				binary.BigEndian.PutUint64(ref[:], uint64(refv))
				batches[b].digest.Write(ref[:])
				batches[b].digest.Write(tok)
			}
			return []any{refv, int32(listID), tok}, nil
		})
	if err != nil {
		return err
	}
	i := 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"batches"}, []string{"list_id", "seq", "entries", "digest"}, copyFunc(func() ([]any, error) {
		if i == len(batches) {
			return nil, nil
		}
		bt := batches[i]
		i++
		return []any{bt.listID, bt.seq, bt.entries, bt.digest.Sum(nil)}, nil
	}))
	if err != nil {
		return fmt.Errorf("write batches: %w", err)
	}
	return nil
}

// readBatches reads every batch, in the order of their tokens.
func readBatches(ctx context.Context, src *sql.DB) ([]batchRange, error) {
	rows, err := src.QueryContext(ctx, `SELECT list_id, seq, first_pos, entries FROM batches ORDER BY list_id, first_pos`)
	if err != nil {
		return nil, fmt.Errorf("read batches: %w", err)
	}
	defer rows.Close()
	var out []batchRange
	for rows.Next() {
		b := batchRange{digest: sha256.New()}
		if err := rows.Scan(&b.listID, &b.seq, &b.first, &b.entries); err != nil {
			return nil, fmt.Errorf("read batches: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// importLog copies the decision log as it is: records, Merkle nodes,
// compact range and checkpoints, so its root hash stays the same.
func importLog(ctx context.Context, src *sql.DB, tx pgx.Tx, rep *ImportReport) error {
	var err error
	if rep.Records, err = copyRows(ctx, src, tx, `SELECT idx, record FROM log_records ORDER BY idx`, "log_records", []string{"idx", "record"}, scanAll(2)); err != nil {
		return err
	}
	if _, err = copyRows(ctx, src, tx, `SELECT level, idx, hash FROM log_nodes`, "log_nodes", []string{"level", "idx", "hash"}, scanAll(3)); err != nil {
		return err
	}
	if _, err = copyRows(ctx, src, tx, `SELECT size, checkpoint FROM checkpoints`, "checkpoints", []string{"size", "checkpoint"}, scanAll(2)); err != nil {
		return err
	}
	var size int64
	var hashes []byte
	if err := src.QueryRowContext(ctx, `SELECT size, range FROM log_state WHERE id = 1`).Scan(&size, &hashes); err != nil {
		return fmt.Errorf("read log_state: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE log_state SET size = $1, hashes = $2 WHERE id = 1`, size, hashes)
	return err
}

// scanAll converts a row of n columns as they are.
func scanAll(n int) func(*sql.Rows) ([]any, error) {
	return func(r *sql.Rows) ([]any, error) {
		v := make([]any, n)
		p := make([]any, n)
		for i := range v {
			p[i] = &v[i]
		}
		return v, r.Scan(p...)
	}
}

func importDisclosures(ctx context.Context, src *sql.DB, tx pgx.Tx, rep *ImportReport) error {
	cols := []string{"id", "group_id", "requester", "requester_list", "requester_list_id", "owner", "list", "list_id", "entry_refs",
		"entries", "requested", "reason", "purpose", "case_ref", "status", "created_at", "answered_at", "note"}
	var err error
	rep.Requests, err = copyRows(ctx, src, tx, `SELECT id, group_id, requester, requester_list, requester_list_id, owner, list, list_id,
		entry_refs, entries, requested, reason, purpose, case_ref, status, created_at, answered_at, note FROM disclosure_requests`,
		"disclosure_requests", cols, func(r *sql.Rows) ([]any, error) {
			v, err := scanAll(len(cols))(r)
			if err == nil {
				v[8] = json.RawMessage(v[8].(string))
				v[15], v[16] = timestamp(listrow.FromMicros(v[15].(int64))), timestamp(listrow.FromMicros(v[16].(int64)))
			}
			return v, err
		})
	if err != nil {
		return err
	}
	ncols := []string{"id", "owner", "list", "action", "requester", "requester_list", "entries", "purpose", "case_ref", "time", "decision_id"}
	rep.Notices, err = copyRows(ctx, src, tx, `SELECT id, owner, list, action, requester, requester_list, entries, purpose, case_ref, time,
		decision_id FROM notices ORDER BY id`, "notices", ncols, scanTime(len(ncols), 9))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('notices', 'id'), greatest((SELECT max(id) FROM notices), 1))`)
	return err
}

// importRest copies the key epochs and the check use.
func importRest(ctx context.Context, src *sql.DB, tx pgx.Tx, _ *ImportReport) error {
	if _, err := copyRows(ctx, src, tx, `SELECT key_id, rank, public_key FROM key_epochs`, "key_epochs", []string{"key_id", "rank", "public_key"}, scanAll(3)); err != nil {
		return err
	}
	_, err := copyRows(ctx, src, tx, `SELECT agency, day, entries FROM check_use`, "check_use", []string{"agency", "day", "entries"}, scanAll(3))
	return err
}

// importMatches copies the standing matches: the pairs, the match sets
// (packed alike in both stores), the events with their cursors, the
// alerted pairs and the retractions; the identity columns continue after
// the cursors and ids copied.
func importMatches(ctx context.Context, src *sql.DB, tx pgx.Tx, rep *ImportReport) error {
	steps := []struct {
		n            *int64
		query, table string
		cols         []string
		conv         func(*sql.Rows) ([]any, error)
	}{
		{&rep.Pairs, `SELECT list_id, ref, cp_list_id, cp_ref FROM matches`, "matches",
			[]string{"list_id", "ref", "cp_list_id", "cp_ref"}, scanAll(4)},
		{&rep.Sets, `SELECT list_id, cp_list_id, refs FROM match_sets`, "match_sets",
			[]string{"list_id", "cp_list_id", "refs"}, scanAll(3)},
		{&rep.Events, `SELECT cursor, kind, owner, list_id, ref, cp_list_id, time FROM match_events ORDER BY cursor`, "match_events",
			[]string{"cursor", "kind", "owner", "list_id", "ref", "cp_list_id", "time"}, scanTime(7, 6)},
		{&rep.Alerted, `SELECT list_id, ref, cp_list_id FROM alerted`, "alerted",
			[]string{"list_id", "ref", "cp_list_id"}, scanAll(3)},
		{&rep.Retractions, `SELECT id, list_id, ref, reason, time FROM retractions ORDER BY id`, "retractions",
			[]string{"id", "list_id", "ref", "reason", "time"}, scanTime(5, 4)},
	}
	for _, st := range steps {
		var err error
		if *st.n, err = copyRows(ctx, src, tx, st.query, st.table, st.cols, st.conv); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('match_events', 'cursor'), coalesce(max(cursor), 0) + 1, false) FROM match_events;
		SELECT setval(pg_get_serial_sequence('retractions', 'id'), coalesce(max(id), 0) + 1, false) FROM retractions`)
	return err
}

// scanTime converts a row of n columns as they are, except column i, a
// time in Unix microseconds, which becomes a timestamptz.
func scanTime(n, i int) func(*sql.Rows) ([]any, error) {
	return func(r *sql.Rows) ([]any, error) {
		v, err := scanAll(n)(r)
		if err == nil {
			v[i] = timestamp(listrow.FromMicros(v[i].(int64)))
		}
		return v, err
	}
}
