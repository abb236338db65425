package postgres

import "context"

// storeTables are the tables the store's migrations create in its schema,
// schema_migrations included. A migration that adds a table adds it here
// (TestSizeCountsEveryTable checks).
var storeTables = []string{
	"schema_migrations", "lists", "batches", "tokens", "log_records", "log_nodes", "log_state", "checkpoints",
	"disclosure_requests", "notices", "key_epochs", "check_use", "matches", "match_sets", "match_events", "alerted", "retractions",
}

// Size returns the bytes the store's tables take on disk in the store's
// schema (the first schema of the connection's search_path): the sum of
// pg_total_relation_size of each table, which counts its heap, its indexes
// and its TOAST table, with every fork (free space and visibility maps).
// The write-ahead log, the server's memory, and whatever else the database
// holds are not counted. Relation sizes are those of the files, so the
// figure is current without a checkpoint.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1)`, storeTables).Scan(&n)
	if err != nil {
		return 0, wrap(ctx, "size", err)
	}
	return n, nil
}
