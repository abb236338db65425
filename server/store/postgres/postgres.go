// Package postgres implements store.Store on PostgreSQL (14 or later) with
// github.com/jackc/pgx/v5, for hubs that run as several replicas over one
// database.
//
// # Layout
//
// As in the sqlite store, every upload gets a row in lists, whose id becomes
// the List.ID of the version when the upload is committed, and tokens are
// written straight into the tokens table as batches arrive, so committing
// an upload only flips its state. Ids come from an identity column: they
// increase and are never reused, but may skip values, and stop at 2^31-1
// as in the sqlite store.
//
// The commit of a version joins its tokens against the other owners'
// committed lists of its kind and key id on the token index, and keeps the
// matched pairs of entries, in both directions, in the matches table, with
// a match event for each side, and their summary per two versions in
// match_sets (see matchrow), which Overlaps reads.
//
// A token row is (ref, list_id, token) and nothing else: the columns are in
// alignment order so that the row is a 72-byte tuple, and there is no
// per-token surrogate or position key. Instead, a batch is kept as its entry
// count and a SHA-256 digest of its refs and tokens in order, which is what
// PutBatch compares a batch sent again with. Two indexes serve the joins:
// tokens_list, a block range (BRIN) index on list_id — uploads append
// their tokens, so a list version lies in few block ranges — finds a list
// version's tokens; tokens_prefix on the token's first 8 bytes as a bigint
// finds a token's rows, and the join confirms each candidate against the
// full token. At 1M tokens this takes about 108 bytes per token on disk:
// 77 for the table (a 24-byte tuple header and a 4-byte line pointer per
// row included), almost nothing for tokens_list, and 31 for tokens_prefix,
// whose random insertions leave its pages about two-thirds full (see
// TestBytesPerToken). Under 100 would take several tokens per row (about
// 83 bytes measured, with joins four times slower); SQLite, whose rows
// have no such header, takes about 73.
//
// # Several replicas
//
// Write transactions run at READ COMMITTED and serialize what must be
// serialized with locks that every replica takes alike:
//
//   - The decision log is appended under a transaction-level advisory lock
//     (pg_advisory_xact_lock), taken as the append's first statement, so
//     that the next statement reads the log state the previous holder
//     committed. Every append reads and rewrites the same log state, so
//     under SERIALIZABLE every pair of concurrent appends would conflict and
//     all but one would have to retry their whole action (erasing or
//     committing tokens included); the lock makes them wait instead, and
//     only briefly, since the append is the last step of each transaction.
//   - A transaction that changes which version of a list is current
//     (CommitUpload, DeleteList) first takes an advisory lock on the list's
//     owner and name.
//   - An upload's row is locked (SELECT … FOR UPDATE) by PutBatch and
//     CommitUpload, and the rows an erasure deletes are locked before their
//     tokens are erased, so that no batch lands in an upload being
//     committed, purged or deleted.
//   - A transaction that changes the standing matches of a kind and key id
//     (CommitUpload, DeleteList, Retract, Unretract) takes an advisory lock
//     on the kind and key id (two, in key order, for a commit that changes
//     its list's kind) before it erases or looks for pairs, and holds it
//     until it ends. Of two lists that match each other committed at once,
//     the later join therefore runs after the earlier commit and, at READ
//     COMMITTED, sees it: the pair is found once, never by both or neither;
//     and no pair is found with an entry being retracted or a version
//     being erased. It serializes the commits of one kind and key id for
//     the length of their join.
//   - Match events are appended under the decision log's lock. Their
//     cursors come from an identity column, whose values are handed out in
//     no transaction order: a reader could see cursor n+1 committed before
//     n, move its cursor past n, and never read it. Taken under a lock held
//     until the transaction ends, cursors become visible in their order.
//     Events are appended in one statement at the end of the transaction,
//     just before the record that takes the same lock anyway, so the lock
//     is held as briefly as for the record alone. AppendAlertDecision takes
//     it first, so that Retract, which reads the alerted pairs under it,
//     sees every alert recorded before it.
//   - Key epoch reports and disclosure request creation take advisory locks
//     of their own; check use is charged with one conditional upsert.
//
// Advisory locks are taken in the order list, upload row, kind and key id,
// decision log; purges and deletions lock their rows in ascending id
// order, and no transaction waits for another lock while it holds the
// log's, so these waits cannot form a cycle. The advisory lock keys are
// part of the schema: replicas of different versions must agree on them.
//
// Reads run in REPEATABLE READ READ ONLY transactions, so each call sees one
// snapshot; Overlaps streams the match sets stored at commit from their
// primary key as the callback consumes them, and Check sends its per-token queries
// in pipelined batches, writing nothing, not even temporary files.
//
// # Erasure
//
// Superseded, deleted and purged tokens are DELETEd in the transaction that
// erases them. Under PostgreSQL's MVCC a deleted row stays in its heap page,
// and its index entries (which hold the first 8 bytes of the token) stay in
// the index, until VACUUM removes them; VACUUM cannot remove rows that a
// snapshot still open anywhere (a long Overlaps, another replica's
// transaction) may see. After each transaction that erased tokens the store
// therefore runs VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) on the tokens and
// batches tables, outside the transaction but before the call returns,
// which adds a scan of both token indexes to the call (about 0.1 s per
// million tokens stored). It is best effort: it is skipped if another
// VACUUM holds the table, and its failure does not fail the call;
// autovacuum catches up later.
//
// Even then VACUUM only marks the space reusable and does not zero it, so
// erased bytes can remain in data files until the space is reused. The
// write-ahead log, WAL archives, streaming replicas and backups keep
// inserted and deleted tokens for as long as they are kept. Retention of WAL
// and backups, and encryption at rest, are therefore part of erasure and
// are the operator's to configure. For VACUUM to run at all, the hub's
// database role must own the tables, which it does when it created them.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/veilmatch/veilmatch/server/store"
)

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn, a PostgreSQL URL or
// keyword/value string (pgxpool's pool_* settings included), and applies
// pending schema migrations. The store lives in the first schema of the
// connection's search_path. Several replicas may open the same database at
// once: they migrate it once.
//
// Overlaps and Check hold a connection while their callback runs, so a
// callback that calls the store needs another connection from the pool.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, err := open(ctx, dsn)
	if err != nil {
		// The DSN may hold a password: it is not part of the message.
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

func open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "veilmatch hub"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections. It is safe to call more than once.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// update runs fn in one READ COMMITTED transaction and commits it if fn
// returns nil. Every write of the store goes through update, so that a
// record of the action (for example an audit entry) can be written in the
// same transaction as the action itself. The isolation level is explicit:
// the locks described in the package documentation rely on each statement
// taking a new snapshot.
func (s *Store) update(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite})
	if err != nil {
		return wrap(ctx, op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx) // a failed rollback closes the connection
		return wrap(ctx, op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(ctx, op, err)
	}
	return nil
}

// view runs fn in one REPEATABLE READ, read-only transaction, so that
// everything fn reads comes from the same snapshot of the database.
func (s *Store) view(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrap(ctx, op, err)
	}
	defer tx.Rollback(ctx) // read-only: nothing to undo
	if err := fn(tx); err != nil {
		return wrap(ctx, op, err)
	}
	return nil
}

// wrap prefixes err with op and, when ctx is done, makes sure the result
// also matches the context's error, whatever the driver reported instead.
// A text value PostgreSQL cannot store (a NUL character, invalid UTF-8)
// becomes store.ErrInvalid.
func wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %w (%w)", op, cerr, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05") {
		return fmt.Errorf("%s: %w: %w", op, store.ErrInvalid, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Advisory lock classes, the first key of pg_advisory_xact_lock(int, int);
// the second key is 0 or names the object locked. Every replica must use
// the same keys: never change them.
const (
	lockMigrate     int32 = 0x564d0001 // schema migrations
	lockLog         int32 = 0x564d0002 // decision log appends
	lockList        int32 = 0x564d0003 // a list's current version; key: listKey
	lockKeyEpochs   int32 = 0x564d0004 // key epoch reports
	lockDisclosures int32 = 0x564d0005 // creation of disclosure requests
	lockJob         int32 = 0x564d0006 // a background job; key: jobKey
	lockMatches     int32 = 0x564d0007 // the standing matches of a kind and key id; key: kindKey
)

// lock takes the transaction-level advisory lock (class, key), waiting for
// it if another transaction holds it.
func lock(ctx context.Context, tx pgx.Tx, class, key int32) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, class, key); err != nil {
		return fmt.Errorf("take lock %#x/%d: %w", class, key, err)
	}
	return nil
}

// RunExclusive runs fn unless another process (a hub replica) runs the
// job right now: it holds a session-level advisory lock on a connection of
// its own for as long as fn runs (implements store.Exclusive).
func (s *Store) RunExclusive(ctx context.Context, job string, fn func(ctx context.Context) error) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("job %s: %w", job, err)
	}
	defer conn.Release()
	h := fnv.New32a()
	h.Write([]byte(job))
	key := int32(h.Sum32())
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockJob, key).Scan(&got); err != nil {
		return false, fmt.Errorf("job %s: take lock: %w", job, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		// A fresh context: the lock must go even when ctx is done.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, lockJob, key); err != nil {
			conn.Conn().Close(uctx) // closing the session releases it
		}
	}()
	return true, fn(ctx)
}

// listKey is the lockList key of the owner's list name. Two lists may share
// a key; they then only wait for each other.
func listKey(owner, name string) int32 {
	return pairKey(owner, name)
}

// kindKey is the lockMatches key of a kind and key id. Two may share a
// key; their commits then only wait for each other.
func kindKey(kind, keyID string) int32 {
	return pairKey(kind, keyID)
}

// pairKey hashes two strings into a lock key.
func pairKey(a, b string) int32 {
	h := fnv.New32a()
	h.Write([]byte(a))
	h.Write([]byte{0})
	h.Write([]byte(b))
	return int32(h.Sum32())
}

// summarize summarizes the block ranges of tokens_list that have none yet,
// so that the list version just committed is found through its few ranges
// at once, not by reading every range written since the last VACUUM. Like
// vacuum it runs after the commit and its failure fails nothing
// (autosummarize on the index catches up).
func (s *Store) summarize(ctx context.Context) {
	_, _ = s.pool.Exec(context.WithoutCancel(ctx), `SELECT brin_summarize_new_values('tokens_list')`)
}

// vacuum runs VACUUM on the tables that hold tokens and batch digests, so
// that the rows just erased are removed from heap and indexes (see the
// package documentation). It runs after the erasing transaction committed,
// even if ctx is done by now; it skips a table another VACUUM holds, and its
// failure does not fail the call.
func (s *Store) vacuum(ctx context.Context) {
	_, _ = s.pool.Exec(context.WithoutCancel(ctx), `VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) tokens, batches`)
}
