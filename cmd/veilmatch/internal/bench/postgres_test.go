package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/veilmatch/veilmatch/internal/pgtest"
)

// postgresURL returns the test database's URL (see pgtest.Server).
func postgresURL(t *testing.T) string {
	t.Helper()
	return pgtest.Server(t, "the benchmark creates a schema of its own and drops it")
}

// benchSchemas returns the schemas of the database whose names a run
// would give them.
func benchSchemas(t *testing.T, dsn string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("%s: %v", pgtest.Env, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, schemaPrefix)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestRunTinyPostgres is TestRunTiny with the PostgreSQL run: every figure
// of both stores is present and plausible, and the schema is gone
// afterwards.
func TestRunTinyPostgres(t *testing.T) {
	o := tinyOptions(t)
	o.Store = postgresURL(t)
	var progress bytes.Buffer
	r, err := Run(context.Background(), o, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	table := checkReport(t, o, r, progress.String())
	pg := r.Postgres
	if pg == nil {
		t.Fatal("no PostgreSQL run")
	}
	if !strings.HasPrefix(pg.Schema, schemaPrefix) || pg.Server.Version == "" || pg.Server.Fsync == "" {
		t.Errorf("schema %q, server %+v", pg.Schema, pg.Server)
	}
	if slices.Contains(benchSchemas(t, o.Store), pg.Schema) {
		t.Errorf("schema %s was not dropped", pg.Schema)
	}
	checkPostgres(t, o, r)

	for _, want := range []string{"PostgreSQL " + pg.Server.Version + " beside SQLite", "POSTGRESQL / SQLITE", "background insert, 3,000 tokens",
		"≥ 0.8× SQLite", "store join alone after VACUUM (ANALYZE)", "hub at rest", "pg_total_relation_size", "write-ahead log"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Postgres map[string]json.RawMessage `json:"postgres"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for part, fields := range map[string][]string{
		"publish":    {"rows_per_sec", "ratio_to_sqlite", "ratio_to_limit", "store_busy_seconds"},
		"overlaps":   {"p50_ms", "sqlite_p50_ms", "ratio_to_sqlite", "store_join_p50_ms", "vacuumed_store_join_p50_ms", "memory_join_p50_ms"},
		"storage":    {"bytes", "bytes_per_token", "ratio_to_sqlite"},
		"background": {"seconds", "sqlite_seconds", "ratio_to_sqlite"},
	} {
		var got map[string]any
		if err := json.Unmarshal(doc.Postgres[part], &got); err != nil {
			t.Errorf("postgres.%s: %v", part, err)
		}
		for _, f := range fields {
			if _, ok := got[f]; !ok {
				t.Errorf("the JSON lacks postgres.%s.%s: %s", part, f, data)
			}
		}
	}
	t.Logf("\n%s", table)
}

// checkPostgres checks that every figure of the PostgreSQL run is present
// and plausible, and consistent with SQLite's.
func checkPostgres(t *testing.T, o Options, r Report) {
	t.Helper()
	pg, pl := r.Postgres, newPlan(o)
	positive := map[string]float64{
		"publish rows/s":               pg.Publish.RowsPerSec,
		"publish ratio to SQLite":      pg.Publish.RatioToSQLite,
		"publish ratio to limit":       pg.Publish.RatioToLimit,
		"publish store busy seconds":   pg.Publish.StoreBusySeconds,
		"publish commit seconds":       pg.Publish.CommitSeconds,
		"overlaps p50":                 pg.Overlaps.P50Millis,
		"overlaps p95":                 pg.Overlaps.P95Millis,
		"rpc p50":                      pg.Overlaps.RPCP50Millis,
		"store join p50":               pg.Overlaps.StoreP50Millis,
		"store join p95":               pg.Overlaps.StoreP95Millis,
		"vacuumed store join p50":      pg.Overlaps.VacuumedStoreP50Millis,
		"vacuum seconds":               pg.Overlaps.VacuumSeconds,
		"memory join p50":              pg.Overlaps.MemoryP50Millis,
		"overlaps ratio to memory":     pg.Overlaps.RatioToMemory,
		"overlaps ratio to SQLite":     pg.Overlaps.RatioToSQLite,
		"store join ratio to SQLite":   pg.Overlaps.StoreRatioToSQLite,
		"bytes":                        float64(pg.Storage.Bytes),
		"bytes per token":              pg.Storage.BytesPerToken,
		"bytes ratio to SQLite":        pg.Storage.RatioToSQLite,
		"background seconds":           pg.Background.Seconds,
		"background tokens/s":          pg.Background.TokensPerSec,
		"SQLite background seconds":    pg.Background.SQLiteSeconds,
		"background ratio to SQLite":   pg.Background.RatioToSQLite,
		"SQLite background tokens/s":   pg.Background.SQLiteTokensPerSec,
		"SQLite overlaps p50 (beside)": pg.Overlaps.SQLiteP50Millis,
	}
	for name, v := range positive {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("postgres %s = %v, want a positive finite number", name, v)
		}
	}
	if pg.Overlaps.SQLiteP50Millis != r.Overlaps.P50Millis || pg.Overlaps.SQLiteStoreP50Millis != r.Overlaps.StoreP50Millis {
		t.Errorf("SQLite's p50 beside PostgreSQL's: %v and %v, want %v and %v", pg.Overlaps.SQLiteP50Millis, pg.Overlaps.SQLiteStoreP50Millis, r.Overlaps.P50Millis, r.Overlaps.StoreP50Millis)
	}
	if want := pg.Publish.RowsPerSec / r.Publish.RowsPerSec; math.Abs(pg.Publish.RatioToSQLite-want) > 1e-9*want {
		t.Errorf("publish ratio to SQLite = %v, want %v", pg.Publish.RatioToSQLite, want)
	}
	if pg.Publish.Rows != pl.rows() || pg.Publish.Lists != pl.lists() || pg.Publish.Warnings != 0 {
		t.Errorf("published %d rows in %d lists with %d warnings, want %d in %d", pg.Publish.Rows, pg.Publish.Lists, pg.Publish.Warnings, pl.rows(), pl.lists())
	}
	tokens := int64(pl.rows() + o.Background)
	if pg.Storage.Tokens != tokens || pg.Overlaps.HubTokens != tokens || pg.Background.Tokens != int64(o.Background) {
		t.Errorf("hub holds %d tokens (overlaps saw %d, background %d), want %d", pg.Storage.Tokens, pg.Overlaps.HubTokens, pg.Background.Tokens, tokens)
	}
	// A token row alone is 72 bytes in the table.
	if pg.Storage.BytesPerToken < 72 || pg.Storage.Files != 0 {
		t.Errorf("%.1f bytes per token in %d files, want at least 72 in none", pg.Storage.BytesPerToken, pg.Storage.Files)
	}
	if pg.Overlaps.Pairs != int64(pl.expectedPairs()) || pg.Overlaps.Matches != r.Overlaps.Matches || pg.Overlaps.CountedClasses != r.Overlaps.CountedClasses {
		t.Errorf("PostgreSQL joined %d pairs (answer %d matches, %d classes), SQLite %d (%d, %d), want %d pairs",
			pg.Overlaps.Pairs, pg.Overlaps.Matches, pg.Overlaps.CountedClasses, r.Overlaps.Pairs, r.Overlaps.Matches, r.Overlaps.CountedClasses, pl.expectedPairs())
	}
	if pg.Overlaps.MemoryTokens != r.Overlaps.MemoryTokens {
		t.Errorf("the in-memory join held %d tokens on PostgreSQL, %d on SQLite", pg.Overlaps.MemoryTokens, r.Overlaps.MemoryTokens)
	}
	last := r.Targets[len(r.Targets)-1]
	if last.Name != "publish_postgres_vs_sqlite" || last.Value != pg.Publish.RatioToSQLite || last.Pass != (last.Value >= 0.8) {
		t.Errorf("last target = %+v, want publish on PostgreSQL against SQLite's", last)
	}
}

// TestRunPostgresDropsSchemaOnFailure: a PostgreSQL run that fails after
// creating its schema drops it.
func TestRunPostgresDropsSchemaOnFailure(t *testing.T) {
	o := tinyOptions(t)
	o.Store = postgresURL(t)
	before := benchSchemas(t, o.Store)
	// The stack's directory cannot be made under a file: startServers
	// fails once the schema exists.
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &progressWriter{w: &bytes.Buffer{}}
	if _, err := runPostgres(context.Background(), dir, nil, o, p); err == nil || !strings.Contains(err.Error(), "start servers") {
		t.Fatalf("err = %v, want the servers' failure to start", err)
	}
	for _, s := range benchSchemas(t, o.Store) {
		if !slices.Contains(before, s) {
			t.Errorf("schema %s was left behind", s)
		}
	}
}

// TestRunRefusesUnreachableStore: a run whose PostgreSQL server cannot be
// reached fails before it measures anything.
func TestRunRefusesUnreachableStore(t *testing.T) {
	o := tinyOptions(t)
	o.Store = "postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=5"
	var progress bytes.Buffer
	_, err := Run(context.Background(), o, &progress)
	if err == nil || !strings.Contains(err.Error(), "connect") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v, want a failure to connect, without the password", err)
	}
	if progress.Len() > 0 {
		t.Errorf("the run measured before it failed:\n%s", progress.String())
	}
}
