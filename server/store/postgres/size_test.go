package postgres

import (
	"context"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/server/store/storetest"
)

// TestSizeCountsEveryTable checks that Size counts every table the
// migrations create, and nothing but tables of the store's schema.
func TestSizeCountsEveryTable(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(storeTables)); !slices.Equal(tables, want) {
		t.Errorf("the schema holds tables %q, Size counts %q", tables, want)
	}
	got, err := s.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := query(t, s, `SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r'`); got != want || got <= 0 {
		t.Errorf("Size = %d, want the schema's tables' %d (> 0)", got, want)
	}
}

// TestSizeOfSchema opens two stores in two schemas of one database: the
// tokens written to one count in its Size, with their indexes, and not in
// the other's.
func TestSizeOfSchema(t *testing.T) {
	dsn := newDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA full_store; CREATE SCHEMA empty_store`); err != nil {
		t.Fatal(err)
	}
	full, empty := openDSN(t, searchPath(t, dsn, "full_store")), openDSN(t, searchPath(t, dsn, "empty_store"))
	size := func(s *Store) int64 {
		t.Helper()
		n, err := s.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	full0, empty0 := size(full), size(empty)

	const n = 20_000
	publish(t, full, "a", "l", "phone", storetest.RandomEntries(rand.NewChaCha8([32]byte{4}), n), batchEntries)
	grown := size(full) - full0
	// A token row takes at least 72 bytes in the table, and its index
	// entry more on top.
	if grown < 72*n {
		t.Errorf("the store grew by %d bytes with %d tokens, want at least %d", grown, n, 72*n)
	}
	if tokens := query(t, full, `SELECT pg_total_relation_size('tokens')`); tokens > size(full) {
		t.Errorf("Size %d is less than the tokens table's %d", size(full), tokens)
	}
	if got := size(empty); got != empty0 {
		t.Errorf("the store in the other schema grew from %d to %d bytes", empty0, got)
	}
}

// searchPath returns dsn with schema as the connection's search_path.
func searchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
