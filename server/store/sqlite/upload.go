package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// upload is the row of an upload, found by owner, list name and upload id.
type upload struct {
	id      int64
	state   int
	nextPos int64
}

// findUpload returns the upload's row, or store.ErrNotFound.
func findUpload(ctx context.Context, tx *sql.Tx, owner, list, uploadID string) (upload, error) {
	var u upload
	err := tx.QueryRowContext(ctx,
		`SELECT id, state, next_pos FROM lists WHERE owner = ? AND name = ? AND upload_id = ?`,
		owner, list, uploadID).Scan(&u.id, &u.state, &u.nextPos)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: upload %q of list %q of %q", store.ErrNotFound, uploadID, list, owner)
	}
	return u, err
}

// BeginUpload implements store.Store.
func (s *Store) BeginUpload(ctx context.Context, u store.Upload) error {
	const op = "begin upload"
	if err := listrow.CheckNames(u.Owner, u.List, u.ID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	m, err := listrow.Encode(u)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.update(ctx, op, func(tx *sql.Tx) error {
		var (
			id    int64
			state int
			held  listrow.Meta
		)
		err := tx.QueryRowContext(ctx, `SELECT id, state, `+metaColumns+` FROM lists
			WHERE owner = ? AND name = ? AND upload_id = ?`, u.Owner, u.List, u.ID).
			Scan(append([]any{&id, &state}, metaDest(&held)...)...)
		switch {
		case err == nil:
			if state == stateSuperseded {
				return listrow.ErrSuperseded(u.ID)
			}
			if held != m {
				return fmt.Errorf("%w: upload %q resumed with different list metadata", store.ErrConflict, u.ID)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO lists (owner, name, upload_id, state, begun_at, `+metaColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			append([]any{u.Owner, u.List, u.ID, stateOpen, listrow.Micros(time.Now())}, metaArgs(m)...)...)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		if id > maxListID {
			return errors.New("list version ids exhausted")
		}
		return nil
	})
}

// PutBatch implements store.Store.
func (s *Store) PutBatch(ctx context.Context, owner, list, uploadID string, seq uint64, entries []store.Entry) (bool, error) {
	const op = "put batch"
	if err := listrow.CheckNames(owner, list, uploadID); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if seq > math.MaxInt64 {
		return false, fmt.Errorf("%s: %w: batch sequence number out of range", op, store.ErrInvalid)
	}
	for i, e := range entries {
		if len(e.Token) != store.TokenSize {
			return false, fmt.Errorf("%s: %w: entry %d: token is %d bytes, want %d", op, store.ErrInvalid, i, len(e.Token), store.TokenSize)
		}
	}
	var duplicate bool
	err := s.update(ctx, op, func(tx *sql.Tx) error {
		u, err := findUpload(ctx, tx, owner, list, uploadID)
		if err != nil {
			return err
		}
		if u.state == stateSuperseded {
			return listrow.ErrSuperseded(uploadID)
		}
		var first, n int64
		err = tx.QueryRowContext(ctx, `SELECT first_pos, entries FROM batches WHERE list_id = ? AND seq = ?`,
			u.id, int64(seq)).Scan(&first, &n)
		switch {
		case err == nil:
			same, err := batchEqual(ctx, tx, u.id, first, n, entries)
			if err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("%w: batch %d already holds different entries", store.ErrConflict, seq)
			}
			duplicate = true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if u.state == stateCommitted {
			return fmt.Errorf("%w: upload %q is committed and has no batch %d", store.ErrConflict, uploadID, seq)
		}
		if u.nextPos+int64(len(entries)) > maxPos+1 {
			return fmt.Errorf("%w: a list holds at most %d entries", store.ErrInvalid, maxPos+1)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO batches (list_id, seq, first_pos, entries) VALUES (?, ?, ?, ?)`,
			u.id, int64(seq), u.nextPos, len(entries)); err != nil {
			return err
		}
		if err := insertTokens(ctx, tx, u.id<<posBits|u.nextPos, entries); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE lists SET next_pos = next_pos + ? WHERE id = ?`, len(entries), u.id)
		return err
	})
	return duplicate, err
}

// insertRows is how many entries one INSERT statement writes.
const insertRows = 200

// insertTokens writes entries under consecutive rowids from first on.
func insertTokens(ctx context.Context, tx *sql.Tx, first int64, entries []store.Entry) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, 3*insertRows)
	for len(entries) > 0 {
		n := min(len(entries), insertRows)
		args = args[:0]
		for i, e := range entries[:n] {
			args = append(args, first+int64(i), int64(e.Ref), e.Token)
		}
		var err error
		if n == insertRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertSQL(insertRows)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(n), args...)
		}
		if err != nil {
			return err
		}
		entries, first = entries[n:], first+int64(n)
	}
	return nil
}

// insertSQL returns an INSERT of n token rows.
func insertSQL(n int) string {
	return "INSERT INTO tokens (id, ref, token) VALUES " + strings.Repeat("(?, ?, ?), ", n-1) + "(?, ?, ?)"
}

// batchEqual reports whether the n entries stored from position first of
// list version id are exactly entries.
func batchEqual(ctx context.Context, tx *sql.Tx, id, first, n int64, entries []store.Entry) (bool, error) {
	if n != int64(len(entries)) {
		return false, nil
	}
	lo := id<<posBits | first
	rows, err := tx.QueryContext(ctx, `SELECT ref, token FROM tokens WHERE id BETWEEN ? AND ? ORDER BY id`, lo, lo+n-1)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	i := 0
	for ; rows.Next(); i++ {
		var (
			ref   int64
			token []byte
		)
		if err := rows.Scan(&ref, &token); err != nil {
			return false, err
		}
		if i >= len(entries) || uint64(ref) != entries[i].Ref || !bytes.Equal(token, entries[i].Token) {
			return false, nil
		}
	}
	return i == len(entries), rows.Err()
}

// UploadStatus implements store.Store.
func (s *Store) UploadStatus(ctx context.Context, owner, list, uploadID string) ([]uint64, bool, error) {
	var (
		seqs      []uint64
		committed bool
	)
	err := s.view(ctx, "upload status", func(tx *sql.Tx) error {
		u, err := findUpload(ctx, tx, owner, list, uploadID)
		if err != nil {
			return err
		}
		if u.state == stateSuperseded {
			return listrow.ErrSuperseded(uploadID)
		}
		committed = u.state == stateCommitted
		rows, err := tx.QueryContext(ctx, `SELECT seq FROM batches WHERE list_id = ? ORDER BY seq`, u.id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				return err
			}
			seqs = append(seqs, uint64(seq))
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, err
	}
	return seqs, committed, nil
}

// CommitUpload implements store.Store. When the commit supersedes a version,
// it truncates the write-ahead log after erasing its tokens (see
// truncateWAL).
func (s *Store) CommitUpload(ctx context.Context, owner, list, uploadID string, totalBatches, totalEntries uint64, at time.Time, rec *audit.Record) (store.List, error) {
	const op = "commit upload"
	if totalBatches > math.MaxInt64 || totalEntries > maxPos+1 {
		return store.List{}, fmt.Errorf("%s: %w: totals out of range", op, store.ErrInvalid)
	}
	var (
		l          store.List
		superseded bool
	)
	err := s.update(ctx, op, func(tx *sql.Tx) error {
		superseded = false
		u, err := findUpload(ctx, tx, owner, list, uploadID)
		if err != nil {
			return err
		}
		switch u.state {
		case stateSuperseded:
			return listrow.ErrSuperseded(uploadID)
		case stateCommitted:
			if l, err = getList(ctx, tx, u.id); err != nil {
				return err
			}
			return maybeAppend(ctx, tx, rec)
		}
		if err := checkComplete(ctx, tx, u.id, int64(totalBatches), int64(totalEntries)); err != nil {
			return err
		}
		old, err := supersede(ctx, tx, owner, list)
		if err != nil {
			return err
		}
		superseded = old != 0
		if _, err := tx.ExecContext(ctx, `UPDATE lists SET state = ?, entries = ?, committed_at = ? WHERE id = ?`,
			stateCommitted, int64(totalEntries), listrow.Micros(at), u.id); err != nil {
			return err
		}
		if l, err = getList(ctx, tx, u.id); err != nil {
			return err
		}
		v := matchrow.Version{ID: l.ID, Owner: l.Owner, Name: l.Name, Kind: l.Kind, KeyID: l.KeyID}
		if err := findMatches(ctx, tx, v, matchrow.AllRefsFrom, matchrow.AllRefsTo, old, at); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
	if err == nil && superseded {
		s.truncateWAL(ctx)
	}
	return l, err
}

// supersede erases the tokens and batches of the owner's committed version
// of list, if there is one, marks it superseded and returns its id (else
// 0). Its pairs stay until findMatches has found the new version's,
// which keep the alerts of the matches the two share, and then erases
// them (see matchrow.Announce).
func supersede(ctx context.Context, tx *sql.Tx, owner, list string) (int64, error) {
	var old int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM lists WHERE owner = ? AND name = ? AND state = ?`,
		owner, list, stateCommitted).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if _, err := eraseTokens(ctx, tx, old); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM batches WHERE list_id = ?`, old); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE lists SET state = ? WHERE id = ?`, stateSuperseded, old); err != nil {
		return 0, err
	}
	return old, nil
}

// maxMissing is how many missing batch numbers an ErrIncomplete names.
const maxMissing = 10

// checkComplete returns store.ErrIncomplete unless list version id holds
// exactly batches 0..total-1 with entries entries in all.
func checkComplete(ctx context.Context, tx *sql.Tx, id, total, entries int64) error {
	var count, maxSeq, sum int64
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*), coalesce(max(seq), -1), coalesce(sum(entries), 0) FROM batches WHERE list_id = ?`,
		id).Scan(&count, &maxSeq, &sum); err != nil {
		return err
	}
	if count == total && maxSeq == total-1 {
		if sum != entries {
			return fmt.Errorf("%w: the batches hold %d entries, not %d", store.ErrIncomplete, sum, entries)
		}
		return nil
	}
	if maxSeq >= total {
		return fmt.Errorf("%w: holds batch %d but only %d batches were declared", store.ErrIncomplete, maxSeq, total)
	}
	// Batches are missing: name the first few.
	rows, err := tx.QueryContext(ctx, `SELECT seq FROM batches WHERE list_id = ? ORDER BY seq`, id)
	if err != nil {
		return err
	}
	defer rows.Close()
	var missing []string
	next := int64(0)
	for rows.Next() && len(missing) < maxMissing {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return err
		}
		for ; next < seq && len(missing) < maxMissing; next++ {
			missing = append(missing, fmt.Sprint(next))
		}
		next = seq + 1
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for ; next < total && len(missing) < maxMissing; next++ {
		missing = append(missing, fmt.Sprint(next))
	}
	if total-count > int64(len(missing)) {
		missing = append(missing, "…")
	}
	return fmt.Errorf("%w: missing %d of %d batches: %s", store.ErrIncomplete, total-count, total, strings.Join(missing, ", "))
}

// PurgeUploads implements store.Store.
func (s *Store) PurgeUploads(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.update(ctx, "purge uploads", func(tx *sql.Tx) error {
		ids, err := collectIDs(tx.QueryContext(ctx, `SELECT id FROM lists WHERE state = ? AND begun_at < ?`, stateOpen, listrow.Micros(before)))
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := eraseTokens(ctx, tx, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM lists WHERE id = ?`, id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	if n > 0 {
		s.truncateWAL(ctx)
	}
	return n, err
}

// eraseTokens deletes the tokens of list version id and returns how many
// there were.
func eraseTokens(ctx context.Context, tx *sql.Tx, id int64) (uint64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE id BETWEEN ? AND ?`, id<<posBits, id<<posBits|maxPos)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return uint64(n), err
}

// collectIDs returns the single integer column of the rows of a query,
// called as collectIDs(tx.QueryContext(…)).
func collectIDs(rows *sql.Rows, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
