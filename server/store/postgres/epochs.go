package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// currentEpochs returns the keys of the latest report, newest first.
func currentEpochs(ctx context.Context, tx pgx.Tx) ([]store.KeyEpoch, error) {
	return queryAll(ctx, tx, scanEpoch, `SELECT key_id, public_key FROM key_epochs WHERE rank IS NOT NULL ORDER BY rank`)
}

func scanEpoch(row pgx.Row) (store.KeyEpoch, error) {
	var e store.KeyEpoch
	err := row.Scan(&e.KeyID, &e.PublicKey)
	return e, err
}

// KeyEpochs implements store.KeyEpochs.
func (s *Store) KeyEpochs(ctx context.Context) (current []string, known []store.KeyEpoch, err error) {
	err = s.view(ctx, "key epochs", func(tx pgx.Tx) error {
		cur, err := currentEpochs(ctx, tx)
		if err != nil {
			return err
		}
		for _, e := range cur {
			current = append(current, e.KeyID)
		}
		known, err = queryAll(ctx, tx, scanEpoch, `SELECT key_id, public_key FROM key_epochs ORDER BY key_id`)
		return err
	})
	return current, known, err
}

// SetKeyEpochs implements store.KeyEpochs. It takes an advisory lock, so
// that of replicas storing the same report at once one stores it and
// appends its record, and the others find it unchanged.
func (s *Store) SetKeyEpochs(ctx context.Context, current []store.KeyEpoch, rec *audit.Record) (changed bool, err error) {
	err = s.update(ctx, "set key epochs", func(tx pgx.Tx) error {
		changed = false
		if err := lock(ctx, tx, lockKeyEpochs, 0); err != nil {
			return err
		}
		old, err := currentEpochs(ctx, tx)
		if err != nil {
			return err
		}
		if slices.EqualFunc(old, current, func(a, b store.KeyEpoch) bool {
			return a.KeyID == b.KeyID && bytes.Equal(a.PublicKey, b.PublicKey)
		}) {
			return nil
		}
		changed = true
		if _, err := tx.Exec(ctx, `UPDATE key_epochs SET rank = NULL WHERE rank IS NOT NULL`); err != nil {
			return err
		}
		for i, e := range current {
			var held []byte
			err := tx.QueryRow(ctx, `SELECT public_key FROM key_epochs WHERE key_id = $1`, e.KeyID).Scan(&held)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			case held != nil && !bytes.Equal(held, e.PublicKey):
				return fmt.Errorf("%w: key id %q was reported before with another public key", store.ErrConflict, e.KeyID)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO key_epochs (key_id, rank, public_key) VALUES ($1, $2, $3)
				ON CONFLICT (key_id) DO UPDATE SET rank = excluded.rank, public_key = excluded.public_key`, e.KeyID, i, e.PublicKey); err != nil {
				return fmt.Errorf("key id %d: %w", i, err)
			}
		}
		return maybeAppend(ctx, tx, rec)
	})
	return changed, err
}
