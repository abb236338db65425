package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Postgres is the phases that depend on the hub's store, run again in the
// same run with the store on PostgreSQL, beside the figures at the top
// level of the report, which are SQLite's.
type Postgres struct {
	// Schema is the schema the run created for the store, and dropped.
	Schema string         `json:"schema"`
	Server PostgresServer `json:"server"`
	// Background is the direct insert of the background tokens; nil when
	// there were none.
	Background *BackgroundInsert `json:"background,omitempty"`
	Publish    PostgresPublish   `json:"publish"`
	Overlaps   PostgresOverlaps  `json:"overlaps"`
	Storage    PostgresStorage   `json:"storage"`
}

// PostgresServer is what the server reports of itself and of the settings
// that bear on the figures.
type PostgresServer struct {
	Version           string `json:"version"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	SharedBuffers     string `json:"shared_buffers"`
}

// BackgroundInsert is the direct insert of the background tokens through
// the store's API, as committed uploads, into PostgreSQL beside SQLite.
type BackgroundInsert struct {
	Tokens             int64   `json:"tokens"`
	Seconds            float64 `json:"seconds"`
	TokensPerSec       float64 `json:"tokens_per_sec"`
	SQLiteSeconds      float64 `json:"sqlite_seconds"`
	SQLiteTokensPerSec float64 `json:"sqlite_tokens_per_sec"`
	// RatioToSQLite is TokensPerSec / SQLiteTokensPerSec.
	RatioToSQLite float64 `json:"ratio_to_sqlite"`
}

// PostgresPublish is the end-to-end publish on PostgreSQL.
type PostgresPublish struct {
	Publish
	// RatioToSQLite is RowsPerSec / the SQLite run's publish.rows_per_sec.
	RatioToSQLite float64 `json:"ratio_to_sqlite"`
}

// PostgresOverlaps is the overlaps latency on PostgreSQL, with SQLite's
// beside it.
type PostgresOverlaps struct {
	Overlaps
	// SQLiteP50Millis is the SQLite run's p50_ms; RatioToSQLite is
	// P50Millis / SQLiteP50Millis.
	SQLiteP50Millis float64 `json:"sqlite_p50_ms"`
	RatioToSQLite   float64 `json:"ratio_to_sqlite"`
	// SQLiteStoreP50Millis is the SQLite run's store_join_p50_ms;
	// StoreRatioToSQLite is StoreP50Millis / SQLiteStoreP50Millis.
	SQLiteStoreP50Millis float64 `json:"sqlite_store_join_p50_ms"`
	StoreRatioToSQLite   float64 `json:"store_join_ratio_to_sqlite"`
	// VacuumSeconds is how long VACUUM (ANALYZE) of the store's tables
	// took, run after the timings above as autovacuum would run it in
	// time; VacuumedStoreP50Millis and VacuumedStoreP95Millis time the
	// store's join alone after it.
	VacuumSeconds          float64 `json:"vacuum_seconds"`
	VacuumedStoreP50Millis float64 `json:"vacuumed_store_join_p50_ms"`
	VacuumedStoreP95Millis float64 `json:"vacuumed_store_join_p95_ms"`
}

// PostgresStorage is the size of the store's tables at rest.
type PostgresStorage struct {
	Storage
	// RatioToSQLite is BytesPerToken / the SQLite run's.
	RatioToSQLite float64 `json:"ratio_to_sqlite"`
}

// targetPostgresPublish is the publish rate on PostgreSQL to SQLite's to
// reach.
const targetPostgresPublish = 0.80

// evaluatePostgres derives the PostgreSQL run's ratios, its target and its
// notes, if there was one.
func (r *Report) evaluatePostgres() {
	pg := r.Postgres
	if pg == nil {
		return
	}
	pg.Publish.compare(r.Crypto)
	pg.Publish.RatioToSQLite = ratio(pg.Publish.RowsPerSec, r.Publish.RowsPerSec)
	ov := &pg.Overlaps
	ov.compare()
	ov.SQLiteP50Millis, ov.SQLiteStoreP50Millis = r.Overlaps.P50Millis, r.Overlaps.StoreP50Millis
	ov.RatioToSQLite = ratio(ov.P50Millis, ov.SQLiteP50Millis)
	ov.StoreRatioToSQLite = ratio(ov.StoreP50Millis, ov.SQLiteStoreP50Millis)
	pg.Storage.RatioToSQLite = ratio(pg.Storage.BytesPerToken, r.Storage.BytesPerToken)
	if b := pg.Background; b != nil {
		b.TokensPerSec = ratio(float64(b.Tokens), b.Seconds)
		b.SQLiteTokensPerSec = ratio(float64(b.Tokens), b.SQLiteSeconds)
		b.RatioToSQLite = ratio(b.TokensPerSec, b.SQLiteTokensPerSec)
	}
	v := pg.Publish.RatioToSQLite
	r.Targets = append(r.Targets, Target{Name: "publish_postgres_vs_sqlite", Value: v, Goal: "≥ 0.8× SQLite", Pass: v >= targetPostgresPublish})

	r.Notes = append(r.Notes, fmt.Sprintf("postgres: the store's size is the sum of pg_total_relation_size of its tables in schema %s (heap, indexes, TOAST); PostgreSQL's write-ahead log is not in it, and the server's memory and CPU are in no figure: resident memory and CPU time are this process's alone", pg.Schema))
	r.Notes = append(r.Notes, "postgres: overlaps are timed right after publish, as on SQLite; until VACUUM (autovacuum in time) summarizes the block ranges of the tokens' BRIN index, finding the query list's tokens reads every range written since the last VACUUM: the store join after VACUUM (ANALYZE) shows what that costs")
	if l := pg.Publish.OtherLoad; l >= 0.05 {
		r.Notes = append(r.Notes, fmt.Sprintf("postgres: other processes, the PostgreSQL server among them if it runs on this machine, used %.0f%% of the machine's cores during publish on PostgreSQL (%.0f%% during publish on SQLite)", 100*l, 100*r.Publish.OtherLoad))
	}
	if s := pg.Server; s.Fsync == "off" || s.SynchronousCommit == "off" {
		r.Notes = append(r.Notes, fmt.Sprintf("postgres: the server runs with fsync %s and synchronous_commit %s: its commits are not flushed to disk as SQLite's are (synchronous FULL), so its writes cost less here than on a durable server", s.Fsync, s.SynchronousCommit))
	}
}

// writePostgres writes the PostgreSQL run beside SQLite's figures as a
// second table, if there was one.
func (r Report) writePostgres(w io.Writer) error {
	pg := r.Postgres
	if pg == nil {
		return nil
	}
	fmt.Fprintf(w, "\nPostgreSQL %s beside SQLite: the phases that depend on the hub's store, again in the same run (schema %s, dropped; shared_buffers %s, fsync %s)\n\n",
		pg.Server.Version, pg.Schema, pg.Server.SharedBuffers, pg.Server.Fsync)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	row("FIGURE", "SQLITE", "POSTGRESQL", "POSTGRESQL / SQLITE", "TARGET", "RESULT")
	if b := pg.Background; b != nil {
		row(fmt.Sprintf("background insert, %s tokens", count(int(b.Tokens))), insertRate(b.SQLiteTokensPerSec, b.SQLiteSeconds),
			insertRate(b.TokensPerSec, b.Seconds), times(b.RatioToSQLite), "", "")
	}
	sp, pp := r.Publish, pg.Publish
	g, res := r.verdict("publish_postgres_vs_sqlite")
	row(fmt.Sprintf("publish end to end, %s lists at once", count(pp.Lists)), sp.rate(), pp.rate(), times(pp.RatioToSQLite), g, res)
	row("  store writes in flight", fmt.Sprintf("%.1fs of %.1fs", sp.StoreBusySeconds, sp.Seconds), fmt.Sprintf("%.1fs of %.1fs", pp.StoreBusySeconds, pp.Seconds), "", "", "")
	row("  commits: standing matches found", sp.commits(), pp.commits(), "", "", "")
	row("  CPU of this process per row", fmt.Sprintf("%.0f µs", sp.CPUMicrosPerRow), fmt.Sprintf("%.0f µs", pp.CPUMicrosPerRow), "", "", "")
	so, po := r.Overlaps, pg.Overlaps
	row(po.title(), msPair(so.P50Millis, so.P95Millis), msPair(po.P50Millis, po.P95Millis), times(po.RatioToSQLite)+" (p50)", "", "")
	row(rpcTitle, msPair(so.RPCP50Millis, so.RPCP95Millis), msPair(po.RPCP50Millis, po.RPCP95Millis), times(ratio(po.RPCP50Millis, so.RPCP50Millis))+" (p50)", "", "")
	row(storeJoinTitle, msPair(so.StoreP50Millis, so.StoreP95Millis), msPair(po.StoreP50Millis, po.StoreP95Millis), times(po.StoreRatioToSQLite)+" (p50)", "", "")
	row(fmt.Sprintf("  store join alone after VACUUM (ANALYZE) of %.2fs", po.VacuumSeconds), "", msPair(po.VacuumedStoreP50Millis, po.VacuumedStoreP95Millis),
		times(ratio(po.VacuumedStoreP50Millis, so.StoreP50Millis))+" (p50)", "", "")
	row(memoryJoinTitle, msPair(so.MemoryP50Millis, so.MemoryP95Millis), msPair(po.MemoryP50Millis, po.MemoryP95Millis), "", "", "")
	row(toMemoryTitle, so.toMemory(), po.toMemory(), "", "", "")
	row(fmt.Sprintf("hub at rest, %s tokens", count(int(pg.Storage.Tokens))), r.Storage.size(), pg.Storage.size(), times(pg.Storage.RatioToSQLite), "", "")
	return tw.Flush()
}

// insertRate is a background insert's rate and time.
func insertRate(perSec, seconds float64) string {
	return fmt.Sprintf("%s in %.1fs", rate(perSec, "tokens/s"), seconds)
}

// times writes a ratio as a factor.
func times(v float64) string { return fmt.Sprintf("%.2f×", v) }
