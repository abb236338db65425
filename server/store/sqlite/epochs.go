package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/veilmatch/veilmatch/server/audit"
)

// currentEpochs returns the key ids of the latest report, newest first.
func currentEpochs(ctx context.Context, tx *sql.Tx) ([]string, error) {
	return queryAll(ctx, tx, scanString, `SELECT key_id FROM key_epochs WHERE rank IS NOT NULL ORDER BY rank`)
}

func scanString(row interface{ Scan(...any) error }) (string, error) {
	var s string
	err := row.Scan(&s)
	return s, err
}

// KeyEpochs implements store.KeyEpochs.
func (s *Store) KeyEpochs(ctx context.Context) (current, seen []string, err error) {
	err = s.view(ctx, "key epochs", func(tx *sql.Tx) error {
		if current, err = currentEpochs(ctx, tx); err != nil {
			return err
		}
		seen, err = queryAll(ctx, tx, scanString, `SELECT key_id FROM key_epochs ORDER BY key_id`)
		return err
	})
	return current, seen, err
}

// SetKeyEpochs implements store.KeyEpochs.
func (s *Store) SetKeyEpochs(ctx context.Context, current []string, rec *audit.Record) (changed bool, err error) {
	err = s.update(ctx, "set key epochs", func(tx *sql.Tx) error {
		old, err := currentEpochs(ctx, tx)
		if err != nil {
			return err
		}
		if slices.Equal(old, current) {
			return nil
		}
		changed = true
		if _, err := tx.ExecContext(ctx, `UPDATE key_epochs SET rank = NULL`); err != nil {
			return err
		}
		for i, id := range current {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_epochs (key_id, rank) VALUES (?1, ?2)
				ON CONFLICT (key_id) DO UPDATE SET rank = ?2`, id, i); err != nil {
				return fmt.Errorf("key id %d: %w", i, err)
			}
		}
		return maybeAppend(ctx, tx, rec)
	})
	return changed, err
}
