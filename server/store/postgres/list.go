package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
	"github.com/veilmatch/veilmatch/server/store/internal/listrow"
	"github.com/veilmatch/veilmatch/server/store/internal/matchrow"
)

// metaColumns are the columns of lists that hold a listrow.Meta, in the
// order of metaArgs.
const metaColumns = `kind, key_id, category, jurisdiction, expires_at, consent_roles, ngo_visible, normalization`

// listColumns are the columns of lists that scanList reads.
const listColumns = `id, owner, name, upload_id, entries, committed_at, ` + metaColumns

func metaArgs(m listrow.Meta) []any {
	return []any{m.Kind, m.KeyID, m.Category, m.Jurisdiction, timestamp(listrow.FromMicros(m.ExpiresAt)), m.ConsentRoles, m.NGOVisible, m.Normalization}
}

// scanList reads a row of listColumns.
func scanList(row pgx.Row) (store.List, error) {
	var l store.List
	err := scanListInto(row, &l)
	return l, err
}

// scanListInto reads a row of listColumns followed by the columns of extra.
func scanListInto(row pgx.Row, l *store.List, extra ...any) error {
	var (
		committed, expires pgtype.Timestamptz
		roles, norm        string
	)
	dest := []any{&l.ID, &l.Owner, &l.Name, &l.UploadID, &l.Entries, &committed,
		&l.Kind, &l.KeyID, &l.Category, &l.Jurisdiction, &expires, &roles, &l.Sharing.NGOVisible, &norm}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	l.CommittedAt, l.ExpiresAt = fromTimestamp(committed), fromTimestamp(expires)
	return listrow.DecodeJSON(l, roles, norm)
}

// timestamp returns t, truncated to the microsecond, as a timestamptz
// parameter; the zero time is NULL.
func timestamp(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: listrow.FromMicros(listrow.Micros(t)), Valid: true}
}

// fromTimestamp inverts timestamp, in UTC.
func fromTimestamp(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return listrow.FromMicros(ts.Time.UnixMicro())
}

// getList returns list version id, whatever its state.
func getList(ctx context.Context, tx pgx.Tx, id int64) (store.List, error) {
	return scanList(tx.QueryRow(ctx, `SELECT `+listColumns+` FROM lists WHERE id = $1`, id))
}

// queryAll returns every row the query selects, each read by scan.
func queryAll[T any](ctx context.Context, tx pgx.Tx, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := tx.Query(ctx, query, args...)
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
func viewAll[T any](ctx context.Context, s *Store, op string, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := s.view(ctx, op, func(tx pgx.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, scan, query, args...)
		return err
	})
	return out, err
}

// GetList implements store.Store.
func (s *Store) GetList(ctx context.Context, owner, name string) (store.List, error) {
	var l store.List
	err := s.view(ctx, "get list", func(tx pgx.Tx) error {
		var err error
		l, err = scanList(tx.QueryRow(ctx, `SELECT `+listColumns+` FROM lists
			WHERE owner = $1 AND name = $2 AND state = $3`, owner, name, stateCommitted))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: list %q of %q", store.ErrNotFound, name, owner)
		}
		return err
	})
	return l, err
}

// Lists implements store.Store.
func (s *Store) Lists(ctx context.Context, owner string) ([]store.List, error) {
	return viewAll(ctx, s, "list lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE owner = $1 AND state = $2 ORDER BY name`, owner, stateCommitted)
}

// VisibleLists implements store.Store.
func (s *Store) VisibleLists(ctx context.Context, kind, keyID string) ([]store.List, error) {
	return viewAll(ctx, s, "visible lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE kind = $1 AND key_id = $2 AND state = $3 ORDER BY id`, kind, keyID, stateCommitted)
}

// ExpiredLists implements store.Store.
func (s *Store) ExpiredLists(ctx context.Context, now time.Time) ([]store.List, error) {
	return viewAll(ctx, s, "expired lists", scanList, `SELECT `+listColumns+` FROM lists
		WHERE state = $1 AND expires_at < $2 ORDER BY id`, stateCommitted, timestamp(now))
}

// DeleteList implements store.Store. It locks the list's rows before erasing
// their tokens, so that no batch lands meanwhile, then the lockMatches lock
// of the committed version's kind and key id, whose pairs it erases, and
// runs VACUUM after the deletion (see Store.vacuum).
func (s *Store) DeleteList(ctx context.Context, owner, name string, rec *audit.Record) (uint64, error) {
	var n uint64
	err := s.update(ctx, "delete list", func(tx pgx.Tx) error {
		n = 0
		if err := lock(ctx, tx, lockList, listKey(owner, name)); err != nil {
			return err
		}
		ids, err := collectIDs(tx.Query(ctx, `SELECT id FROM lists WHERE owner = $1 AND name = $2 ORDER BY id FOR UPDATE`, owner, name))
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return fmt.Errorf("%w: list %q of %q", store.ErrNotFound, name, owner)
		}
		if v, found, err := versionOf(ctx, tx, owner, name); err != nil {
			return err
		} else if found {
			if err := lockKinds(ctx, tx, v); err != nil {
				return err
			}
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
		if _, err = tx.Exec(ctx, `DELETE FROM lists WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		return maybeAppend(ctx, tx, rec)
	})
	if err != nil {
		return 0, err
	}
	s.vacuum(ctx)
	return n, nil
}

// checkSQL finds the entries of committed lists with kind $2 and key id $3
// that hold token $1 and are not retracted.
var checkSQL = fmt.Sprintf(`
SELECT l.id, t.ref
FROM tokens AS t
	JOIN lists AS l ON l.id = t.list_id
WHERE token_prefix(t.token) = token_prefix($1::bytea) AND t.token = $1::bytea
	AND l.state = %d AND l.kind = $2 AND l.key_id = $3
	AND NOT EXISTS (SELECT 1 FROM retractions AS r WHERE r.list_id = t.list_id AND r.ref = t.ref)`, stateCommitted)

// Overlaps implements store.Store. It reads the match sets stored at
// commit from one snapshot and streams them as fn consumes them; fn runs while
// the snapshot is held and may call the store's other methods.
func (s *Store) Overlaps(ctx context.Context, listID int64, fn func(entryRef uint64, counterpartyListID int64) error) error {
	return s.view(ctx, "overlaps", func(tx pgx.Tx) error {
		return matchrow.Overlaps(ctx, mtx{tx}, listID, fn)
	})
}

// checkPipeline is how many tokens' queries Check sends in one round trip.
const checkPipeline = 256

// Check implements store.Store. It only reads, in a read-only transaction,
// one query per token, so that nothing of the tokens is stored, not even in
// a temporary file.
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
	return s.view(ctx, op, func(tx pgx.Tx) error {
		for first := 0; first < len(tokens); first += checkPipeline {
			part := tokens[first:min(first+checkPipeline, len(tokens))]
			if err := checkPart(ctx, tx, kind, keyID, part, first, c); err != nil {
				return err
			}
		}
		return c.Done()
	})
}

// checkPart sends the queries of tokens, which start at index first, in one
// batch and passes their results to c in order.
func checkPart(ctx context.Context, tx pgx.Tx, kind, keyID string, tokens [][]byte, first int, c *matchrow.Checker) (err error) {
	b := &pgx.Batch{}
	for _, t := range tokens {
		b.Queue(checkSQL, t, kind, keyID)
	}
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	for i := range tokens {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var list, ref int64
		_, err = pgx.ForEachRow(rows, []any{&list, &ref}, func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return c.Hit(first+i, list, uint64(ref))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
