package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/veilmatch/veilmatch/server/audit"
	"github.com/veilmatch/veilmatch/server/store"
)

// currentEpochs returns the keys of the latest report, newest first.
func currentEpochs(ctx context.Context, tx *sql.Tx) ([]store.KeyEpoch, error) {
	return queryAll(ctx, tx, scanEpoch, `SELECT key_id, public_key FROM key_epochs WHERE rank IS NOT NULL ORDER BY rank`)
}

func scanEpoch(row interface{ Scan(...any) error }) (store.KeyEpoch, error) {
	var e store.KeyEpoch
	err := row.Scan(&e.KeyID, &e.PublicKey)
	return e, err
}

// KeyEpochs implements store.KeyEpochs.
func (s *Store) KeyEpochs(ctx context.Context) (current []string, known []store.KeyEpoch, err error) {
	err = s.view(ctx, "key epochs", func(tx *sql.Tx) error {
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

// SetKeyEpochs implements store.KeyEpochs.
func (s *Store) SetKeyEpochs(ctx context.Context, current []store.KeyEpoch, rec *audit.Record) (changed bool, err error) {
	err = s.update(ctx, "set key epochs", func(tx *sql.Tx) error {
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
		if _, err := tx.ExecContext(ctx, `UPDATE key_epochs SET rank = NULL`); err != nil {
			return err
		}
		for i, e := range current {
			var held []byte
			err := tx.QueryRowContext(ctx, `SELECT public_key FROM key_epochs WHERE key_id = ?`, e.KeyID).Scan(&held)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case held != nil && !bytes.Equal(held, e.PublicKey):
				return fmt.Errorf("%w: key id %q was reported before with another public key", store.ErrConflict, e.KeyID)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_epochs (key_id, rank, public_key) VALUES (?1, ?2, ?3)
				ON CONFLICT (key_id) DO UPDATE SET rank = ?2, public_key = ?3`, e.KeyID, i, e.PublicKey); err != nil {
				return fmt.Errorf("key id %d: %w", i, err)
			}
		}
		return maybeAppend(ctx, tx, rec)
	})
	return changed, err
}
