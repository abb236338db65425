// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go).
//
// The database runs in WAL mode so that readers see a consistent snapshot
// while a writer commits. All writes go through one connection, and so are
// serialized inside the process instead of failing with SQLITE_BUSY; reads use
// a separate pool of query-only connections. Deleted content is overwritten
// with zeros (secure_delete), and after a list is erased the write-ahead log
// is checkpointed and truncated so the erased tokens do not linger there
// either.
//
// Layout: every upload gets a row in lists, whose id becomes the List.ID of
// the version when the upload is committed. Tokens are written straight into
// the tokens table as batches arrive, under the rowid
// listID<<32 | position, so a list version is one contiguous rowid range: it
// is scanned and erased without a secondary index, and committing an upload
// only flips its state. The only index over tokens is on their first 8
// bytes; a join on that prefix is confirmed against the full token.
//
// Committing a version also joins its tokens against the other owners'
// committed lists of its kind and key id, in the same transaction, and
// keeps the matched pairs of entries, in both directions, in the matches
// table, with a match event for each side, and their summary per two
// versions in match_sets (see matchrow), which Overlaps reads. Since
// writes are serialized, each join sees every version committed before it,
// and event cursors (AUTOINCREMENT) become visible in their order.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection, such as a reader while the log is checkpointed.
const busyTimeout = 5 * time.Second

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	w *sql.DB // exactly one connection: every write transaction
	r *sql.DB // query-only connections for reads
}

// Open opens or creates the database at path, whose directory must exist,
// and applies pending schema migrations. A new file is created with mode
// 0600.
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", filepath.Dir(abs))
	}
	// Create the file ourselves so it gets mode 0600; SQLite gives the -wal
	// and -shm files the mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	common := []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"foreign_keys(1)",
		"secure_delete(1)",
	}
	// The writer gets a large page cache: inserting random tokens into the
	// prefix index touches pages all over it.
	writer := slices.Concat(common, []string{"journal_mode(WAL)", "synchronous(FULL)", "cache_size(-65536)"})
	reader := slices.Concat(common, []string{"query_only(1)", "cache_size(-16384)"})
	w, err := openDB(dsn(abs, writer, "immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	// Migrate before the read pool opens, so that readers only ever see a
	// database in WAL mode with the current schema.
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	s.r, err = openDB(dsn(abs, reader, ""))
	if err != nil {
		w.Close()
		return nil, err
	}
	// The read pool is unbounded, so that an Overlaps or Check callback that
	// calls the store while its snapshot is held never waits for itself.
	s.r.SetMaxIdleConns(4)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dsn returns the data source name of the database file at abs with the
// given per-connection pragmas and transaction lock mode.
func dsn(abs string, pragmas []string, txlock string) string {
	q := url.Values{"_pragma": pragmas}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String()
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	var rerr error
	if s.r != nil {
		rerr = s.r.Close()
	}
	if err := errors.Join(rerr, s.w.Close()); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// update runs fn in one write transaction on the single writer connection and
// commits it if fn returns nil. Every write of the store goes through update,
// so that a record of the action (for example an audit entry) can be written
// in the same transaction as the action itself.
func (s *Store) update(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(ctx, op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return wrap(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(ctx, op, err)
	}
	return nil
}

// view runs fn in one read-only transaction, so that everything fn reads
// comes from the same snapshot of the database.
func (s *Store) view(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(ctx, op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return wrap(ctx, op, err)
	}
	return nil
}

// wrap prefixes err with op and, when ctx is done, makes sure the result
// also matches the context's error, whatever the driver reported instead.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %w (%w)", op, cerr, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Backup writes a consistent copy of the database to path, which must not
// exist, while the store stays in use: SQLite's VACUUM INTO reads one
// snapshot and writes a compact new database (mode 0600), never a copy of
// a live file and its write-ahead log.
func (s *Store) Backup(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Stat(abs); err == nil {
		return fmt.Errorf("backup: %s exists; a backup never replaces a file", abs)
	}
	// VACUUM INTO creates the file with the process's umask; create it
	// empty with mode 0600 first (SQLite writes into an empty file).
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, "VACUUM INTO ?", abs); err != nil {
		os.Remove(abs)
		return wrap(ctx, "backup", err)
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity check on the database and returns an error
// describing what it found unless it reports ok.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return wrap(ctx, "integrity check", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return wrap(ctx, "integrity check", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return wrap(ctx, "integrity check", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}
