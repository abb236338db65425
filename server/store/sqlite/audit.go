package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/transparency-dev/merkle/compact"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
)

// hashSize is the size of an RFC 6962 SHA-256 hash.
const hashSize = 32

// appendRecord appends rec to the decision log within tx: it reads the
// compact range, assigns rec.Index, stores the canonical record and the
// completed Merkle nodes, and saves the new range.
func appendRecord(ctx context.Context, tx *sql.Tx, rec *audit.Record) (uint64, error) {
	var size int64
	var rng []byte
	if err := tx.QueryRowContext(ctx, `SELECT size, range FROM log_state WHERE id = 1`).Scan(&size, &rng); err != nil {
		return 0, fmt.Errorf("read log state: %w", err)
	}
	if len(rng)%hashSize != 0 {
		return 0, fmt.Errorf("log state: range of %d bytes is not a list of hashes", len(rng))
	}
	var hashes [][]byte
	for b := rng; len(b) > 0; b = b[hashSize:] {
		hashes = append(hashes, b[:hashSize])
	}
	tree, err := audit.NewTree(uint64(size), hashes)
	if err != nil {
		return 0, fmt.Errorf("log state: %w", err)
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO log_records (idx, record) VALUES (?, ?)`, size, data); err != nil {
		return 0, fmt.Errorf("store record: %w", err)
	}
	for _, n := range nodes {
		if n.Index > math.MaxInt64 {
			return 0, fmt.Errorf("log node index %d out of range", n.Index)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)`, n.Level, int64(n.Index), n.Hash); err != nil {
			return 0, fmt.Errorf("store log node: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE log_state SET size = ?, range = ? WHERE id = 1`,
		size+1, bytes.Join(tree.RangeHashes(), nil)); err != nil {
		return 0, fmt.Errorf("save log state: %w", err)
	}
	return rec.Index, nil
}

// maybeAppend appends rec within tx if it is not nil.
func maybeAppend(ctx context.Context, tx *sql.Tx, rec *audit.Record) error {
	if rec == nil {
		return nil
	}
	_, err := appendRecord(ctx, tx, rec)
	return err
}

// AppendDecision implements store.DecisionLog.
func (s *Store) AppendDecision(ctx context.Context, rec *audit.Record, notices []store.Notice) (uint64, error) {
	var idx uint64
	err := s.update(ctx, "append decision", func(tx *sql.Tx) error {
		var err error
		idx, err = appendDecision(ctx, tx, rec, notices)
		return err
	})
	return idx, err
}

// appendDecision appends rec to the log and stores its owner notices,
// within tx, and returns rec's index.
func appendDecision(ctx context.Context, tx *sql.Tx, rec *audit.Record, notices []store.Notice) (uint64, error) {
	idx, err := appendRecord(ctx, tx, rec)
	if err != nil {
		return 0, err
	}
	return idx, insertNotices(ctx, tx, notices)
}

// insertNotices stores owner notices within tx.
func insertNotices(ctx context.Context, tx *sql.Tx, notices []store.Notice) error {
	for _, n := range notices {
		if _, err := tx.ExecContext(ctx, `INSERT INTO notices (owner, list, action, requester, requester_list, entries, purpose, case_ref, time, decision_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n.Owner, n.List, n.Action, n.Requester, n.RequesterList, int64(n.Entries), n.Purpose, n.CaseRef, listrow.Micros(n.Time), n.DecisionID); err != nil {
			return fmt.Errorf("store notice: %w", err)
		}
	}
	return nil
}

// CheckUse implements store.CheckUse.
func (s *Store) CheckUse(ctx context.Context, agency, day string) (uint64, error) {
	var n uint64
	err := s.view(ctx, "check use", func(tx *sql.Tx) error {
		var err error
		n, err = checkUse(ctx, tx, agency, day)
		return err
	})
	return n, err
}

func checkUse(ctx context.Context, tx *sql.Tx, agency, day string) (uint64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT entries FROM check_use WHERE agency = ? AND day = ?`, agency, day).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return uint64(n), err
}

// AppendCheckDecision implements store.CheckUse.
func (s *Store) AppendCheckDecision(ctx context.Context, rec *audit.Record, notices []store.Notice, agency, day string, entries, limit uint64) error {
	if entries > math.MaxInt64 || limit > math.MaxInt64 {
		return fmt.Errorf("append check decision: %w: entries %d, limit %d", store.ErrInvalid, entries, limit)
	}
	return s.update(ctx, "append check decision", func(tx *sql.Tx) error {
		used, err := checkUse(ctx, tx, agency, day)
		if err != nil {
			return err
		}
		if used+entries > limit {
			return fmt.Errorf("%w: %s checked %d entries on %s; %d more exceed the limit of %d", store.ErrExhausted, agency, used, day, entries, limit)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO check_use (agency, day, entries) VALUES (?1, ?2, ?3)
			ON CONFLICT (agency, day) DO UPDATE SET entries = entries + ?3`, agency, day, int64(entries)); err != nil {
			return err
		}
		if _, err := appendRecord(ctx, tx, rec); err != nil {
			return err
		}
		return insertNotices(ctx, tx, notices)
	})
}

// AppendDecisions implements store.DecisionLog.
func (s *Store) AppendDecisions(ctx context.Context, recs []*audit.Record) error {
	return s.update(ctx, "append decisions", func(tx *sql.Tx) error {
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
	err := s.view(ctx, "log head", func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT size, range FROM log_state WHERE id = 1`).Scan(&size, &rng)
	})
	if err != nil {
		return 0, nil, err
	}
	var hashes [][]byte
	for b := rng; len(b) >= hashSize; b = b[hashSize:] {
		hashes = append(hashes, b[:hashSize])
	}
	tree, err := audit.NewTree(uint64(size), hashes)
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
	err := s.view(ctx, "log records", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT idx, record FROM log_records WHERE idx >= ? ORDER BY idx LIMIT ?`, int64(start), limit)
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
	out := make([][]byte, len(ids))
	err := s.view(ctx, "log nodes", func(tx *sql.Tx) error {
		for i, id := range ids {
			if id.Index > math.MaxInt64 {
				return fmt.Errorf("node %d/%d out of range", id.Level, id.Index)
			}
			err := tx.QueryRowContext(ctx, `SELECT hash FROM log_nodes WHERE level = ? AND idx = ?`, id.Level, int64(id.Index)).Scan(&out[i])
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: log node %d/%d", store.ErrNotFound, id.Level, id.Index)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// PutCheckpoint implements store.DecisionLog.
func (s *Store) PutCheckpoint(ctx context.Context, size uint64, text []byte) error {
	if size > math.MaxInt64 {
		return fmt.Errorf("put checkpoint: %w: size %d", store.ErrInvalid, size)
	}
	return s.update(ctx, "put checkpoint", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (size, checkpoint) VALUES (?, ?)
			ON CONFLICT (size) DO UPDATE SET checkpoint = excluded.checkpoint`, int64(size), text)
		return err
	})
}

// LatestCheckpoint implements store.DecisionLog.
func (s *Store) LatestCheckpoint(ctx context.Context) (uint64, []byte, error) {
	var size int64
	var text []byte
	err := s.view(ctx, "latest checkpoint", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT size, checkpoint FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &text)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	return uint64(size), text, err
}
