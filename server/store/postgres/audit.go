package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// hashSize is the size of an RFC 6962 SHA-256 hash.
const hashSize = 32

// appendRecord appends rec to the decision log within tx: under the log's
// lock it reads the compact range, assigns rec.Index, stores the canonical
// record and the completed Merkle nodes, and saves the new range. The lock
// is held until tx ends, so callers append last.
func appendRecord(ctx context.Context, tx pgx.Tx, rec *audit.Record) (uint64, error) {
	size, tree, err := lockLogState(ctx, tx)
	if err != nil {
		return 0, err
	}
	rec.Index = uint64(size)
	data, err := rec.Marshal()
	if err != nil {
		return 0, err
	}
	nodes, err := tree.Append(audit.LeafHash(data))
	if err != nil {
		return 0, err
	}
	levels := make([]int16, len(nodes))
	indexes := make([]int64, len(nodes))
	hashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		if n.Index > math.MaxInt64 {
			return 0, fmt.Errorf("log node index %d out of range", n.Index)
		}
		levels[i], indexes[i], hashes[i] = int16(n.Level), int64(n.Index), n.Hash
	}
	// One round trip for the three writes, while the lock is held.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO log_records (idx, record) VALUES ($1, $2)`, size, data)
	b.Queue(`INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
		levels, indexes, hashes)
	b.Queue(`UPDATE log_state SET size = $1, hashes = $2 WHERE id = 1`, size+1, bytes.Join(tree.RangeHashes(), nil))
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, what := range []string{"store record", "store log nodes", "save log state"} {
		if _, err := br.Exec(); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
	}
	return rec.Index, br.Close()
}

// lockLogState takes the log's lock and then reads the log's size and
// compact range. The read is a statement of its own, sent after the lock's
// in the same round trip: at READ COMMITTED it sees what the lock's
// previous holder committed.
func lockLogState(ctx context.Context, tx pgx.Tx) (int64, *audit.Tree, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, 0)`, lockLog)
	b.Queue(`SELECT size, hashes FROM log_state WHERE id = 1`)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, nil, fmt.Errorf("take log lock: %w", err)
	}
	var (
		size int64
		rng  []byte
	)
	if err := br.QueryRow().Scan(&size, &rng); err != nil {
		return 0, nil, fmt.Errorf("read log state: %w", err)
	}
	tree, err := restoreTree(size, rng)
	if err != nil {
		return 0, nil, err
	}
	return size, tree, br.Close()
}

// restoreTree returns the tree of the given size whose compact range hashes
// are rng, concatenated.
func restoreTree(size int64, rng []byte) (*audit.Tree, error) {
	if len(rng)%hashSize != 0 {
		return nil, fmt.Errorf("log state: range of %d bytes is not a list of hashes", len(rng))
	}
	var hashes [][]byte
	for b := rng; len(b) > 0; b = b[hashSize:] {
		hashes = append(hashes, b[:hashSize])
	}
	tree, err := audit.NewTree(uint64(size), hashes)
	if err != nil {
		return nil, fmt.Errorf("log state: %w", err)
	}
	return tree, nil
}

// maybeAppend appends rec within tx if it is not nil.
func maybeAppend(ctx context.Context, tx pgx.Tx, rec *audit.Record) error {
	if rec == nil {
		return nil
	}
	_, err := appendRecord(ctx, tx, rec)
	return err
}

// AppendDecision implements store.DecisionLog.
func (s *Store) AppendDecision(ctx context.Context, rec *audit.Record, notices []store.Notice) (uint64, error) {
	var idx uint64
	err := s.update(ctx, "append decision", func(tx pgx.Tx) error {
		var err error
		idx, err = appendDecision(ctx, tx, rec, notices)
		return err
	})
	return idx, err
}

// appendDecision stores rec's owner notices and appends rec to the log,
// within tx, and returns rec's index.
func appendDecision(ctx context.Context, tx pgx.Tx, rec *audit.Record, notices []store.Notice) (uint64, error) {
	if err := insertNotices(ctx, tx, notices); err != nil {
		return 0, err
	}
	return appendRecord(ctx, tx, rec)
}

// insertNotices stores owner notices within tx.
func insertNotices(ctx context.Context, tx pgx.Tx, notices []store.Notice) error {
	for _, n := range notices {
		if _, err := tx.Exec(ctx, `INSERT INTO notices (owner, list, action, requester, requester_list, entries, purpose, case_ref, time, decision_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, n.Owner, n.List, n.Action, n.Requester, n.RequesterList, int64(n.Entries),
			n.Purpose, n.CaseRef, timestamp(n.Time), n.DecisionID); err != nil {
			return fmt.Errorf("store notice: %w", err)
		}
	}
	return nil
}

// CheckUse implements store.CheckUse.
func (s *Store) CheckUse(ctx context.Context, agency, day string) (uint64, error) {
	var n uint64
	err := s.view(ctx, "check use", func(tx pgx.Tx) error {
		var err error
		n, err = checkUse(ctx, tx, agency, day)
		return err
	})
	return n, err
}

func checkUse(ctx context.Context, tx pgx.Tx, agency, day string) (uint64, error) {
	var n int64
	err := tx.QueryRow(ctx, `SELECT entries FROM check_use WHERE agency = $1 AND day = $2`, agency, day).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(n), err
}

// AppendCheckDecision implements store.CheckUse. The charge is one
// conditional upsert, which holds the agency's row for the day until the
// transaction ends: replicas charging at once are serialized, and none can
// take the use above limit.
func (s *Store) AppendCheckDecision(ctx context.Context, rec *audit.Record, notices []store.Notice, agency, day string, entries, limit uint64) error {
	if entries > math.MaxInt64 || limit > math.MaxInt64 {
		return fmt.Errorf("append check decision: %w: entries %d, limit %d", store.ErrInvalid, entries, limit)
	}
	return s.update(ctx, "append check decision", func(tx pgx.Tx) error {
		charged := false
		if entries <= limit {
			err := tx.QueryRow(ctx, `INSERT INTO check_use AS c (agency, day, entries) VALUES ($1, $2, $3)
				ON CONFLICT (agency, day) DO UPDATE SET entries = c.entries + excluded.entries
				WHERE c.entries::numeric + excluded.entries <= $4
				RETURNING true`, agency, day, int64(entries), int64(limit)).Scan(&charged)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if !charged {
			used, err := checkUse(ctx, tx, agency, day)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %s checked %d entries on %s; %d more exceed the limit of %d", store.ErrExhausted, agency, used, day, entries, limit)
		}
		if err := insertNotices(ctx, tx, notices); err != nil {
			return err
		}
		_, err := appendRecord(ctx, tx, rec)
		return err
	})
}

// AppendDecisions implements store.DecisionLog.
func (s *Store) AppendDecisions(ctx context.Context, recs []*audit.Record) error {
	return s.update(ctx, "append decisions", func(tx pgx.Tx) error {
		for i, rec := range recs {
			if _, err := appendRecord(ctx, tx, rec); err != nil {
				return fmt.Errorf("record %d of %d: %w", i, len(recs), err)
			}
		}
		return nil
	})
}

// LogHead implements store.DecisionLog.
func (s *Store) LogHead(ctx context.Context) (uint64, []byte, error) {
	var size int64
	var rng []byte
	err := s.view(ctx, "log head", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT size, hashes FROM log_state WHERE id = 1`).Scan(&size, &rng)
	})
	if err != nil {
		return 0, nil, err
	}
	tree, err := restoreTree(size, rng)
	if err != nil {
		return 0, nil, fmt.Errorf("log head: %w", err)
	}
	root, err := tree.Root()
	return uint64(size), root, err
}

// LogRecords implements store.DecisionLog.
func (s *Store) LogRecords(ctx context.Context, start uint64, limit int) ([][]byte, error) {
	if start > math.MaxInt64 || limit <= 0 {
		return nil, fmt.Errorf("log records: %w: start %d, limit %d", store.ErrInvalid, start, limit)
	}
	var out [][]byte
	err := s.view(ctx, "log records", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT idx, record FROM log_records WHERE idx >= $1 ORDER BY idx LIMIT $2`, int64(start), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		want := int64(start)
		for rows.Next() {
			var idx int64
			var rec []byte
			if err := rows.Scan(&idx, &rec); err != nil {
				return err
			}
			if idx != want {
				// A gap is what a deleted record looks like; report it
				// rather than silently renumbering.
				return fmt.Errorf("record %d is missing from the log", want)
			}
			out = append(out, rec)
			want++
		}
		return rows.Err()
	})
	return out, err
}

// Nodes implements store.DecisionLog and audit.NodeReader.
func (s *Store) Nodes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	levels := make([]int16, len(ids))
	indexes := make([]int64, len(ids))
	for i, id := range ids {
		if id.Index > math.MaxInt64 || id.Level > math.MaxInt16 {
			return nil, fmt.Errorf("log nodes: node %d/%d out of range", id.Level, id.Index)
		}
		levels[i], indexes[i] = int16(id.Level), int64(id.Index)
	}
	out := make([][]byte, len(ids))
	err := s.view(ctx, "log nodes", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT n.hash FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY AS q (level, idx, ord)
			LEFT JOIN log_nodes AS n ON n.level = q.level AND n.idx = q.idx ORDER BY q.ord`, levels, indexes)
		if err != nil {
			return err
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			if err := rows.Scan(&out[i]); err != nil {
				return err
			}
			if out[i] == nil {
				return fmt.Errorf("%w: log node %d/%d", store.ErrNotFound, ids[i].Level, ids[i].Index)
			}
		}
		return rows.Err()
	})
	return out, err
}

// PutCheckpoint implements store.DecisionLog.
func (s *Store) PutCheckpoint(ctx context.Context, size uint64, text []byte) error {
	if size > math.MaxInt64 {
		return fmt.Errorf("put checkpoint: %w: size %d", store.ErrInvalid, size)
	}
	return s.update(ctx, "put checkpoint", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO checkpoints (size, checkpoint) VALUES ($1, $2)
			ON CONFLICT (size) DO UPDATE SET checkpoint = excluded.checkpoint`, int64(size), text)
		return err
	})
}

// LatestCheckpoint implements store.DecisionLog.
func (s *Store) LatestCheckpoint(ctx context.Context) (uint64, []byte, error) {
	var size int64
	var text []byte
	err := s.view(ctx, "latest checkpoint", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT size, checkpoint FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &text)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	return uint64(size), text, err
}
