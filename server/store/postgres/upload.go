package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// upload is the row of an upload, found by owner, list name and upload id.
type upload struct {
	id          int64
	state       int16
	staged      int64
	kind, keyID string
}

// uploadSQL selects the row of upload $3 of list $2 of owner $1.
const uploadSQL = `SELECT id, state, staged, kind, key_id FROM lists WHERE owner = $1 AND name = $2 AND upload_id = $3`

// findUpload returns the upload's row, or store.ErrNotFound.
func findUpload(ctx context.Context, tx pgx.Tx, owner, list, uploadID string) (upload, error) {
	return scanUpload(tx.QueryRow(ctx, uploadSQL, owner, list, uploadID), owner, list, uploadID)
}

// lockUpload is findUpload that also locks the row until the transaction
// ends, so that the upload's batches and state change in one transaction at
// a time, whichever replica runs it. If another transaction deletes the row
// meanwhile, the upload is not found.
func lockUpload(ctx context.Context, tx pgx.Tx, owner, list, uploadID string) (upload, error) {
	return scanUpload(tx.QueryRow(ctx, uploadSQL+` FOR UPDATE`, owner, list, uploadID), owner, list, uploadID)
}

func scanUpload(row pgx.Row, owner, list, uploadID string) (upload, error) {
	var u upload
	err := row.Scan(&u.id, &u.state, &u.staged, &u.kind, &u.keyID)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("%w: upload %q of list %q of %q", store.ErrNotFound, uploadID, list, owner)
	}
	return u, err
}

// BeginUpload implements store.Store. If another replica begins the same
// upload at the same time, one inserts it and the other resumes it.
func (s *Store) BeginUpload(ctx context.Context, u store.Upload) error {
	const op = "begin upload"
	if err := listrow.CheckNames(u.Owner, u.List, u.ID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	m, err := listrow.Encode(u)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.update(ctx, op, func(tx pgx.Tx) error {
		err := resumeUpload(ctx, tx, u, m)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO lists (owner, name, upload_id, state, begun_at, `+metaColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (owner, name, upload_id) DO NOTHING RETURNING id`,
			append([]any{u.Owner, u.List, u.ID, stateOpen, timestamp(time.Now())}, metaArgs(m)...)...).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// Another transaction inserted the upload after our first look
			// and has committed: this statement sees it.
			return resumeUpload(ctx, tx, u, m)
		}
		if err != nil {
			return err
		}
		if id > maxListID {
			return errors.New("list version ids exhausted")
		}
		return nil
	})
}

// resumeUpload checks that the held upload u can be resumed with metadata
// m. It returns pgx.ErrNoRows if there is no such upload.
func resumeUpload(ctx context.Context, tx pgx.Tx, u store.Upload, m listrow.Meta) error {
	var (
		l     store.List
		state int16
	)
	err := scanListInto(tx.QueryRow(ctx, `SELECT `+listColumns+`, state FROM lists
		WHERE owner = $1 AND name = $2 AND upload_id = $3`, u.Owner, u.List, u.ID), &l, &state)
	if err != nil {
		return err
	}
	if state == stateSuperseded {
		return listrow.ErrSuperseded(u.ID)
	}
	held, err := listrow.Encode(store.Upload{Owner: l.Owner, List: l.Name, Meta: l})
	if err != nil {
		return fmt.Errorf("upload %q: stored metadata: %w", u.ID, err)
	}
	if held != m {
		return fmt.Errorf("%w: upload %q resumed with different list metadata", store.ErrConflict, u.ID)
	}
	return nil
}

// PutBatch implements store.Store. It locks the upload's row, so a batch
// sent to two replicas at once is written by one and reported as a
// duplicate by the other.
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
	digest := batchDigest(entries)
	var duplicate bool
	err := s.update(ctx, op, func(tx pgx.Tx) error {
		u, err := lockUpload(ctx, tx, owner, list, uploadID)
		if err != nil {
			return err
		}
		if u.state == stateSuperseded {
			return listrow.ErrSuperseded(uploadID)
		}
		var (
			n    int64
			held []byte
		)
		err = tx.QueryRow(ctx, `SELECT entries, digest FROM batches WHERE list_id = $1 AND seq = $2`,
			u.id, int64(seq)).Scan(&n, &held)
		switch {
		case err == nil:
			if n != int64(len(entries)) || !bytes.Equal(held, digest) {
				return fmt.Errorf("%w: batch %d already holds different entries", store.ErrConflict, seq)
			}
			duplicate = true
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if u.state == stateCommitted {
			return fmt.Errorf("%w: upload %q is committed and has no batch %d", store.ErrConflict, uploadID, seq)
		}
		if u.staged+int64(len(entries)) > maxPos+1 {
			return fmt.Errorf("%w: a list holds at most %d entries", store.ErrInvalid, maxPos+1)
		}
		return insertBatch(ctx, tx, u.id, int64(seq), entries, digest)
	})
	return duplicate, err
}

// insertBatch stores batch seq of upload id: its digest, its tokens, and
// the upload's new count of staged entries.
func insertBatch(ctx context.Context, tx pgx.Tx, id, seq int64, entries []store.Entry, digest []byte) error {
	if _, err := tx.Exec(ctx, `INSERT INTO batches (list_id, seq, entries, digest) VALUES ($1, $2, $3, $4)`,
		id, seq, len(entries), digest); err != nil {
		return err
	}
	if len(entries) > 0 {
		listID := int32(id) // id <= maxListID
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tokens"}, []string{"ref", "list_id", "token"},
			pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
				return []any{int64(entries[i].Ref), listID, entries[i].Token}, nil
			})); err != nil {
			return fmt.Errorf("store tokens: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `UPDATE lists SET staged = staged + $1 WHERE id = $2`, len(entries), id)
	return err
}

// batchDigest returns the SHA-256 of the entries' refs (8 bytes,
// big-endian) and tokens, in order: what PutBatch compares a batch sent
// again with.
func batchDigest(entries []store.Entry) []byte {
	h := sha256.New()
	var ref [8]byte
	for _, e := range entries {
		binary.BigEndian.PutUint64(ref[:], e.Ref)
		h.Write(ref[:])
		h.Write(e.Token)
	}
	return h.Sum(nil)
}

// UploadStatus implements store.Store.
func (s *Store) UploadStatus(ctx context.Context, owner, list, uploadID string) ([]uint64, bool, error) {
	var (
		seqs      []uint64
		committed bool
	)
	err := s.view(ctx, "upload status", func(tx pgx.Tx) error {
		u, err := findUpload(ctx, tx, owner, list, uploadID)
		if err != nil {
			return err
		}
		if u.state == stateSuperseded {
			return listrow.ErrSuperseded(uploadID)
		}
		committed = u.state == stateCommitted
		held, err := collectIDs(tx.Query(ctx, `SELECT seq FROM batches WHERE list_id = $1 ORDER BY seq`, u.id))
		if err != nil {
			return err
		}
		for _, seq := range held {
			seqs = append(seqs, uint64(seq))
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return seqs, committed, nil
}

// CommitUpload implements store.Store. It takes the list's lock, so that
// commits of one list are serialized across replicas, then the upload's
// row lock, so that no batch lands while it is checked, then the
// lockMatches locks of the new and the superseded versions' kinds and key
// ids, whose pairs it changes (see findMatches). When the commit
// supersedes a version, it runs VACUUM after erasing its tokens (see
// Store.vacuum).
func (s *Store) CommitUpload(ctx context.Context, owner, list, uploadID string, totalBatches, totalEntries uint64, at time.Time, rec *audit.Record) (store.List, error) {
	const op = "commit upload"
	if totalBatches > math.MaxInt64 || totalEntries > maxPos+1 {
		return store.List{}, fmt.Errorf("%s: %w: totals out of range", op, store.ErrInvalid)
	}
	var (
		l          store.List
		superseded bool
	)
	err := s.update(ctx, op, func(tx pgx.Tx) error {
		superseded = false
		if err := lock(ctx, tx, lockList, listKey(owner, list)); err != nil {
			return err
		}
		u, err := lockUpload(ctx, tx, owner, list, uploadID)
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
		old, err := supersede(ctx, tx, owner, list, u)
		if err != nil {
			return err
		}
		superseded = old != 0
		if _, err := tx.Exec(ctx, `UPDATE lists SET state = $1, entries = $2, committed_at = $3 WHERE id = $4`,
			stateCommitted, int64(totalEntries), timestamp(at), u.id); err != nil {
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
		s.vacuum(ctx)
	}
	if err == nil {
		s.summarize(ctx)
	}
	return l, err
}

// supersede takes the lockMatches locks of upload u's kind and key id and
// of the owner's committed version of list, if there is one, then erases
// that version's tokens and batches, marks it superseded and returns its
// id (else 0). Its pairs stay until findMatches has found the
// new version's, which keep the alerts of the matches the two share, and
// then erases them (see matchrow.Announce). The caller holds the list's lock.
func supersede(ctx context.Context, tx pgx.Tx, owner, list string, u upload) (int64, error) {
	v, found, err := versionOf(ctx, tx, owner, list)
	if err != nil {
		return 0, err
	}
	vs := []matchrow.Version{{Kind: u.kind, KeyID: u.keyID}}
	if found {
		vs = append(vs, v)
	}
	if err := lockKinds(ctx, tx, vs...); err != nil || !found {
		return 0, err
	}
	old := v.ID
	if _, err := eraseTokens(ctx, tx, old); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM batches WHERE list_id = $1`, old); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE lists SET state = $1 WHERE id = $2`, stateSuperseded, old); err != nil {
		return 0, err
	}
	return old, nil
}

// maxMissing is how many missing batch numbers an ErrIncomplete names.
const maxMissing = 10

// checkComplete returns store.ErrIncomplete unless list version id holds
// exactly batches 0..total-1 with entries entries in all.
func checkComplete(ctx context.Context, tx pgx.Tx, id, total, entries int64) error {
	var count, maxSeq, sum int64
	if err := tx.QueryRow(ctx,
		`SELECT count(*), coalesce(max(seq), -1), coalesce(sum(entries), 0)::bigint FROM batches WHERE list_id = $1`,
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
	seqs, err := collectIDs(tx.Query(ctx, `SELECT seq FROM batches WHERE list_id = $1 ORDER BY seq`, id))
	if err != nil {
		return err
	}
	var missing []string
	next := int64(0)
	for _, seq := range seqs {
		for ; next < seq && len(missing) < maxMissing; next++ {
			missing = append(missing, fmt.Sprint(next))
		}
		next = seq + 1
	}
	for ; next < total && len(missing) < maxMissing; next++ {
		missing = append(missing, fmt.Sprint(next))
	}
	if total-count > int64(len(missing)) {
		missing = append(missing, "…")
	}
	return fmt.Errorf("%w: missing %d of %d batches: %s", store.ErrIncomplete, total-count, total, strings.Join(missing, ", "))
}

// PurgeUploads implements store.Store. It locks the rows it purges, in id
// order, so that replicas purging at once each drop and count an upload
// once, and an upload committed meanwhile is kept.
func (s *Store) PurgeUploads(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.update(ctx, "purge uploads", func(tx pgx.Tx) error {
		n = 0
		ids, err := collectIDs(tx.Query(ctx, `SELECT id FROM lists WHERE state = $1 AND begun_at < $2 ORDER BY id FOR UPDATE`,
			stateOpen, timestamp(before)))
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := eraseTokens(ctx, tx, id); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM lists WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.vacuum(ctx)
	}
	return n, nil
}

// eraseTokens deletes the tokens of list version id and returns how many
// there were.
func eraseTokens(ctx context.Context, tx pgx.Tx, id int64) (uint64, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE list_id = $1::bigint`, id)
	if err != nil {
		return 0, err
	}
	return uint64(tag.RowsAffected()), nil
}

// collectIDs returns the single integer column of the rows of a query,
// called as collectIDs(tx.Query(…)).
func collectIDs(rows pgx.Rows, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
