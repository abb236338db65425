package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// metaColumns are the columns of lists that hold a listrow.Meta, in the
// order of metaArgs and metaDest.
const metaColumns = `kind, key_id, category, jurisdiction, expires_at, consent_roles, ngo_visible, normalization`

// listColumns are the columns of lists that scanList reads.
const listColumns = `id, owner, name, upload_id, entries, committed_at, ` + metaColumns

func metaArgs(m listrow.Meta) []any {
	return []any{m.Kind, m.KeyID, m.Category, m.Jurisdiction, m.ExpiresAt, m.ConsentRoles, m.NGOVisible, m.Normalization}
}

func metaDest(m *listrow.Meta) []any {
	return []any{&m.Kind, &m.KeyID, &m.Category, &m.Jurisdiction, &m.ExpiresAt, &m.ConsentRoles, &m.NGOVisible, &m.Normalization}
}

// scanList reads a row of listColumns.
func scanList(row interface{ Scan(...any) error }) (store.List, error) {
	var (
		l         store.List
		m         listrow.Meta
		entries   int64
		committed int64
	)
	if err := row.Scan(append([]any{&l.ID, &l.Owner, &l.Name, &l.UploadID, &entries, &committed}, metaDest(&m)...)...); err != nil {
		return store.List{}, err
	}
	l.Entries = uint64(entries)
	l.CommittedAt = listrow.FromMicros(committed)
	if err := m.Apply(&l); err != nil {
		return store.List{}, err
	}
	return l, nil
}

// getList returns list version id, whatever its state.
func getList(ctx context.Context, tx *sql.Tx, id int64) (store.List, error) {
	return scanList(tx.QueryRowContext(ctx, `SELECT `+listColumns+` FROM lists WHERE id = ?`, id))
}

// queryAll returns every row the query selects, each read by scan.
func queryAll[T any](ctx context.Context, tx *sql.Tx, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// viewAll runs one query in its own read-only transaction and returns
// every row it selects, each read by scan.
func viewAll[T any](ctx context.Context, s *Store, op string, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := s.view(ctx, op, func(tx *sql.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, scan, query, args...)
		return err
	})
	return out, err
}

// GetList implements store.Store.
func (s *Store) GetList(ctx context.Context, owner, name string) (store.List, error) {
	var l store.List
	err := s.view(ctx, "get list", func(tx *sql.Tx) error {
		var err error
		l, err = scanList(tx.QueryRowContext(ctx, `SELECT `+listColumns+` FROM lists
		WHERE owner = ? AND name = ? AND state = ?`, owner, name, stateCommitted))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: list %q of %q", store.ErrNotFound, name, owner)
		}
		return err
	})
	return l, err
}

// Lists implements store.Store.
func (s *Store) Lists(ctx context.Context, owner string) ([]store.List, error) {
	return viewAll(ctx, s, "list lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE owner = ? AND state = ? ORDER BY name`, owner, stateCommitted)
}

// VisibleLists implements store.Store.
func (s *Store) VisibleLists(ctx context.Context, kind, keyID string) ([]store.List, error) {
	return viewAll(ctx, s, "visible lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE kind = ? AND key_id = ? AND state = ? ORDER BY id`, kind, keyID, stateCommitted)
}

// ExpiredLists implements store.Store.
func (s *Store) ExpiredLists(ctx context.Context, now time.Time) ([]store.List, error) {
	return viewAll(ctx, s, "expired lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE state = ? AND expires_at > 0 AND expires_at < ? ORDER BY id`, stateCommitted, listrow.Micros(now))
}

// DeleteList implements store.Store. After the deletion it truncates the
// write-ahead log (see truncateWAL).
func (s *Store) DeleteList(ctx context.Context, owner, name string, rec *audit.Record) (uint64, error) {
	var n uint64
	err := s.update(ctx, "delete list", func(tx *sql.Tx) error {
		ids, err := collectIDs(tx.QueryContext(ctx, `SELECT id FROM lists WHERE owner = ? AND name = ?`, owner, name))
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("%w: list %q of %q", store.ErrNotFound, name, owner)
		}
		for _, id := range ids {
			c, err := eraseTokens(ctx, tx, id)
			if err != nil {
				return err
			}
			n += c
			if err := matchrow.ErasePairs(ctx, mtx{tx}, id); err != nil {
				return err
			}
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM lists WHERE owner = ? AND name = ?`, owner, name); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
	if err != nil {
		return 0, err
	}
	s.truncateWAL(ctx)
	return n, nil
}

// truncateWAL checkpoints the write-ahead log into the database file and
// truncates it, so that tokens just erased (secure_delete zeroes them in
// the database file) do not linger in the log's frames. It runs after the
// erasing transaction committed, even if ctx is done by now; its failure
// (a reader still holding an older snapshot) only delays the overwriting of
// old frames until a later checkpoint and does not fail the call.
func (s *Store) truncateWAL(ctx context.Context) {
	_, _ = s.w.ExecContext(context.WithoutCancel(ctx), `PRAGMA wal_checkpoint(TRUNCATE)`)
}

// checkSQL finds the entries of committed lists with kind ?3 and key id ?4
// that hold token ?2, whose first 8 bytes are ?1, and are not retracted.
var checkSQL = fmt.Sprintf(`
SELECT l.id, t.ref
FROM tokens AS t CROSS JOIN lists AS l
WHERE substr(t.token, 1, 8) = ?1
	AND t.token = ?2
	AND l.id = t.id >> %d
	AND l.state = %d AND l.kind = ?3 AND l.key_id = ?4
	AND NOT EXISTS (SELECT 1 FROM retractions AS r WHERE r.list_id = l.id AND r.ref = t.ref)`, posBits, stateCommitted)

// Overlaps implements store.Store. It reads the match sets stored at
// commit from one snapshot; fn runs while the snapshot is held and may call the
// store's other methods.
func (s *Store) Overlaps(ctx context.Context, listID int64, fn func(entryRef uint64, counterpartyListID int64) error) error {
	return s.view(ctx, "overlaps", func(tx *sql.Tx) error {
		return matchrow.Overlaps(ctx, mtx{tx}, listID, fn)
	})
}

// Check implements store.Store. It only reads, on a query-only connection.
func (s *Store) Check(ctx context.Context, kind, keyID string, tokens [][]byte, fn func(index int, counterpartyListID int64) error) error {
	const op = "check"
	for i, t := range tokens {
		if len(t) != store.TokenSize {
			return fmt.Errorf("%s: %w: token %d is %d bytes, want %d", op, store.ErrInvalid, i, len(t), store.TokenSize)
		}
	}
	c, err := matchrow.NewChecker(kind, len(tokens), fn)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.view(ctx, op, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, checkSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, t := range tokens {
			hits, err := collectHits(stmt.QueryContext(ctx, t[:8], t, kind, keyID))
			if err != nil {
				return err
			}
			for _, h := range hits {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := c.Hit(i, h.list, h.ref); err != nil {
					return err
				}
			}
		}
		return c.Done()
	})
}

// hit is an entry of a committed list version that holds a token.
type hit struct {
	list int64
	ref  uint64
}

// collectHits returns the rows (list id, ref) of a query.
func collectHits(rows *sql.Rows, err error) ([]hit, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hit
	for rows.Next() {
		var h hit
		var ref int64
		if err := rows.Scan(&h.list, &ref); err != nil {
			return nil, err
		}
		h.ref = uint64(ref)
		out = append(out, h)
	}
	return out, rows.Err()
}
